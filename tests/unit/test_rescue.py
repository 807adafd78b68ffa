"""The rescue container: which root it mounts, as which ids (pure)."""

import json

from nova import exception
from nova import objects
import testtools

from nova_lxd import constants
from nova_lxd import container
from nova_lxd import rescue

objects.register_all()
UUID = 'c0ffee00-0000-4000-8000-000000000001'
ISOLATED_MAP = json.dumps([
    {'Isuid': True, 'Isgid': False, 'Hostid': 165536, 'Nsid': 0,
     'Maprange': 65536},
    {'Isuid': False, 'Isgid': True, 'Hostid': 165536, 'Nsid': 0,
     'Maprange': 65536}])


def instance():
    inst = objects.Instance(uuid=UUID, project_id='p1', node='lxd1',
                            system_metadata={})
    inst.id = 42
    return inst


def flavor():
    return objects.Flavor(name='m1.small', vcpus=2, memory_mb=512,
                          root_gb=5, extra_specs={})


def found(uuid=UUID, location='lxd1', pool='pool1', **config):
    config.setdefault(constants.INSTANCE_UUID_KEY, uuid)
    return {'name': 'instance-0000002a', 'location': location,
            'config': config, 'expanded_config': config,
            'devices': {'root': {'type': 'disk', 'path': '/',
                                 'pool': pool}}}


def pool(driver='dir', source='/srv/pool1', name='pool1', **config):
    config.update(source=source)
    return {'name': name, 'driver': driver, 'config': config}


class RootPathTest(testtools.TestCase):

    def path(self, *args, project='default', **kwargs):
        return rescue.root_path(instance(), *args, project=project, **kwargs)

    def test_default_project_dir_pool(self):
        self.assertEqual('/srv/pool1/containers/instance-0000002a/rootfs',
                         self.path(found(), pool()))

    def test_other_projects_prefix_the_volume_as_lxd_does(self):
        self.assertEqual(
            '/srv/pool1/containers/nova-cloud_instance-0000002a/rootfs',
            self.path(found(), pool(), project='nova-cloud'))
        self.assertEqual('p_x', rescue.volume_name('p', 'x'))
        self.assertEqual('x', rescue.volume_name('default', 'x'))

    def test_btrfs_on_lxds_own_loop_file_and_on_a_subvolume(self):
        self.assertEqual(
            '/var/lib/lxd/storage-pools/pool1/containers/p_instance-'
            '0000002a/rootfs',
            self.path(found(), pool('btrfs', '/var/lib/lxd/disks/pool1.img',
                                    size='5GiB'), project='p'))
        self.assertEqual(
            '/srv/btrfs/containers/instance-0000002a/rootfs',
            self.path(found(), pool('btrfs', '/srv/btrfs')))

    def test_pools_without_a_folder_nova_compute_can_name_are_refused(self):
        for refused, why in (
                (pool('zfs', 'tank/lxd'), 'is zfs; rescue needs dir or '
                 'btrfs'),
                (pool('lvm', '/dev/sdb'), 'is lvm'),
                (pool('btrfs', '/dev/sdb'), 'block device'),
                (pool('btrfs', 'UUID=1234'), 'block device'),
                (pool('btrfs', '/srv/other.img', size='5GiB'),
                 'loop file of its own')):
            e = self.assertRaises(exception.InstanceNotRescuable, self.path,
                                  found(), refused)
            self.assertIn(why, str(e))

    def test_only_this_instances_container_on_its_member(self):
        for other, why in (
                (found(uuid='someone-else'), 'not this server\'s'),
                (found(**{constants.INSTANCE_UUID_KEY: None}),
                 'not this server\'s'),
                (found(location='lxd2'), 'not on its member'),
                (found(pool='pool2'), 'not in pool pool1')):
            e = self.assertRaises(exception.InstanceNotRescuable, self.path,
                                  other, pool())
            self.assertIn(why, str(e))


class BodyTest(testtools.TestCase):

    def body(self, original, gates=container.Gates()):
        return rescue.body(instance(), flavor(), original, 'f1ng', 'pool1',
                           '/srv/pool1/containers/x/rootfs', gates)

    def test_mounts_the_original_root_from_the_member(self):
        body = self.body(found())
        self.assertEqual('instance-0000002a-rescue', body['name'])
        self.assertEqual(
            {'type': 'disk', 'source': '/srv/pool1/containers/x/rootfs',
             'path': '/mnt/original-root'},
            body['devices']['original-root'])
        self.assertEqual(('2', '512MiB', UUID), (
            body['config']['limits.cpu'], body['config']['limits.memory'],
            body['config'][constants.RESCUE_OF_KEY]))
        # Not listed as a Nova instance of its own.
        self.assertIsNone(container.instance_uuid(body))

    def test_the_originals_isolated_range_again(self):
        config = self.body(found(**{
            'security.idmap.isolated': 'true',
            'volatile.last_state.idmap': ISOLATED_MAP}))['config']
        self.assertEqual(('true', '165536', '65536'), (
            config['security.idmap.isolated'],
            config['security.idmap.base'], config['security.idmap.size']))

    def test_a_shared_range_stays_shared(self):
        config = self.body(found())['config']
        self.assertFalse([k for k in config if k.startswith('security.')])

    def test_privileged_only_while_the_operator_allows(self):
        original = found(**{'security.privileged': 'true'})
        e = self.assertRaises(exception.InstanceNotRescuable, self.body,
                              original)
        self.assertIn('[lxd] allow_privileged = False', str(e))
        config = self.body(original, container.Gates(
            allow_privileged=True))['config']
        self.assertEqual('true', config['security.privileged'])
