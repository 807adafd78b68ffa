"""Nova instance -> LXD instance config (pure).

Only what Nova and the operator decide reaches the container's config:
the flavor, its ``quota:`` and ``lxd:`` extra specs (within what ``[lxd]``
allows), and Nova's identity keys. Nothing a tenant controls (image
properties, metadata, user data) becomes raw or security configuration.
"""

import dataclasses

from nova import exception

from nova_lxd import constants

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

    devices: dict = dataclasses.field(default_factory=dict)
    config: dict = dataclasses.field(default_factory=dict)
    profiles: tuple = ()


def instance_uuid(lxd_instance):
    """The Nova instance UUID of an LXD instance dict, None if not ours."""
    return lxd_instance.get('config', {}).get(constants.INSTANCE_UUID_KEY)


def _quota(extra_specs, key):
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


def disk_limits(extra_specs):
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


def nic_limits(extra_specs):
    """Network bandwidth limits from ``quota:vif_*_average`` (KB/s)."""
    limits = {}
    for key, lxd_key in _VIF_QUOTAS.items():
        number = _quota(extra_specs, key)
        if number:
            limits[lxd_key] = '%dkbit' % (number * 8)
    return limits


def security_config(specs, allow_privileged, allow_nesting):
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


def root_disk(flavor, pool, extra_specs):
    device = {'type': 'disk', 'path': '/', 'pool': pool}
    if flavor.root_gb:
        device['size'] = '%dGiB' % flavor.root_gb
    device.update(disk_limits(extra_specs))
    return device


def limits(flavor):
    """Flavor size -> LXD limits (also applied live on resize)."""
    return {'limits.cpu': str(flavor.vcpus),
            'limits.memory': '%dMiB' % flavor.memory_mb}


def instance_body(instance, flavor, specs, fingerprint, pool,
                  allow_privileged=False, allow_nesting=False):
    """The POST /1.0/instances body for a Nova instance.

    GPU devices and the driver's GPU profile are added at spawn, once the
    cards are chosen.
    """
    config = {
        constants.INSTANCE_UUID_KEY: instance.uuid,
        constants.PROJECT_KEY: instance.project_id,
        constants.FLAVOR_KEY: flavor.name,
    }
    config.update(limits(flavor))
    config.update(security_config(specs, allow_privileged, allow_nesting))
    return {
        'name': instance.name,
        'type': 'container',
        'source': {'type': 'image', 'fingerprint': fingerprint},
        # No operator profile: the container is exactly what the driver
        # writes, whatever the LXD default profile holds.
        'profiles': [],
        'config': config,
        'devices': {'root': root_disk(flavor, pool, flavor.extra_specs)},
    }


def rescue_body(instance, flavor, fingerprint, pool, pool_info):
    """A container from the rescue image with the original root mounted.

    ``pool_info`` is the pool as seen on the instance's member. The
    original root is reached through the member's own path to it.
    """
    if pool_info['driver'] not in RESCUE_POOL_DRIVERS:
        raise exception.InstanceNotRescuable(
            instance_id=instance.uuid,
            reason='rescue needs an LXD storage pool of driver %s; [lxd] '
                   'storage_pool is %s' % (
                       ' or '.join(RESCUE_POOL_DRIVERS), pool_info['driver']))
    root = '%s/containers/%s/rootfs' % (pool_info['config']['source'],
                                        instance.name)
    config = {constants.RESCUE_OF_KEY: instance.uuid}
    config.update(limits(flavor))
    return {
        'name': constants.rescue_name(instance.name),
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
