"""Instance storage beyond the root disk: ephemeral disk and Cinder volumes.

The ephemeral disk is an LXD custom volume on the instance's member, in
``[lxd] storage_pool``, mounted at /mnt: where cloud-init mounts
ephemeral0 on other Nova hosts. A custom volume works on every LXD pool
driver; its ``size`` is enforced where the pool driver enforces sizes
(btrfs, zfs, lvm, ceph; dir only on a backing filesystem with project
quotas).

A Cinder volume is connected on the member by os-brick, as Nova's libvirt
driver does, and the block device it gives is passed into the container
as an LXD ``unix-block`` device at a path the driver chooses (``/dev/vdb``,
``/dev/vdc``..., never a name the request or the image asked for: LXC
follows ``..`` in that path on the host): the tenant gets the block device
itself and formats and mounts it as on any Nova host. os-brick connects
on the host nova-compute runs on, so volumes need nova-compute on the
member itself (the default one-service-per-member layout, over the
member's local socket).

Only connections that give a block device work. Ceph RBD volumes are
mapped by the member's kernel (os-brick's local attach, ``rbd map``:
the member needs ceph-common and the client's keyring); without it
os-brick would give a Python file object, which no container can use.
File-based backends (NFS, GlusterFS and the other shares os-brick
mounts) give a file on a share: they are refused before anything is
mounted or created.

Swap is refused: a container uses its member's swap (LXD's
``limits.memory.swap`` only switches it on or off), so a flavor's swap
size cannot be given to one.
"""

import contextlib
import re

from nova import block_device
from nova.compute import utils as compute_utils
import nova.conf
from nova import exception
from nova import utils
from nova.virt import driver
from os_brick import initiator
from os_brick.initiator import connector
from oslo_log import log as logging
from oslo_utils import excutils

from nova_lxd import conf as lxd_conf  # noqa: F401 (registers [lxd])
from nova_lxd import constants
from nova_lxd import container
from nova_lxd.lxd import errors

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

EPHEMERAL_PATH = '/mnt'

# The names the driver gives a server's disks: the root is vda (no device
# in the container: its root filesystem), then vdb, vdc... Only these
# (and the plain names of earlier releases) become paths in a container.
ROOT_DEVICE_NAME = '/dev/vda'
_DEVICE_PREFIX = 'vd'
_SAFE_DEVICE_PATH = re.compile(r'^/dev/[a-z]{1,8}[0-9]{0,3}$')


def ephemeral_volume_name(instance):
    """The LXD custom volume of an instance's ephemeral disk."""
    return constants.EPHEMERAL_VOLUME_PREFIX + instance.uuid


# os-brick protocols whose connection is a file on a mounted share.
FILE_PROTOCOLS = frozenset((
    initiator.NFS, initiator.GLUSTERFS, initiator.SCALITY, initiator.QUOBYTE,
    initiator.VZSTORAGE, initiator.SMBFS, initiator.GPFS))


def _refuse(reason):
    return exception.InvalidInput(reason=reason)


def check_pool(name, pool_driver, allow_dir_pool):
    """Refuse, at start, a pool that enforces no sizes unless allowed.

    Placement is told every server's DISK_GB; on a dir pool (sizes only
    with project quotas, which LXD does not report) nothing holds a
    server to it.
    """
    if pool_driver == 'dir' and not allow_dir_pool:
        raise errors.bad_config(
            'LXD storage pool "%s" ([lxd] storage_pool) is a dir pool, which '
            'enforces root and ephemeral disk sizes only on a filesystem '
            'with project quotas (LXD does not say whether it has them): a '
            'server could fill its member\'s disk. Use a btrfs, zfs, lvm or '
            'ceph pool, or accept this one with [lxd] allow_dir_pool = True.'
            % name)


def check_volume(connection_info):
    """Refuse a volume whose backend gives no block device (before use)."""
    protocol = connection_info['driver_volume_type']
    if protocol.upper() in FILE_PROTOCOLS:
        raise _refuse(
            'volume %s is a %s volume: a file on a shared filesystem, not a '
            'block device, and the LXD driver passes block devices into '
            'containers. Use a volume type of a Cinder backend that gives '
            'block devices (iSCSI, Fibre Channel, NVMe-oF, Ceph RBD)'
            % (volume_id(connection_info), protocol))


def check_disks(instance, block_device_info):
    """The ephemeral disk size in GiB (0: none) of a boot, or refuse it.

    Everything a container cannot get is refused here, before anything
    is created: a root volume, swap, and more than one ephemeral disk.
    """
    if not instance.image_ref or any(
            bdm.get('boot_index') == 0 for bdm in
            driver.block_device_info_get_mapping(block_device_info)):
        raise _refuse(
            'booting from a volume is not supported by the LXD driver: a '
            'container\'s root is an LXD volume made from a Glance image. '
            'Boot from an image and attach the volume after boot')
    swap = driver.block_device_info_get_swap(block_device_info)
    swap_mb = swap.get('swap_size') or instance.flavor.swap
    if swap_mb:
        raise _refuse(
            'flavor %s asks for %d MiB of swap, which an LXD container '
            'cannot get: containers share their member\'s swap. Use a '
            'flavor with swap 0' % (instance.flavor.name, swap_mb))
    check_volumes(driver.block_device_info_get_mapping(block_device_info))
    ephemerals = driver.block_device_info_get_ephemerals(block_device_info)
    if len(ephemerals) > 1:
        raise _refuse(
            'the LXD driver gives a server one ephemeral disk (at %s), not '
            '%d; ask for one' % (EPHEMERAL_PATH, len(ephemerals)))
    for bdm in driver.block_device_info_get_mapping(block_device_info):
        check_volume(bdm['connection_info'])
    if ephemerals:
        return ephemerals[0]['size']
    return instance.flavor.ephemeral_gb or 0


def check_resize(old, new):
    """Refuse a resize the disks cannot follow (before anything changes).

    Like Nova's libvirt driver, an ephemeral disk never shrinks.
    """
    if new.swap:
        raise _refuse('flavor %s asks for %d MiB of swap, which an LXD '
                      'container cannot get' % (new.name, new.swap))
    if new.ephemeral_gb < old.ephemeral_gb:
        raise _refuse('the ephemeral disk cannot shrink from %d to %d GiB; '
                      'resize to a flavor with ephemeral disk %d GiB or '
                      'more' % (old.ephemeral_gb, new.ephemeral_gb,
                                old.ephemeral_gb))


def _next_name(taken):
    """The first /dev/vdX (after vda) not in ``taken``."""
    index = 1
    while True:
        name = '/dev/' + block_device.generate_device_name(_DEVICE_PREFIX,
                                                           index)
        if name not in taken:
            return name
        index += 1


def _ignored(instance, bdm, name):
    if bdm.device_name and bdm.device_name != name:
        LOG.info('Device name %s asked for, %s given: the LXD driver '
                 'chooses the names', bdm.device_name, name,
                 instance=instance)


def name_devices(instance, bdms):
    """Give a booting server's block devices the driver's names.

    The root (boot index 0) is /dev/vda, the others /dev/vdb, /dev/vdc...
    in their order, whatever the request or the image's
    ``block_device_mapping`` asked for. Saved, as Nova does.
    """
    bdms = list(bdms)
    compute_utils.check_max_disk_devices_to_attach(len(bdms))
    taken = {ROOT_DEVICE_NAME}
    for bdm in bdms:
        if bdm.boot_index == 0:
            name = ROOT_DEVICE_NAME
            instance.root_device_name = name
        else:
            name = _next_name(taken)
            taken.add(name)
        _ignored(instance, bdm, name)
        if bdm.device_name != name:
            bdm.device_name = name
            bdm.save()


def device_name_for(instance, bdms, new_bdm):
    """The name of a volume to attach: the first free /dev/vdX.

    What the attach request asked for is not used.
    """
    taken = {ROOT_DEVICE_NAME} | {
        bdm.device_name for bdm in bdms
        if bdm.device_name and bdm.volume_id != new_bdm.volume_id}
    compute_utils.check_max_disk_devices_to_attach(len(taken) + 1)
    name = _next_name(taken)
    _ignored(instance, new_bdm, name)
    return name


def encrypted(connection_info):
    """Whether Cinder says a volume is encrypted (LUKS, Nova's keys)."""
    return bool((connection_info.get('data') or {}).get('encrypted'))


def _refuse_encrypted(connection_info):
    # Passed as it is, the tenant would get ciphertext it can reformat.
    raise _refuse('volume %s is encrypted, which the LXD driver cannot '
                  'open for a container: use an unencrypted volume type'
                  % volume_id(connection_info))


def check_volumes(volumes):
    """Refuse, before any is connected, volumes a container cannot get.

    ``volumes``: block_device_info's mapping. Encrypted volumes, and
    device names the driver would not give (check_device_path).
    """
    for bdm in volumes:
        if encrypted(bdm['connection_info']):
            _refuse_encrypted(bdm['connection_info'])
        check_device_path(bdm['mount_device'])


def check_device_path(path):
    """Refuse a path in the container the driver would not have chosen.

    Names of earlier releases (a request's, Nova's /dev/sdb...) pass if
    they are a plain device name; anything with another folder or ``..``
    never reaches LXD, which would follow it on the host.
    """
    if not _SAFE_DEVICE_PATH.match(path or ''):
        raise _refuse('volume device name %r is no plain /dev/<name>; the '
                      'LXD driver does not pass it to LXD. Detach the '
                      'volume and attach it again for a name the driver '
                      'chooses' % path)


def ephemeral_volume(instance, size_gb):
    """The POST body of the ephemeral custom volume."""
    return {'name': ephemeral_volume_name(instance),
            'type': 'custom',
            'content_type': 'filesystem',
            'description': 'ephemeral disk of Nova instance %s'
                           % instance.uuid,
            'config': {'size': '%dGiB' % size_gb}}


def ephemeral_device(instance, pool):
    """The container's disk device that mounts the ephemeral volume."""
    return {'type': 'disk', 'pool': pool,
            'source': ephemeral_volume_name(instance),
            'path': EPHEMERAL_PATH}


def volume_id(connection_info):
    """The Cinder volume id of a connection (Nova sets ``serial``)."""
    return (connection_info.get('serial') or
            connection_info.get('data', {}).get('volume_id'))


def volume_device_name(connection_info):
    return constants.VOLUME_DEVICE_PREFIX + volume_id(connection_info)


def volume_device(path, mountpoint):
    """The unix-block device passing a connected volume into a container.

    Root in the container owns it (mode 0660), as a disk of a VM is the
    guest's. ``mountpoint`` passes check_device_path.
    """
    check_device_path(mountpoint)
    return {'type': 'unix-block', 'source': path, 'path': mountpoint,
            'uid': '0', 'gid': '0', 'mode': '0660'}


def check_local(instance, local_member):
    """Refuse a volume operation on a member os-brick cannot reach."""
    if instance.node != local_member:
        raise _refuse(
            'the server is on LXD member %s, but os-brick connects volumes '
            'on the host this nova-compute runs on (member %s): volumes '
            'need a nova-compute on each member, reaching LXD over the '
            'member\'s local socket ([lxd] endpoint)'
            % (instance.node, local_member or 'unknown'))


# -- os-brick ----------------------------------------------------------


def connector_properties():
    """This host's initiator facts for Cinder, as Nova's libvirt gives."""
    return connector.get_connector_properties(
        utils.get_root_helper(), CONF.my_block_storage_ip,
        CONF.lxd.volume_use_multipath, enforce_multipath=True,
        host=CONF.host)


def brick_connector(connection_info):
    """The os-brick connector of a connection's protocol.

    RBD's attaches locally: the member's kernel maps the image to
    /dev/rbd/<pool>/<image>, a block device.
    """
    protocol = connection_info['driver_volume_type']
    local = {'do_local_attach': True} if protocol.upper() == initiator.RBD \
        else {}
    try:
        return connector.InitiatorConnector.factory(
            protocol, utils.get_root_helper(),
            use_multipath=CONF.lxd.volume_use_multipath, **local)
    except ValueError:
        raise exception.VolumeDriverNotFound(driver_type=protocol)


def connect(connection_info):
    """Connect a volume on this host; the path of its block device.

    A file-based protocol is refused before anything is mounted; a
    connection that gives anything but a block device's path (os-brick
    says ``type: block``) is disconnected again and refused.
    """
    check_volume(connection_info)
    brick = brick_connector(connection_info)
    found = brick.connect_volume(connection_info['data'])
    if found.get('type') != 'block' or not isinstance(found.get('path'),
                                                      str):
        brick.disconnect_volume(connection_info['data'], found)
        raise _refuse(
            '%s volume %s gives %s, not a block device; the LXD driver '
            'passes block devices into containers' % (
                connection_info['driver_volume_type'],
                volume_id(connection_info),
                'a %s' % found['type'] if found.get('type') else
                'no device type'))
    return found['path']


def disconnect(connection_info):
    brick_connector(connection_info).disconnect_volume(
        connection_info['data'], None)


def extend(connection_info):
    """Rescan a grown volume; its new size in bytes."""
    return brick_connector(connection_info).extend_volume(
        connection_info['data'])


# -- the instance's disks in LXD ---------------------------------------


class Disks(object):
    """Creates, attaches and removes an instance's disks beyond its root.

    ``lxd`` is the driver's nova_lxd.lxd.client.LXD; ``local_member`` a
    callable giving the member os-brick connects on (None: none).
    """

    def __init__(self, lxd, local_member):
        self.lxd = lxd
        self.local_member = local_member

    @contextlib.contextmanager
    def prepared(self, instance, block_device_info, ephemeral_gb):
        """Make the disks of a spawn; their devices, as a container.Part.

        If the spawn in the ``with`` block fails (it deletes its
        container), the disks made here go too: a failed spawn leaves
        nothing.
        """
        volumes = driver.block_device_info_get_mapping(block_device_info)
        if volumes:
            check_local(instance, self.local_member())
        made, devices = [], {}
        try:
            if ephemeral_gb:
                self.lxd.create_volume(
                    CONF.lxd.storage_pool,
                    ephemeral_volume(instance, ephemeral_gb), instance.node)
                made.append(None)
                devices[constants.EPHEMERAL_DEVICE] = ephemeral_device(
                    instance, CONF.lxd.storage_pool)
            for bdm in volumes:
                info = bdm['connection_info']
                path = connect(info)
                made.append(info)
                devices[volume_device_name(info)] = volume_device(
                    path, bdm['mount_device'])
            yield container.Part(devices=devices)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._remove(instance, made)

    def remove(self, instance, block_device_info, members=None):
        """Delete the ephemeral volume and disconnect the volumes.

        After the container is gone; what is already gone is no error.
        ``members``: where the instance's ephemeral volume is deleted
        (default: on its node).
        """
        self._remove(instance, [None] + self._connections(block_device_info),
                     members)

    def disconnect(self, instance, block_device_info):
        """Disconnect the instance's volumes on this host (they move)."""
        self._remove(instance, self._connections(block_device_info))

    @staticmethod
    def _connections(block_device_info):
        return [bdm['connection_info'] for bdm in
                driver.block_device_info_get_mapping(block_device_info)]

    def _remove(self, instance, made, members=None):
        # Volumes first: one that fails to disconnect is logged, and the
        # ephemeral volume still goes.
        for info in made:
            if info is not None and instance.node == self.local_member():
                try:
                    disconnect(info)
                except Exception:
                    LOG.exception('Disconnecting volume %s failed',
                                  volume_id(info), instance=instance)
        if None in made:
            for member in [instance.node] if members is None else members:
                self.lxd.delete_volume(CONF.lxd.storage_pool,
                                       ephemeral_volume_name(instance),
                                       member)

    def apply_flavor(self, instance, flavor):
        """Size (make, remove) the ephemeral disk as ``flavor`` asks.

        For a resize (the new flavor) and its revert (the old one). A
        revert that cannot shrink the volume back (more is written than
        fits) keeps it larger, with a warning: the data is kept.
        """
        pool = CONF.lxd.storage_pool
        name = ephemeral_volume_name(instance)
        if not flavor.ephemeral_gb:
            self.lxd.remove_device(container.name(instance),
                                   constants.EPHEMERAL_DEVICE)
            self.lxd.delete_volume(pool, name, instance.node)
            return
        size = ephemeral_volume(instance, flavor.ephemeral_gb)['config']
        try:
            self.lxd.update_volume(pool, name, instance.node,
                                   {'config': size})
        except errors.LXDNotFound:
            self.lxd.create_volume(
                pool, ephemeral_volume(instance, flavor.ephemeral_gb),
                instance.node)
            self.lxd.update_instance(container.name(instance), {'devices': {
                constants.EPHEMERAL_DEVICE: ephemeral_device(instance, pool)}})
        except errors.LXDError as e:
            LOG.warning('The ephemeral disk keeps its size, not %s: %s',
                        size['size'], e, instance=instance)

    def reconnect(self, instance, block_device_info):
        """Connect the volumes again after the member rebooted.

        The container's devices then name the paths os-brick gives now,
        which may differ from before.
        """
        volumes = driver.block_device_info_get_mapping(block_device_info)
        if not volumes:
            return
        check_local(instance, self.local_member())
        check_volumes(volumes)
        connected, devices = [], {}
        try:
            for bdm in volumes:
                info = bdm['connection_info']
                path = connect(info)
                connected.append(info)
                devices[volume_device_name(info)] = volume_device(
                    path, bdm['mount_device'])
            self.lxd.update_instance(container.name(instance),
                                     {'devices': devices})
        except Exception:
            with excutils.save_and_reraise_exception():
                self._remove(instance, connected)

    def attach(self, instance, connection_info, mountpoint, encryption):
        """Connect a volume and pass it into the (running) container."""
        check_local(instance, self.local_member())
        if encryption or encrypted(connection_info):
            _refuse_encrypted(connection_info)
        check_device_path(mountpoint)
        path = connect(connection_info)
        try:
            self.lxd.update_instance(container.name(instance), {'devices': {
                volume_device_name(connection_info):
                    volume_device(path, mountpoint)}})
        except Exception:
            with excutils.save_and_reraise_exception():
                disconnect(connection_info)

    def detach(self, instance, connection_info):
        """Take the volume out of the container, then disconnect it."""
        check_local(instance, self.local_member())
        try:
            self.lxd.remove_device(container.name(instance),
                                   volume_device_name(connection_info))
        except errors.LXDNotFound:
            LOG.warning('No container to take volume %s out of',
                        volume_id(connection_info), instance=instance)
        disconnect(connection_info)

    def extend(self, instance, connection_info):
        check_local(instance, self.local_member())
        return extend(connection_info)
