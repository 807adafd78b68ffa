"""Nova instance -> its LXD container: create, resize and rescue bodies (pure).

One call builds the body a spawn creates (``instance_body``), from the
flavor and what each room adds (a ``Part``: disks, ports, GPUs, cloud-init
keys); nothing else writes into it. Only what Nova and the operator
decide reaches the container's config:
the flavor, its ``quota:`` and ``lxd:`` extra specs (within what ``[lxd]``
allows), and Nova's identity keys. Nothing a tenant controls (image
properties, metadata, user data) becomes raw or security configuration.
"""

from collections.abc import Iterable
from collections.abc import Mapping
import dataclasses
from typing import Any
from typing import TYPE_CHECKING

from nova import exception

from nova_lxd import constants

if TYPE_CHECKING:
    from nova import objects

    from nova_lxd import extra_specs

# An LXD API object (instance, device...) as JSON gives it.
Body = dict[str, Any]

# quota:disk_* extra spec -> (LXD root disk key, unit suffix)
_DISK_QUOTAS = {
    'disk_read_bytes_sec': ('limits.read', 'B'),
    'disk_read_iops_sec': ('limits.read', 'iops'),
    'disk_write_bytes_sec': ('limits.write', 'B'),
    'disk_write_iops_sec': ('limits.write', 'iops'),
    'disk_total_bytes_sec': ('limits.max', 'B'),
    'disk_total_iops_sec': ('limits.max', 'iops'),
}
# quota:vif_* (KB/s, as Nova documents) -> LXD nic key (bit/s units)
_VIF_QUOTAS = {
    'vif_inbound_average': 'limits.ingress',
    'vif_outbound_average': 'limits.egress',
}

RESCUE_MOUNT = '/mnt/original-root'
# Pool drivers whose instance root is a plain folder on the member even
# while the instance is stopped, so a rescue container can mount it.
RESCUE_POOL_DRIVERS = ('dir', 'btrfs')


@dataclasses.dataclass(frozen=True)
class Part:
    """What one room (disks, ports, GPUs, cloud-init) adds to a container.

    ``devices`` and ``config`` are LXD's instance devices and config keys,
    ``profiles`` the names of LXD profiles.
    """

    devices: Mapping[str, Mapping[str, str]] = dataclasses.field(
        default_factory=dict)
    config: Mapping[str, str] = dataclasses.field(default_factory=dict)
    profiles: tuple[str, ...] = ()


def name(instance: 'objects.Instance') -> str:
    """The name of an instance's container.

    The instance's name, unless an evacuation had to give the container
    another (Nova's system metadata keeps it).
    """
    return (instance.system_metadata.get(constants.CONTAINER_NAME_META) or
            instance.name)


def instance_uuid(lxd_instance: Body) -> str | None:
    """The Nova instance UUID of an LXD instance dict, None if not ours."""
    return (lxd_instance.get('config') or {}).get(
        constants.INSTANCE_UUID_KEY)


def _quota(extra_specs: Mapping[str, str], key: str) -> int | None:
    value = extra_specs.get('quota:' + key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise exception.InvalidInput(
            reason='flavor extra spec quota:%s=%s is not a non-negative '
                   'integer' % (key, value))
    return number


def disk_limits(extra_specs: Mapping[str, str]) -> dict[str, str]:
    """Root disk I/O limits from the standard ``quota:disk_*`` specs."""
    limits = {}
    for key, (lxd_key, unit) in sorted(_DISK_QUOTAS.items()):
        number = _quota(extra_specs, key)
        if not number:
            continue
        if lxd_key in limits:
            raise exception.InvalidInput(
                reason='LXD limits a disk by bytes or by IOPS, not both: '
                       'set only one of quota:%s and its bytes/iops twin '
                       'in the flavor' % key)
        limits[lxd_key] = '%d%s' % (number, unit)
    return limits


def nic_limits(extra_specs: Mapping[str, str]) -> dict[str, str]:
    """Network bandwidth limits from ``quota:vif_*_average`` (KB/s)."""
    limits = {}
    for key, lxd_key in _VIF_QUOTAS.items():
        number = _quota(extra_specs, key)
        if number:
            limits[lxd_key] = '%dkbit' % (number * 8)
    return limits


def security_config(specs: 'extra_specs.LXDSpecs', allow_privileged: bool,
                    allow_nesting: bool) -> dict[str, str]:
    """LXD security keys for the ``lxd:`` specs the operator allows.

    A flavor asking for more than ``[lxd]`` allows is refused, never
    silently downgraded: the tenant asked for it.
    """
    config = {}
    if specs.privileged:
        if not allow_privileged:
            raise exception.InvalidInput(
                reason='flavor asks for a privileged container '
                       '(lxd:privileged) but this cloud does not allow it; '
                       'the operator allows it with [lxd] allow_privileged '
                       '= True')
        config['security.privileged'] = 'true'
    if specs.nesting:
        if not allow_nesting:
            raise exception.InvalidInput(
                reason='flavor asks for nested containers (lxd:nesting) but '
                       'this cloud does not allow it; the operator allows '
                       'it with [lxd] allow_nesting = True')
        config['security.nesting'] = 'true'
    if specs.isolated_idmap:
        config['security.idmap.isolated'] = 'true'
    return config


def root_disk(flavor: 'objects.Flavor', pool: str,
              extra_specs: Mapping[str, str]) -> dict[str, str]:
    device = {'type': 'disk', 'path': '/', 'pool': pool}
    if flavor.root_gb:
        device['size'] = '%dGiB' % flavor.root_gb
    device.update(disk_limits(extra_specs))
    return device


def limits(flavor: 'objects.Flavor') -> dict[str, str]:
    """Flavor size -> LXD limits (also applied live on resize)."""
    return {'limits.cpu': str(flavor.vcpus),
            'limits.memory': '%dMiB' % flavor.memory_mb}


def check(flavor: 'objects.Flavor', specs: 'extra_specs.LXDSpecs',
          allow_privileged: bool, allow_nesting: bool) -> None:
    """Refuse what ``instance_body`` would refuse, before anything is made.

    InvalidInput naming the extra spec or the ``[lxd]`` option.
    """
    security_config(specs, allow_privileged, allow_nesting)
    disk_limits(flavor.extra_specs)


def _merged(name: str,
            pieces: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One dict of several; a key given twice is a bug, not a choice."""
    merged: dict[str, Any] = {}
    for piece in pieces:
        twice = set(merged) & set(piece)
        if twice:
            raise ValueError('%s %s given twice' % (name, ', '.join(
                sorted(twice))))
        merged.update(piece)
    return merged


def instance_body(instance: 'objects.Instance', flavor: 'objects.Flavor',
                  specs: 'extra_specs.LXDSpecs', fingerprint: str | None,
                  pool: str, parts: Iterable[Part] = (),
                  allow_privileged: bool = False,
                  allow_nesting: bool = False) -> Body:
    """The POST /1.0/instances body for a Nova instance.

    Nova's identity keys, the flavor's limits, root disk and the security
    keys its ``lxd:`` specs may have (``specs``: LXDSpecs; within what
    ``allow_privileged`` and ``allow_nesting`` allow), and what the rooms
    add: ``parts``, container.Parts of the ephemeral disk and volumes, the
    ports, the GPUs, the cloud-init keys.
    """
    config = {
        constants.INSTANCE_UUID_KEY: instance.uuid,
        constants.PROJECT_KEY: instance.project_id,
        constants.FLAVOR_KEY: flavor.name,
        # Nova starts servers (resume_guests_state_on_host_boot), never
        # LXD: a member back from a failure must not start a server that
        # was evacuated meanwhile.
        'boot.autostart': 'false',
    }
    config.update(limits(flavor))
    config.update(security_config(specs, allow_privileged, allow_nesting))
    devices = {'root': root_disk(flavor, pool, flavor.extra_specs)}
    return {
        'name': name(instance),
        'type': 'container',
        'source': {'type': 'image', 'fingerprint': fingerprint},
        # No operator profile: the container is exactly what the driver
        # writes, whatever the LXD default profile holds.
        'profiles': [p for part in parts for p in part.profiles],
        'config': _merged('config key', [config] +
                          [part.config for part in parts]),
        'devices': _merged('device', [devices] +
                           [part.devices for part in parts]),
    }


def rescue_root(instance: 'objects.Instance', pool_info: Body) -> str:
    """The member's path to an instance's root, for its rescue container.

    ``pool_info`` is ``[lxd] storage_pool`` as seen on the instance's
    member; InstanceNotRescuable where its driver keeps no plain folder.
    """
    if pool_info['driver'] not in RESCUE_POOL_DRIVERS:
        raise exception.InstanceNotRescuable(
            instance_id=instance.uuid,
            reason='rescue needs an LXD storage pool of driver %s; [lxd] '
                   'storage_pool is %s' % (
                       ' or '.join(RESCUE_POOL_DRIVERS), pool_info['driver']))
    return '%s/containers/%s/rootfs' % (pool_info['config']['source'],
                                        name(instance))


def rescue_body(instance: 'objects.Instance', flavor: 'objects.Flavor',
                fingerprint: str, pool: str, root: str) -> Body:
    """A container from the rescue image with the original root mounted.

    ``root``: ``rescue_root``, the original root through the member's own
    path to it.
    """
    config = {constants.RESCUE_OF_KEY: instance.uuid}
    config.update(limits(flavor))
    return {
        'name': constants.rescue_name(name(instance)),
        'type': 'container',
        'source': {'type': 'image', 'fingerprint': fingerprint},
        'profiles': [],
        'config': config,
        'devices': {
            'root': {'type': 'disk', 'path': '/', 'pool': pool},
            constants.RESCUE_ROOT_DEVICE: {
                'type': 'disk', 'source': root, 'path': RESCUE_MOUNT},
        },
    }


# -- resize: the container as LXD has it, changed ----------------------


def holds_gpus(found: Body) -> bool:
    """Whether an instance (``GET /1.0/instances/<name>``) has our GPUs."""
    return any(map(constants.is_gpu_device, found['devices']))


def _resized_root(found: Body, flavor: 'objects.Flavor') -> dict[str, str]:
    root = dict(found['devices']['root'])
    root.update(root_disk(flavor, root['pool'], flavor.extra_specs))
    return root


def resize_patch(found: Body, flavor: 'objects.Flavor') -> Body:
    """The PATCH of ``found`` to ``flavor``: limits, root size, disk I/O."""
    return {'config': limits(flavor),
            'devices': {'root': _resized_root(found, flavor)}}


def resized(found: Body, flavor: 'objects.Flavor', gpus: Part) -> Body:
    """``found`` with ``flavor``'s limits and root disk, and ``gpus``.

    ``gpus`` (a Part) replaces the driver's gpu devices and GPU profiles.
    For LXD's PUT (client.replace_instance), which removes what it lacks.
    """
    config = dict(found['config'])
    config.update(limits(flavor))
    devices = {n: d for n, d in found['devices'].items()
               if not constants.is_gpu_device(n)}
    devices['root'] = _resized_root(found, flavor)
    devices.update(gpus.devices)
    profiles = [p for p in found['profiles']
                if not constants.is_gpu_profile(p)] + list(gpus.profiles)
    return dict(found, config=config, devices=devices, profiles=profiles)


# -- a move to another member ------------------------------------------


def member_bound(device: str) -> bool:
    """A device of the driver that only makes sense on its member.

    GPUs name the member's cards, volumes its host's block devices, the
    ephemeral disk its custom volume on the member: they are taken out
    before a move and given again by the destination.
    """
    return (constants.is_gpu_device(device) or
            device == constants.EPHEMERAL_DEVICE or
            device.startswith(constants.VOLUME_DEVICE_PREFIX))


def unbound(found: Body) -> Body:
    """``found`` without its member-bound devices and GPU profiles."""
    return dict(found,
                devices={n: d for n, d in found['devices'].items()
                         if not member_bound(n)},
                profiles=[p for p in found['profiles']
                          if not constants.is_gpu_profile(p)])


def rehomed(found: Body, flavor: 'objects.Flavor',
            parts: Iterable[Part]) -> Body:
    """``found`` on its new member: ``flavor``'s limits and root, ``parts``.

    ``parts`` (the ports, volumes, ephemeral disk and GPUs the new member
    gives) replace the driver's ports and member-bound devices; for LXD's
    PUT (client.replace_instance).
    """
    parts = list(parts)
    config = dict(found['config'])
    config.update(limits(flavor))
    config[constants.FLAVOR_KEY] = flavor.name
    devices = {n: d for n, d in found['devices'].items()
               if not (member_bound(n) or
                       n.startswith(constants.PORT_DEVICE_PREFIX))}
    devices['root'] = _resized_root(found, flavor)
    devices.update(_merged('device', [part.devices for part in parts]))
    profiles = [p for p in found['profiles']
                if not constants.is_gpu_profile(p)]
    profiles += [p for part in parts for p in part.profiles]
    return dict(found, config=config, devices=devices, profiles=profiles)
