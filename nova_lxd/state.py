"""LXD instance status -> Nova power state, diagnostics (pure)."""

from collections.abc import Iterable
import datetime
from typing import Any

from nova.compute import power_state
from nova.objects import diagnostics as diagnostics_obj
from oslo_utils import strutils
from oslo_utils import timeutils
from oslo_utils import units

from nova_lxd import constants
from nova_lxd import container

# Diagnostics' "driver": Nova 34 admits only its in-tree drivers' names
# there (the object's enum, and the 2.48 response schema: ironic, libvirt,
# vmwareapi, xenapi); "lxd" is refused by both (HTTP 500 where responses
# are validated). "hypervisor" is free text and says lxd.
DIAGNOSTICS_DRIVER = 'libvirt'

# LXD's status codes (shared/api/status_code.go).
_POWER_STATES = {
    103: power_state.RUNNING,    # Running
    106: power_state.RUNNING,    # Starting
    107: power_state.RUNNING,    # Stopping
    102: power_state.SHUTDOWN,   # Stopped
    109: power_state.RUNNING,    # Freezing
    110: power_state.PAUSED,     # Frozen
    112: power_state.CRASHED,    # Error
}


# Where a standalone LXD says its instances are.
STANDALONE_LOCATIONS = ('', 'none')


def power_state_of(status_code: int) -> int:
    return _POWER_STATES.get(status_code, power_state.NOSTATE)


def power_state_from(lxd_state: dict[str, Any]) -> int:
    """The Nova power state of an instance or its state (LXD's dicts)."""
    return power_state_of(lxd_state['status_code'])


def nova_containers(lxd_instances: Iterable[dict[str, Any]],
                    members: Iterable[str],
                    clustered: bool) -> dict[str, tuple[str, int]]:
    """{container name: (Nova instance UUID, power state)}.

    Of the driver's containers in an instance listing (``GET
    /1.0/instances?recursion=1``) that are on ``members``.
    """
    here = set(members)
    if not clustered:
        here |= set(STANDALONE_LOCATIONS)
    found = {}
    for i in lxd_instances:
        uuid = container.instance_uuid(i)
        if (uuid and i.get('location', '') in here and
                not i['name'].startswith(constants.LXD_MOVE_PREFIX)):
            found[i['name']] = (uuid, power_state_from(i))
    return found


def unreachable(lxd_instances: Iterable[dict[str, Any]]) -> set[str]:
    """Names of the instances of offline members in an instance listing.

    LXD lists them without their config (and with status Error): what
    they are and whether they run is not known until their member is
    back.
    """
    return {i['name'] for i in lxd_instances if i.get('config') is None}


def diagnostics(lxd_state: dict[str, Any]) -> dict[str, Any]:
    """Nova's (legacy, free-form) diagnostics from an LXD instance state.

    CPU time in ns, memory in bytes, counters per network interface.
    """
    found = {
        'status': lxd_state.get('status'),
        'processes': lxd_state.get('processes'),
        'cpu_time_ns': (lxd_state.get('cpu') or {}).get('usage'),
        'memory_bytes': (lxd_state.get('memory') or {}).get('usage'),
        'memory_peak_bytes': (lxd_state.get('memory') or {}).get(
            'usage_peak'),
    }
    for nic, data in sorted((lxd_state.get('network') or {}).items()):
        for counter, value in sorted((data.get('counters') or {}).items()):
            found['%s_%s' % (nic, counter)] = value
    return found


def _mib(value: Any) -> int | None:
    return None if value is None else int(value) // units.Mi


def _memory_limit_mib(config: dict[str, str]) -> int | None:
    """``limits.memory`` (256MiB, 1GB...) in MiB; None when unset or %."""
    value = config.get('limits.memory', '')
    try:
        return _mib(strutils.string_to_bytes(value, unit_system='mixed',
                                             return_int=True))
    except ValueError:
        return None


def instance_diagnostics(lxd_instance: dict[str, Any], config_drive: bool,
                         now: datetime.datetime
                         ) -> diagnostics_obj.Diagnostics:
    """Nova's standard diagnostics of an instance (2.48 and later).

    From ``GET /1.0/instances/<name>?recursion=1`` (with its state). LXD
    reports the container's CPU time as one total (no per-CPU time),
    memory used (MiB) against its ``limits.memory``, per nic its MAC and
    counters (the loopback left out), and no disk I/O counters (only
    usage, on some pools): no disk details. Uptime: since the last start.
    """
    lxd_state = lxd_instance.get('state') or {}
    power = power_state_from(lxd_state or lxd_instance)
    uptime = None
    if power == power_state.RUNNING and lxd_instance.get('last_used_at'):
        started = timeutils.parse_isotime(lxd_instance['last_used_at'])
        uptime = max(0, int((now - started).total_seconds()))
    diags = diagnostics_obj.Diagnostics(
        state=power_state.STATE_MAP[power], driver=DIAGNOSTICS_DRIVER,
        hypervisor='lxd', hypervisor_os='linux', uptime=uptime,
        config_drive=config_drive)
    diags.memory_details = diagnostics_obj.MemoryDiagnostics(
        maximum=_memory_limit_mib(lxd_instance.get('expanded_config') or
                                  lxd_instance.get('config') or {}),
        used=_mib((lxd_state.get('memory') or {}).get('usage')))
    cpu_time = (lxd_state.get('cpu') or {}).get('usage')
    if cpu_time is not None:
        diags.add_cpu(time=cpu_time)
    for _name, nic in sorted((lxd_state.get('network') or {}).items()):
        if nic.get('type') == 'loopback':
            continue
        counters = nic.get('counters') or {}
        diags.add_nic(
            mac_address=nic.get('hwaddr') or None,
            rx_octets=counters.get('bytes_received'),
            rx_packets=counters.get('packets_received'),
            rx_errors=counters.get('errors_received'),
            rx_drop=counters.get('packets_dropped_inbound'),
            tx_octets=counters.get('bytes_sent'),
            tx_packets=counters.get('packets_sent'),
            tx_errors=counters.get('errors_sent'),
            tx_drop=counters.get('packets_dropped_outbound'))
    return diags
