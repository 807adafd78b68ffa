"""One Nova node per LXD member: what Nova and Placement are told of it.

From the member's LXD resources (pure).
"""

import datetime
from typing import Any

from oslo_serialization import jsonutils
from oslo_utils import units
from oslo_utils import versionutils

import os_resource_classes as orc

from nova.objects import fields

HYPERVISOR_TYPE = fields.HVType.LXD


def hypervisor_version(server_version: str) -> int:
    """'5.0.2' -> 5000002, the integer form Nova stores."""
    return versionutils.convert_version_to_int(server_version)


def member_capacity(resources: dict[str, Any],
                    pool_resources: dict[str, Any]) -> dict[str, Any]:
    """Totals and usage of one member.

    From ``GET /1.0/resources`` and ``GET /1.0/storage-pools/<p>/resources``.
    """
    cpu, memory = resources['cpu'], resources['memory']
    space = pool_resources['space']
    return {
        'vcpus': cpu['total'],
        'memory_mb': memory['total'] // units.Mi,
        'memory_mb_used': memory.get('used', 0) // units.Mi,
        'disk_gb': space['total'] // units.Gi,
        'disk_gb_used': space.get('used', 0) // units.Gi,
        'arch': fields.Architecture.canonicalize(cpu['architecture']),
    }


def no_capacity() -> dict[str, Any]:
    """The capacity of a member that was never read (offline since start)."""
    return {'vcpus': 0, 'memory_mb': 0, 'memory_mb_used': 0, 'disk_gb': 0,
            'disk_gb_used': 0, 'arch': fields.Architecture.from_host()}


def reserved_all(inventory: dict[str, dict[str, Any]]
                 ) -> dict[str, dict[str, Any]]:
    """``inventory`` with every unit reserved: nothing new fits there.

    For an offline member: what its servers hold stays allocated.
    """
    return {rc: dict(inv, reserved=inv['total'])
            for rc, inv in inventory.items()}


def _cpu_info(resources: dict[str, Any] | None, arch: str) -> str:
    sockets = (resources or {}).get('cpu', {}).get('sockets') or [{}]
    first = sockets[0]
    cores = first.get('cores') or []
    threads = max((len(c.get('threads') or []) for c in cores), default=1)
    return jsonutils.dumps({
        'arch': arch,
        'vendor': first.get('vendor', ''),
        'model': first.get('name', ''),
        'topology': {'sockets': len(sockets), 'cores': len(cores),
                     'threads': threads},
        'features': [],
    })


def available_resource(nodename: str, node_uuid: str,
                       resources: dict[str, Any] | None,
                       capacity: dict[str, Any],
                       version: int) -> dict[str, Any]:
    """The dict ComputeDriver.get_available_resource returns."""
    return {
        'uuid': node_uuid,
        'hypervisor_hostname': nodename,
        'hypervisor_type': HYPERVISOR_TYPE,
        'hypervisor_version': version,
        'vcpus': capacity['vcpus'],
        'memory_mb': capacity['memory_mb'],
        'local_gb': capacity['disk_gb'],
        'vcpus_used': 0,
        'memory_mb_used': capacity['memory_mb_used'],
        'local_gb_used': capacity['disk_gb_used'],
        'disk_available_least': capacity['disk_gb'] - capacity['disk_gb_used'],
        'cpu_info': _cpu_info(resources, capacity['arch']),
        'numa_topology': None,
        'supported_instances': [
            (capacity['arch'], HYPERVISOR_TYPE, fields.VMMode.EXE)],
    }


def node_inventory(capacity: dict[str, Any], ratios: dict[str, float],
                   reserved: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Placement inventory of a member's root provider.

    ``ratios`` and ``reserved`` map resource class -> Nova's allocation
    ratio and reserved amount for it.
    """
    totals = {orc.VCPU: capacity['vcpus'],
              orc.MEMORY_MB: capacity['memory_mb'],
              orc.DISK_GB: capacity['disk_gb']}
    return {
        rc: {'total': total, 'min_unit': 1, 'max_unit': total,
             'step_size': 1, 'allocation_ratio': ratios[rc],
             'reserved': reserved[rc]}
        for rc, total in totals.items() if total > 0
    }


def uptime_text(now: datetime.datetime, seconds: float,
                load: tuple[float, float, float]) -> str:
    """What ``uptime`` prints (Nova's hypervisor uptime), without users.

    ``now``: the local time; ``seconds``: since boot (/proc/uptime);
    ``load``: the 1, 5 and 15 minute load averages.
    """
    minutes = int(seconds) // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    up = '%d day%s, ' % (days, '' if days == 1 else 's') if days else ''
    up += '%2d:%02d' % (hours, minutes) if hours else '%d min' % minutes
    return ' %s up %s,  load average: %.2f, %.2f, %.2f' % (
        now.strftime('%H:%M:%S'), up, *load)
