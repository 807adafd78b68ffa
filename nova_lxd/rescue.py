"""A rescue container: the rescue image, with the server's root mounted (pure).

LXD 5.0 attaches only custom volumes to another instance (later LXD
releases add virtual machines' volumes, never containers'), and it can
neither copy an instance volume into a custom one nor boot an instance
from another root. So the rescue container mounts the stopped original's
root by its path on the member: an LXD disk device with a host ``source``
(which an LXD project with ``restricted=true`` refuses unless
``restricted.devices.disk`` and ``restricted.devices.disk.paths`` allow
the pool's folder). That path is computed exactly as LXD lays it out, and
only for the original container of this very instance.

LXD names an instance's volume ``<project>_<name>`` in every project but
``default`` and keeps it in ``<pool mount>/containers/<volume>``; a
stopped container's root is a plain folder there on ``dir`` and
``btrfs`` pools (on zfs, lvm and ceph it is mounted only while the
container runs). The pool's mount is its ``source`` on ``dir`` and for a
btrfs subvolume; for a btrfs pool on a loop file LXD made,
``<LXD folder>/disks/<pool>.img``, it is ``<LXD folder>/storage-pools/
<pool>``; on a block device it is not known to nova-compute.

The rescue container gets the original's id map (an isolated idmap is
the range LXD gave the original, whose files are owned by it), so the
root's owners are right in it.
"""

import json
import posixpath
from typing import Any
from typing import TYPE_CHECKING

from nova import exception

from nova_lxd import constants
from nova_lxd import container

if TYPE_CHECKING:
    from nova import objects

Body = dict[str, Any]

MOUNT = '/mnt/original-root'
# Pool drivers whose instance root is a plain folder on the member even
# while the instance is stopped.
POOL_DRIVERS = ('dir', 'btrfs')
_STANDALONE = ('', 'none', None)


def _refuse(instance: 'objects.Instance', reason: str) -> Exception:
    return exception.InstanceNotRescuable(instance_id=instance.uuid,
                                          reason=reason)


def volume_name(project: str, name: str) -> str:
    """LXD's storage volume of an instance (its ``project.Instance``)."""
    return name if project == 'default' else '%s_%s' % (project, name)


def _pool_mount(pool: Body) -> str | None:
    """Where LXD mounts a pool on the member (GET of it there), or None."""
    source = pool.get('config', {}).get('source') or ''
    if not source.startswith('/') or source.startswith('/dev/'):
        return None         # a block device (or its UUID)
    if pool['driver'] == 'dir':
        return source
    disks, image = posixpath.split(source)
    if image == pool['name'] + '.img' and posixpath.basename(disks) == 'disks':
        # The loop file LXD made in its own folder.
        return posixpath.join(posixpath.dirname(disks), 'storage-pools',
                              pool['name'])
    if pool.get('config', {}).get('size'):
        return None         # a loop file of the operator's
    return source           # a btrfs subvolume


def root_path(instance: 'objects.Instance', found: Body, pool: Body,
              project: str) -> str:
    """The member's path to the stopped original's root.

    ``found``: LXD's GET of the instance's container; ``pool``: LXD's GET
    of the pool of its root disk, on its member; ``project``: ``[lxd]
    project``. InstanceNotRescuable, saying why, when the container is not
    this instance's or the pool keeps no folder nova-compute can name.
    """
    config = found.get('config') or {}
    if config.get(constants.INSTANCE_UUID_KEY) != instance.uuid:
        raise _refuse(instance, 'its container is not this server\'s')
    if found.get('location') not in _STANDALONE + (instance.node,):
        raise _refuse(instance, 'its container is not on its member')
    root = (found.get('expanded_devices') or found['devices']).get('root')
    if not root or root.get('pool') != pool['name']:
        raise _refuse(instance, 'its root disk is not in pool %s'
                      % pool['name'])
    if pool['driver'] not in POOL_DRIVERS:
        raise _refuse(instance, 'the LXD storage pool %s is %s; rescue '
                      'needs %s' % (pool['name'], pool['driver'],
                                    ' or '.join(POOL_DRIVERS)))
    mount = _pool_mount(pool)
    if mount is None:
        raise _refuse(instance, 'the LXD storage pool %s is on a block '
                      'device or a loop file of its own, whose mount on the '
                      'member nova-compute cannot know' % pool['name'])
    return posixpath.join(mount, 'containers',
                          volume_name(project, found['name']), 'rootfs')


def _id_map(found: Body) -> dict[str, str]:
    """The original's id map, for a container that mounts its root.

    Its root is owned as LXD shifted it last (``volatile.last_state.
    idmap``): an isolated range is given again by base and size; the
    shared range is every unprivileged container's anyway.
    """
    config = found.get('expanded_config') or found['config']
    if config.get('security.privileged') == 'true':
        return {'security.privileged': 'true'}
    if config.get('security.idmap.isolated') != 'true':
        return {}
    last = json.loads(config.get('volatile.last_state.idmap') or '[]')
    uids = [m for m in last if m.get('Isuid')]
    if not uids:
        return {'security.idmap.isolated': 'true'}
    return {'security.idmap.isolated': 'true',
            'security.idmap.base': str(uids[0]['Hostid']),
            'security.idmap.size': str(uids[0]['Maprange'])}


def body(instance: 'objects.Instance', flavor: 'objects.Flavor',
         found: Body, fingerprint: str, pool: str, root: str,
         gates: container.Gates) -> Body:
    """A container from the rescue image with the original root mounted.

    ``found``: LXD's GET of the original; ``root``: ``root_path``. The
    rescue container has the flavor's limits and the original's id map;
    a privileged original needs the operator's leave to start as now.
    """
    problem = container.start_problem(found, instance.project_id, gates)
    if problem:
        raise _refuse(instance, problem)
    config = {constants.RESCUE_OF_KEY: instance.uuid}
    config.update(container.limits(
        flavor, container.flavor_specs(flavor), gates))
    config.update(_id_map(found))
    return {
        'name': constants.rescue_name(container.name(instance)),
        'type': 'container',
        'source': {'type': 'image', 'fingerprint': fingerprint},
        'profiles': [],
        'config': config,
        'devices': {
            'root': {'type': 'disk', 'path': '/', 'pool': pool},
            constants.RESCUE_ROOT_DEVICE: {
                'type': 'disk', 'source': root, 'path': MOUNT},
        },
    }
