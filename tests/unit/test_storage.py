"""Ephemeral disks and Cinder volumes: what a boot gets or is refused."""

from unittest import mock

import fixtures
from nova import exception
from nova import objects
from nova import test
from oslo_utils.fixture import uuidsentinel as uuids
import testtools

from nova_lxd import conf  # noqa: F401 (registers [lxd])
from nova_lxd.lxd import errors
from nova_lxd import storage
from tests.unit import fakes


def _instance(ephemeral_gb=0, swap=0, image_ref=uuids.image, node='lxd1'):
    inst = fakes.instance(uuid=uuids.inst, node=node, image_ref=image_ref)
    inst.flavor = objects.Flavor(name='m1', vcpus=1, memory_mb=256,
                                 root_gb=1, ephemeral_gb=ephemeral_gb,
                                 swap=swap, extra_specs={})
    return inst


def _volume(volume_id, boot_index=None, mount='/dev/vdb', encrypted=None):
    data = {'volume_id': volume_id}
    if encrypted is not None:
        data['encrypted'] = encrypted
    return {'connection_info': {'driver_volume_type': 'iscsi',
                                'serial': volume_id, 'data': data},
            'mount_device': mount, 'boot_index': boot_index}


def _rbd(volume_id):
    """A Ceph RBD connection as Cinder's RBD driver gives it to Nova."""
    return {'driver_volume_type': 'rbd', 'serial': volume_id,
            'data': {'name': 'volumes/volume-' + volume_id,
                     'hosts': ['192.0.2.11', '192.0.2.12'],
                     'ports': ['6789', '6789'],
                     'cluster_name': 'ceph', 'auth_enabled': True,
                     'auth_username': 'cinder', 'secret_type': 'ceph',
                     'secret_uuid': uuids.secret, 'volume_id': volume_id,
                     'discard': True, 'keyring': None,
                     'qos_specs': None, 'access_mode': 'rw',
                     'encrypted': False}}


def _nfs(volume_id, protocol='nfs'):
    """An NFS connection as Cinder's NFS (RemoteFS) driver gives it."""
    return {'driver_volume_type': protocol, 'serial': volume_id,
            'mount_point_base': '/var/lib/cinder/mnt',
            'data': {'export': '192.0.2.20:/srv/cinder',
                     'name': 'volume-' + volume_id, 'options': None,
                     'format': 'raw', 'volume_id': volume_id,
                     'access_mode': 'rw', 'encrypted': False}}


class CheckDisksTest(test.NoDBTestCase):

    def test_flavor_ephemeral_without_block_device_info(self):
        self.assertEqual(2, storage.check_disks(_instance(ephemeral_gb=2),
                                                None))
        self.assertEqual(0, storage.check_disks(_instance(), {}))

    def test_the_ephemeral_block_device_size_wins(self):
        info = {'ephemerals': [{'size': 1, 'device_name': '/dev/vdb'}]}
        self.assertEqual(1, storage.check_disks(_instance(ephemeral_gb=5),
                                                info))

    def test_boot_from_volume_refused(self):
        for inst, info in (
                (_instance(image_ref=''), {}),
                (_instance(), {'block_device_mapping': [
                    _volume(uuids.vol, boot_index=0)]})):
            e = self.assertRaises(exception.InvalidInput,
                                  storage.check_disks, inst, info)
            self.assertIn('booting from a volume is not supported',
                          str(e))

    def test_file_volumes_at_boot_refused(self):
        for protocol in ('nfs', 'glusterfs', 'quobyte', 'NFS'):
            info = {'block_device_mapping': [
                {'connection_info': _nfs(uuids.vol, protocol),
                 'mount_device': '/dev/vdb', 'boot_index': -1}]}
            e = self.assertRaises(exception.InvalidInput,
                                  storage.check_disks, _instance(), info)
            self.assertIn('volume %s is a %s volume' % (uuids.vol, protocol),
                          str(e))
            self.assertIn('not a block device', str(e))

    def test_data_volumes_at_boot_pass(self):
        info = {'block_device_mapping': [_volume(uuids.vol, boot_index=-1)]}
        self.assertEqual(0, storage.check_disks(_instance(), info))

    def test_swap_refused_with_the_flavor_named(self):
        for inst, info in (
                (_instance(swap=512), {}),
                (_instance(), {'swap': {'device_name': '/dev/vdc',
                                        'swap_size': 512}})):
            e = self.assertRaises(exception.InvalidInput,
                                  storage.check_disks, inst, info)
            self.assertIn('flavor m1 asks for 512 MiB of swap', str(e))
            self.assertIn('swap 0', str(e))

    def test_encrypted_volume_at_boot_refused(self):
        info = {'block_device_mapping': [
            _volume(uuids.plain, boot_index=-1, encrypted=False),
            _volume(uuids.luks, boot_index=-1, mount='/dev/vdc',
                    encrypted=True)]}
        e = self.assertRaises(exception.InvalidInput, storage.check_disks,
                              _instance(), info)
        self.assertIn('volume %s is encrypted' % uuids.luks, str(e))

    def test_device_path_outside_dev_refused(self):
        for bad in ('/dev/../../etc/x', '/dev/vdb/../x', 'vdb', '/tmp/vdb',
                    '/dev/', '/dev/vd b', None):
            info = {'block_device_mapping': [
                _volume(uuids.vol, boot_index=-1, mount=bad)]}
            e = self.assertRaises(exception.InvalidInput,
                                  storage.check_disks, _instance(), info)
            self.assertIn('no plain /dev/<name>', str(e))
        for good in ('/dev/vdb', '/dev/sdc', '/dev/xvdaa', '/dev/vdb1'):
            storage.check_device_path(good)

    def test_more_than_one_ephemeral_refused(self):
        info = {'ephemerals': [{'size': 1}, {'size': 1}]}
        e = self.assertRaises(exception.InvalidInput, storage.check_disks,
                              _instance(ephemeral_gb=2), info)
        self.assertIn('one ephemeral disk (at /mnt), not 2', str(e))


class DeviceNamesTest(test.NoDBTestCase):
    """The names of a server's disks are the driver's own."""

    def bdm(self, name, boot_index=None, volume_id=None):
        bdm = objects.BlockDeviceMapping(device_name=name,
                                         boot_index=boot_index,
                                         volume_id=volume_id)
        bdm.save = mock.Mock()
        return bdm

    def test_a_boot_gets_vda_then_vdb_whatever_was_asked(self):
        inst = _instance()
        root = self.bdm('/dev/../../root', boot_index=0)
        asked = self.bdm('/dev/../../../tmp/escape', boot_index=-1,
                         volume_id=uuids.a)
        unnamed = self.bdm(None, boot_index=-1, volume_id=uuids.b)
        good = self.bdm('/dev/vdb', boot_index=-1, volume_id=uuids.c)
        storage.name_devices(inst, [root, asked, unnamed, good])
        self.assertEqual(['/dev/vda', '/dev/vdb', '/dev/vdc', '/dev/vdd'],
                         [b.device_name for b in (root, asked, unnamed,
                                                  good)])
        self.assertEqual('/dev/vda', inst.root_device_name)
        for bdm in (root, asked, unnamed, good):
            bdm.save.assert_called_once_with()

    def test_names_already_the_drivers_are_kept(self):
        bdms = [self.bdm('/dev/vda', 0), self.bdm('/dev/vdb', -1)]
        storage.name_devices(_instance(), bdms)
        for bdm in bdms:
            bdm.save.assert_not_called()

    def test_attach_gets_the_first_free_name_not_the_asked_one(self):
        bdms = [self.bdm('/dev/vda', 0), self.bdm('/dev/vdb', None, uuids.a),
                self.bdm('/dev/sdc', None, uuids.b)]
        new = self.bdm('/dev/../x', None, uuids.new)
        self.assertEqual('/dev/vdc', storage.device_name_for(
            _instance(), bdms, new))
        bdms.append(self.bdm('/dev/vdc', None, uuids.c))
        self.assertEqual('/dev/vdd', storage.device_name_for(
            _instance(), bdms, new))

    def test_the_operators_maximum_holds(self):
        self.flags(max_disk_devices_to_attach=2, group='compute')
        bdms = [self.bdm('/dev/vda', 0), self.bdm('/dev/vdb', None, uuids.a)]
        self.assertRaises(exception.TooManyDiskDevices,
                          storage.device_name_for, _instance(), bdms,
                          self.bdm(None, None, uuids.new))
        self.assertRaises(exception.TooManyDiskDevices, storage.name_devices,
                          _instance(), bdms + [self.bdm(None, -1, uuids.b)])


class CheckResizeTest(test.NoDBTestCase):

    def test_ephemeral_grows_or_stays(self):
        storage.check_resize(_instance(ephemeral_gb=1).flavor,
                             _instance(ephemeral_gb=2).flavor)
        storage.check_resize(_instance().flavor,
                             _instance(ephemeral_gb=1).flavor)

    def test_ephemeral_never_shrinks(self):
        e = self.assertRaises(exception.InvalidInput, storage.check_resize,
                              _instance(ephemeral_gb=2).flavor,
                              _instance(ephemeral_gb=1).flavor)
        self.assertIn('cannot shrink from 2 to 1 GiB', str(e))

    def test_swap_refused(self):
        self.assertRaises(exception.InvalidInput, storage.check_resize,
                          _instance().flavor, _instance(swap=1).flavor)


class DevicesTest(test.NoDBTestCase):

    def test_ephemeral_volume_and_its_mount(self):
        inst = _instance(ephemeral_gb=3)
        body = storage.ephemeral_volume(inst, 3)
        self.assertEqual('nova-ephemeral-%s' % inst.uuid, body['name'])
        self.assertEqual({'size': '3GiB'}, body['config'])
        self.assertEqual('filesystem', body['content_type'])
        self.assertEqual({'type': 'disk', 'pool': 'p', 'path': '/mnt',
                          'source': body['name']},
                         storage.ephemeral_device(inst, 'p'))

    def test_volume_is_a_block_device_at_nova_mountpoint(self):
        info = _volume(uuids.vol)['connection_info']
        self.assertEqual('nova-volume-%s' % uuids.vol,
                         storage.volume_device_name(info))
        device = storage.volume_device('/dev/sdc', '/dev/vdb')
        self.assertEqual(('unix-block', '/dev/sdc', '/dev/vdb'),
                         (device['type'], device['source'], device['path']))

    def test_volume_elsewhere_than_the_local_member_refused(self):
        e = self.assertRaises(exception.InvalidInput, storage.check_local,
                              _instance(node='lxd2'), 'lxd1')
        self.assertIn('member lxd2', str(e))
        self.assertIn('(member lxd1)', str(e))
        storage.check_local(_instance(node='lxd1'), 'lxd1')


class BrickTest(test.NoDBTestCase):

    def test_connector_facts_come_from_os_brick_with_nova_root_helper(self):
        self.flags(my_block_storage_ip='192.0.2.5', host='compute1')
        with mock.patch('os_brick.initiator.connector.'
                        'get_connector_properties',
                        return_value={'initiator': 'iqn.x'}) as props:
            self.assertEqual({'initiator': 'iqn.x'},
                             storage.connector_properties())
        props.assert_called_once_with(
            'sudo nova-rootwrap /etc/nova/rootwrap.conf', '192.0.2.5', False,
            enforce_multipath=True, host='compute1')

    def test_unknown_protocol_is_volume_driver_not_found(self):
        self.assertRaises(exception.VolumeDriverNotFound,
                          storage.connect,
                          {'driver_volume_type': 'nonsense', 'data': {}})

    def test_a_connection_without_a_block_type_is_disconnected_refused(self):
        # os-brick's RBD connector without local attach: a file object.
        handle = object()
        brick = mock.Mock()
        brick.connect_volume.return_value = {'path': handle}
        info = _rbd(uuids.vol)
        with mock.patch.object(storage, 'brick_connector',
                               return_value=brick):
            e = self.assertRaises(exception.InvalidInput, storage.connect,
                                  info)
        self.assertIn('gives no device type, not a block device', str(e))
        brick.disconnect_volume.assert_called_once_with(
            info['data'], {'path': handle})

    def test_nfs_refused_before_os_brick_mounts_anything(self):
        with mock.patch('os_brick.remotefs.remotefs.RemoteFsClient.mount'
                        ) as mount, mock.patch.object(
                storage.connector.InitiatorConnector, 'factory') as factory:
            e = self.assertRaises(exception.InvalidInput, storage.connect,
                                  _nfs(uuids.vol))
        self.assertIn('a nfs volume: a file on a shared filesystem', str(e))
        mount.assert_not_called()
        factory.assert_not_called()

    def test_rbd_is_mapped_by_the_kernel_into_a_block_device(self):
        """os-brick's own RBD connector, only its commands faked."""
        info = _rbd(uuids.vol)
        device = '/dev/rbd/volumes/volume-' + uuids.vol
        mapped = []

        def execute(*cmd, **kwargs):
            if cmd[:2] == ('rbd', 'map'):
                mapped.append(device)
            if cmd[:2] == ('rbd', 'showmapped'):
                return ('[{"id": "0", "pool": "volumes", "namespace": "", '
                        '"name": "volume-%s", "snap": "-", '
                        '"device": "/dev/rbd0"}]' % uuids.vol, '')
            if cmd[:2] == ('rbd', 'unmap'):
                mapped.remove(device)
            return '', ''

        rbd = 'os_brick.initiator.connectors.rbd.RBDConnector'
        with mock.patch(rbd + '._execute', side_effect=execute) as run, \
                mock.patch('os.path.islink',
                           side_effect=lambda p: p in mapped), \
                mock.patch('os.path.exists', return_value=True):
            self.assertEqual(device, storage.connect(info))
            self.assertEqual([device], mapped)
            storage.disconnect(info)
        self.assertEqual([], mapped)
        monitors = ['--id', 'cinder',
                    '--mon_host', '192.0.2.11:6789,192.0.2.12:6789']
        self.assertEqual(
            [mock.call('which', 'rbd'),
             mock.call('rbd', 'map', 'volume-' + uuids.vol,
                       '--pool', 'volumes', *monitors,
                       root_helper=mock.ANY, run_as_root=True),
             mock.call('rbd', 'showmapped', '--format=json', *monitors,
                       root_helper=mock.ANY, run_as_root=True),
             mock.call('rbd', 'unmap', '/dev/rbd0', *monitors,
                       root_helper=mock.ANY, run_as_root=True)],
            run.call_args_list)


class DisksTest(test.NoDBTestCase):
    """The spawn hook leaves nothing behind when something fails."""

    def setUp(self):
        super().setUp()
        self.flags(storage_pool='pool', group='lxd')
        self.lxd = mock.Mock()
        self.disks = storage.Disks(self.lxd, lambda: 'lxd1')
        self.brick = mock.Mock()
        self.brick.connect_volume.return_value = {'type': 'block',
                                                  'path': '/dev/sdx'}
        self.useFixture(fixtures.MockPatchObject(
            storage, 'brick_connector', return_value=self.brick))

    def test_spawn_gets_the_ephemeral_volume_and_the_volumes(self):
        inst = _instance(ephemeral_gb=1)
        info = {'block_device_mapping': [_volume(uuids.vol)]}
        with self.disks.prepared(inst, info, 1) as disks:
            pass
        self.lxd.create_volume.assert_called_once_with(
            'pool', storage.ephemeral_volume(inst, 1), 'lxd1')
        self.assertEqual({'ephemeral0', 'nova-volume-%s' % uuids.vol},
                         set(disks.devices))
        self.assertEqual('/dev/sdx', disks.devices[
            'nova-volume-%s' % uuids.vol]['source'])

    def test_failed_spawn_removes_what_it_made(self):
        inst = _instance(ephemeral_gb=1)
        info = {'block_device_mapping': [_volume(uuids.vol)]}
        with testtools.ExpectedException(RuntimeError):
            with self.disks.prepared(inst, info, 1):
                raise RuntimeError('create failed')
        self.lxd.delete_volume.assert_called_once_with(
            'pool', storage.ephemeral_volume_name(inst), 'lxd1')
        self.brick.disconnect_volume.assert_called_once_with(
            {'volume_id': uuids.vol}, None)

    def test_failed_connect_removes_the_ephemeral_volume(self):
        self.brick.connect_volume.side_effect = OSError('no path')
        inst = _instance(ephemeral_gb=1)
        info = {'block_device_mapping': [_volume(uuids.vol)]}
        with testtools.ExpectedException(OSError):
            with self.disks.prepared(inst, info, 1):
                pass
        self.lxd.delete_volume.assert_called_once_with(
            'pool', storage.ephemeral_volume_name(inst), 'lxd1')
        self.brick.disconnect_volume.assert_not_called()

    def test_reconnect_points_the_devices_at_the_new_paths(self):
        self.brick.connect_volume.return_value = {'type': 'block',
                                                  'path': '/dev/sdy'}
        inst = _instance()
        self.disks.reconnect(inst, {'block_device_mapping': [
            _volume(uuids.vol, mount='/dev/vdc')]})
        self.lxd.update_instance.assert_called_once_with(inst.name, {
            'devices': {'nova-volume-%s' % uuids.vol:
                        storage.volume_device('/dev/sdy', '/dev/vdc')}})

    def test_resize_grows_the_ephemeral_volume(self):
        inst = _instance(ephemeral_gb=2)
        self.disks.apply_flavor(inst, inst.flavor)
        self.lxd.update_volume.assert_called_once_with(
            'pool', storage.ephemeral_volume_name(inst), 'lxd1',
            {'config': {'size': '2GiB'}})
        self.lxd.create_volume.assert_not_called()

    def test_resize_to_a_first_ephemeral_disk_makes_and_mounts_it(self):
        self.lxd.update_volume.side_effect = errors.LXDNotFound(reason='x')
        inst = _instance(ephemeral_gb=1)
        self.disks.apply_flavor(inst, inst.flavor)
        self.lxd.create_volume.assert_called_once_with(
            'pool', storage.ephemeral_volume(inst, 1), 'lxd1')
        self.lxd.update_instance.assert_called_once_with(inst.name, {
            'devices': {'ephemeral0': storage.ephemeral_device(inst,
                                                               'pool')}})

    def test_revert_to_no_ephemeral_disk_removes_it(self):
        inst = _instance()
        self.disks.apply_flavor(inst, inst.flavor)
        self.lxd.remove_device.assert_called_once_with(inst.name,
                                                       'ephemeral0')
        self.lxd.delete_volume.assert_called_once_with(
            'pool', storage.ephemeral_volume_name(inst), 'lxd1')

    def test_failed_attach_disconnects(self):
        self.lxd.update_instance.side_effect = RuntimeError('LXD said no')
        info = _volume(uuids.vol)['connection_info']
        self.assertRaises(RuntimeError, self.disks.attach, _instance(),
                          info, '/dev/vdb', None)
        self.brick.disconnect_volume.assert_called_once_with(
            info['data'], None)

    def test_detach_without_a_container_still_disconnects(self):
        self.lxd.remove_device.side_effect = errors.LXDNotFound(reason='x')
        info = _volume(uuids.vol)['connection_info']
        self.disks.detach(_instance(), info)
        self.brick.disconnect_volume.assert_called_once_with(
            info['data'], None)

    def test_destroy_disconnects_even_when_the_volume_delete_fails(self):
        self.lxd.delete_volume.side_effect = RuntimeError('LXD said no')
        info = {'block_device_mapping': [_volume(uuids.vol)]}
        self.assertRaises(RuntimeError, self.disks.remove, _instance(), info)
        self.brick.disconnect_volume.assert_called_once_with(
            {'volume_id': uuids.vol}, None)

    def test_nfs_attach_refused_before_anything_changes(self):
        e = self.assertRaises(exception.InvalidInput, self.disks.attach,
                              _instance(), _nfs(uuids.vol), '/dev/vdb', None)
        self.assertIn('not a block device', str(e))
        self.brick.connect_volume.assert_not_called()
        self.lxd.update_instance.assert_not_called()

    def test_encrypted_volume_refused_before_connecting(self):
        self.assertRaises(exception.InvalidInput, self.disks.attach,
                          _instance(), _volume(uuids.vol)['connection_info'],
                          '/dev/vdb', {'provider': 'luks'})
        self.assertRaises(exception.InvalidInput, self.disks.attach,
                          _instance(), _volume(uuids.vol, encrypted=True)[
                              'connection_info'], '/dev/vdb', None)
        self.assertRaises(exception.InvalidInput, self.disks.attach,
                          _instance(), _volume(uuids.vol)['connection_info'],
                          '/dev/../x', None)
        self.brick.connect_volume.assert_not_called()

    def test_reconnect_refuses_encrypted_volumes_before_connecting(self):
        info = {'block_device_mapping': [
            _volume(uuids.plain), _volume(uuids.luks, mount='/dev/vdc',
                                          encrypted=True)]}
        self.assertRaises(exception.InvalidInput, self.disks.reconnect,
                          _instance(), info)
        self.brick.connect_volume.assert_not_called()
        self.lxd.update_instance.assert_not_called()

    def test_failed_reconnect_leaves_nothing_connected(self):
        self.brick.connect_volume.side_effect = [
            {'type': 'block', 'path': '/dev/sdx'}, OSError('no path')]
        info = {'block_device_mapping': [
            _volume(uuids.one), _volume(uuids.two, mount='/dev/vdc')]}
        self.assertRaises(OSError, self.disks.reconnect, _instance(), info)
        self.brick.disconnect_volume.assert_called_once_with(
            {'volume_id': uuids.one}, None)
        self.lxd.update_instance.assert_not_called()
        self.lxd.delete_volume.assert_not_called()
