"""Ephemeral disks, root disk quotas and Cinder volumes, through Nova's API.

Cinder is Nova's CinderFixture. os-brick's connector facts are the real
ones of this machine (os-brick's privileged calls run in the test
process, which is root, instead of through sudo and rootwrap, and read
this machine's /sys and interfaces, which Nova's tests otherwise forbid);
os-brick's connector for the volume's protocol is replaced by
``LoopConnector``, which connects a "volume" as a real loop device over a
sparse file, as an iSCSI connector would give a /dev/sdX.
"""

import glob
import io
import os
import subprocess
import time
import uuid

import fixtures
import nova.conf
from nova import context
from nova import objects
from nova.tests.fixtures import cinder as cinder_fixture
from nova.volume import cinder
import os_brick.privileged
from oslo_serialization import jsonutils
from oslo_utils import units
import psutil

from nova_lxd import constants
from nova_lxd import storage
from tests.functional import base

# What nova.test's poison fixtures replace, as they are (at import).
_HOST_READERS = {'os.path.isdir': os.path.isdir, 'builtins.open': open,
                 'glob.iglob': glob.iglob, 'os.listdir': os.listdir,
                 'glob.glob': glob.glob,
                 'psutil.net_if_addrs': psutil.net_if_addrs}
MACHINE = os.uname().machine
VOLUME_SIZE = 64 * units.Mi
# The file name marks the tests' loop devices (tools/run-tests looks).
LOOP_FILE_PREFIX = 'nova-lxd-test-volume-'


class LoopConnector(object):
    """os-brick's connector interface over loop devices made here."""

    def __init__(self, folder):
        self.folder = folder
        self.loops = {}     # volume id -> loop device
        self.connected = []     # every volume id connected, in order

    def _file(self, volume_id):
        return os.path.join(self.folder, LOOP_FILE_PREFIX + volume_id)

    def connect_volume(self, props):
        path = self._file(props['volume_id'])
        with open(path, 'wb') as f:
            f.truncate(VOLUME_SIZE)
        loop = subprocess.run(['losetup', '--find', '--show', path],
                              check=True, capture_output=True,
                              text=True).stdout.strip()
        self.loops[props['volume_id']] = loop
        self.connected.append(props['volume_id'])
        return {'type': 'block', 'path': loop}

    def disconnect_volume(self, props, device_info, force=False,
                          ignore_errors=False):
        loop = self.loops.pop(props['volume_id'], None)
        if loop:
            subprocess.run(['losetup', '-d', loop], check=True)
            os.unlink(self._file(props['volume_id']))

    def extend_volume(self, props):
        """Cinder grew the volume to 1 GiB (the fixture's volume size)."""
        path = self._file(props['volume_id'])
        with open(path, 'r+b') as f:
            f.truncate(units.Gi)
        subprocess.run(['losetup', '-c', self.loops[props['volume_id']]],
                       check=True)
        return units.Gi

    def cleanup(self):
        for volume_id in list(self.loops):
            self.disconnect_volume({'volume_id': volume_id}, None)


def _loops_of(folder):
    out = subprocess.run(['losetup', '--list', '--noheadings', '--output',
                          'NAME,BACK-FILE'], check=True, capture_output=True,
                         text=True).stdout
    return [line.split()[0] for line in out.splitlines()
            if folder in line]


def use_loop_volumes(test):
    """os-brick as described above, for ``test``; its LoopConnector."""
    # Privileged os-brick calls in this (root) process, as Nova's own
    # PrivsepFixture does for nova's context.
    test.useFixture(fixtures.MockPatchObject(
        os_brick.privileged.default, 'client_mode', False))
    for name, real in _HOST_READERS.items():
        test.useFixture(fixtures.MonkeyPatch(name, real))
    loops = LoopConnector(test.useFixture(fixtures.TempDir()).path)
    test.addCleanup(loops.cleanup)
    loops.protocols = []

    def factory(protocol, root_helper, **kwargs):
        loops.protocols.append(protocol)
        return loops
    test.useFixture(fixtures.MockPatch(
        'os_brick.initiator.connector.InitiatorConnector.factory',
        side_effect=factory))
    return loops


class StorageTestCase(base.ServersTestCase):

    def setUp(self):
        super().setUp()
        self.loops = use_loop_volumes(self)

    def exec(self, server, *command):
        return self.bed.exec(server['OS-EXT-SRV-ATTR:instance_name'],
                             *command)

    def wait(self, what, check, seconds=30):
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                self.fail('timed out waiting for %s' % what)
            time.sleep(0.2)

    def boot_for_volumes(self):
        """Boot; then make [DEFAULT] host the server's compute host.

        Nova's volume detach runs only where instance.host == CONF.host,
        and CONF.host is one for all the in-process compute services.
        """
        server = self.boot()
        self.flags(host=server['OS-EXT-SRV-ATTR:host'])
        return server

    def volume_names(self):
        return {name for _, _, name in self.bed.nova_volumes()}


class VolumeTest(StorageTestCase):

    def test_volume_is_a_block_device_in_the_container(self):
        server = self.boot_for_volumes()
        volume_id = str(uuid.uuid4())
        self._attach_volume(server, volume_id)
        device = self.api.get_server_volume(server['id'], volume_id)[
            'device']

        # Cinder got this host's real connector facts from os-brick.
        connector = cinder.API.attachment_update.call_args[0][2]
        self.assertEqual((MACHINE, 'linux', False),
                         (connector['platform'], connector['os_type'],
                          connector['multipath']))
        self.assertEqual((server['OS-EXT-SRV-ATTR:host'],
                          nova.conf.CONF.my_block_storage_ip),
                         (connector['host'], connector['ip']))
        self.assertEqual(['fake'], self.loops.protocols[:1])

        loop = self.loops.loops[volume_id]
        name = storage.volume_device_name({'serial': volume_id})
        self.assertEqual(
            {'type': 'unix-block', 'source': loop, 'path': device,
             'uid': '0', 'gid': '0', 'mode': '0660'},
            self.container(server)['devices'][name])
        # A block device (the loop's numbers) at Nova's path, of its size,
        # and what is written there lands on the member's device.
        major_minor = os.stat(loop).st_rdev
        rc, out, err = self.exec(server, 'stat', '-c', '%F %t:%T', device)
        self.assertEqual(0, rc, err)
        self.assertEqual('block special file %x:%x' % (
            os.major(major_minor), os.minor(major_minor)), out.strip())
        rc, out, err = self.exec(server, 'blockdev', '--getsize64', device)
        self.assertEqual((0, str(VOLUME_SIZE)), (rc, out.strip()), err)
        rc, out, err = self.exec(server, 'sh', '-c',
                                 'echo nova-lxd-volume | dd of=%s '
                                 'conv=fsync' % device)
        self.assertEqual(0, rc, err)
        with open(loop, 'rb') as f:
            self.assertEqual(b'nova-lxd-volume\n', f.read(16))

        # Cinder grew the volume: Nova's volume-extended event.
        self.admin_api.microversion = '2.51'
        self.admin_api.create_server_external_events([{
            'name': 'volume-extended', 'server_uuid': server['id'],
            'tag': volume_id}])
        self.wait('the grown volume in the container', lambda: self.exec(
            server, 'blockdev', '--getsize64', device)[1].strip() ==
            str(units.Gi))

        self.api.delete_server_volume(server['id'], volume_id)
        self._wait_for_volume_detach(server['id'], volume_id)
        self.wait('the device to leave the container',
                  lambda: name not in self.container(server)['devices'])
        rc, _, _ = self.exec(server, 'test', '-e', device)
        self.assertEqual(1, rc)
        # os-brick disconnected it: no loop device of the test is left.
        self.assertEqual({}, self.loops.loops)
        self.assertEqual([], _loops_of(self.loops.folder))
        self.assertEqual('Running', self.container(server)['status'])

    def test_nfs_volume_refused_before_anything_is_mounted(self):
        """Cinder's NFS connection (os-brick's RemoteFS): a file, refused."""
        server = self.boot_for_volumes()
        volume_id = str(uuid.uuid4())
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.CinderFixture.VOLUME_CONNECTION_INFO',
            dict(cinder_fixture.CinderFixture.VOLUME_CONNECTION_INFO, **{
                volume_id: {'driver_volume_type': 'nfs',
                            'mount_point_base': '/var/lib/cinder/mnt',
                            'data': {'export': '192.0.2.20:/srv/cinder',
                                     'name': 'volume-' + volume_id,
                                     'options': None, 'format': 'raw'}}})))
        self.api.post_server_volume(server['id'], {
            'volumeAttachment': {'volumeId': volume_id}})
        self.notifier.wait_for_versioned_notifications(
            'instance.volume_attach.error')
        self._wait_for_volume_detach(server['id'], volume_id)
        error = [n for n in self.notifier.versioned_notifications
                 if n['event_type'] == 'instance.volume_attach.error'][0]
        self.assertIn('is a nfs volume: a file on a shared filesystem, not '
                      'a block device',
                      error['payload']['nova_object.data']['fault'][
                          'nova_object.data']['exception_message'])
        # No os-brick connector was even made; the container is as it was.
        self.assertEqual([], self.loops.protocols)
        self.assertEqual(['root'], sorted(self.container(server)['devices']))
        self.assertEqual('ACTIVE',
                         self.api.get_server(server['id'])['status'])

    def test_deleting_the_server_disconnects_its_volume(self):
        server = self.boot_for_volumes()
        volume_id = str(uuid.uuid4())
        self._attach_volume(server, volume_id)
        self.assertEqual(1, len(_loops_of(self.loops.folder)))
        self._delete_server(server)
        self.assertEqual([], _loops_of(self.loops.folder))

    def test_volume_given_at_boot_is_in_the_container_from_the_start(self):
        self.only_member('lxd1')
        self.flags(host='lxd1')
        volume_id = str(uuid.uuid4())
        body = self._build_server(image_uuid=self.image_id,
                                  flavor_id=self.flavor_id, networks='none')
        body['block_device_mapping_v2'] = [
            {'boot_index': 0, 'source_type': 'image',
             'destination_type': 'local', 'uuid': self.image_id},
            {'boot_index': -1, 'source_type': 'volume',
             'destination_type': 'volume', 'uuid': volume_id}]
        server = self._wait_for_state_change(
            self.api.post_server({'server': body}), 'ACTIVE')
        device = self.api.get_server_volume(server['id'], volume_id)[
            'device']
        rc, out, err = self.exec(server, 'blockdev', '--getsize64', device)
        self.assertEqual((0, str(VOLUME_SIZE)), (rc, out.strip()), err)
        self.assertEqual(1, len(_loops_of(self.loops.folder)))
        # It stays through a stop and start.
        server = self._start_server(self._stop_server(server))
        rc, out, err = self.exec(server, 'blockdev', '--getsize64', device)
        self.assertEqual((0, str(VOLUME_SIZE)), (rc, out.strip()), err)

        self._delete_server(server)
        self.assertEqual([], _loops_of(self.loops.folder))

    def test_requested_device_names_never_become_paths(self):
        # A request's and an image's block_device_mapping name devices
        # that, taken as unix-block paths, LXC would follow out of the
        # container's root: the driver names the disks itself.
        self.only_member('lxd1')
        self.flags(host='lxd1')
        escape = os.path.join(self.useFixture(fixtures.TempDir()).path,
                              'escaped')
        up = '/dev' + '/..' * 24
        asked, imaged = str(uuid.uuid4()), str(uuid.uuid4())
        image_id = str(uuid.uuid4())
        self.glance.create(None, {
            'id': image_id, 'name': 'with-mapping', 'status': 'active',
            'disk_format': 'raw', 'container_format': 'bare',
            'properties': {'bdm_v2': True, 'block_device_mapping': [{
                'source_type': 'volume', 'destination_type': 'volume',
                'volume_id': imaged, 'boot_index': -1,
                'device_name': up + escape + '-image'}]}},
            data=self.bed.marked_image(image_id))
        body = self._build_server(image_uuid=image_id,
                                  flavor_id=self.flavor_id, networks='none')
        body['block_device_mapping_v2'] = [
            {'boot_index': 0, 'source_type': 'image',
             'destination_type': 'local', 'uuid': image_id,
             'device_name': up + escape + '-root'},
            {'boot_index': -1, 'source_type': 'volume',
             'destination_type': 'volume', 'uuid': asked,
             'device_name': up + escape}]
        server = self._wait_for_state_change(
            self.api.post_server({'server': body}), 'ACTIVE')

        self.assertEqual([], glob.glob(escape + '*'))
        devices = {self.api.get_server_volume(server['id'], v)['device']:
                   v for v in (asked, imaged)}
        self.assertEqual({'/dev/vdb', '/dev/vdc'}, set(devices))
        container = self.container(server)['devices']
        for path, volume_id in devices.items():
            name = storage.volume_device_name({'serial': volume_id})
            self.assertEqual(path, container[name]['path'])
            rc, out, err = self.exec(server, 'blockdev', '--getsize64', path)
            self.assertEqual((0, str(VOLUME_SIZE)), (rc, out.strip()), err)
        # An attach's asked name is not used either.
        later = str(uuid.uuid4())
        self.api.post_server_volume(server['id'], {'volumeAttachment': {
            'volumeId': later, 'device': '/dev/vdz'}})
        self._wait_for_volume_attach(server['id'], later)
        self.notifier.wait_for_versioned_notifications(
            'instance.volume_attach.end')
        self.assertEqual('/dev/vdd', self.api.get_server_volume(
            server['id'], later)['device'])
        rc, out, err = self.exec(server, 'blockdev', '--getsize64',
                                 '/dev/vdd')
        self.assertEqual((0, str(VOLUME_SIZE)), (rc, out.strip()), err)
        self._delete_server(server)
        self.assertEqual([], _loops_of(self.loops.folder))

    def test_encrypted_volume_refused_at_boot_nothing_connected(self):
        self.only_member('lxd1')
        self.flags(host='lxd1')
        plain, luks = str(uuid.uuid4()), str(uuid.uuid4())
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.cinder.CinderFixture.VOLUME_CONNECTION_INFO',
            dict(cinder_fixture.CinderFixture.VOLUME_CONNECTION_INFO, **{
                luks: {'driver_volume_type': 'fake',
                       'data': {'encrypted': True}}})))
        before = self.container_names()
        body = self._build_server(image_uuid=self.image_id,
                                  flavor_id=self.flavor_id, networks='none')
        body['block_device_mapping_v2'] = [
            {'boot_index': 0, 'source_type': 'image',
             'destination_type': 'local', 'uuid': self.image_id},
            {'boot_index': -1, 'source_type': 'volume',
             'destination_type': 'volume', 'uuid': plain},
            {'boot_index': -1, 'source_type': 'volume',
             'destination_type': 'volume', 'uuid': luks}]
        server = self._wait_for_state_change(
            self.api.post_server({'server': body}), 'ERROR')
        self.assertIn('volume %s is encrypted' % luks,
                      server['fault']['message'])
        self.assertEqual(before, self.container_names())
        self.assertEqual([], self.loops.connected)      # nothing connected
        self.assertEqual([], _loops_of(self.loops.folder))

    def test_encrypted_volume_refused_at_reconnect_nothing_connected(self):
        self.flags(resume_guests_state_on_host_boot=True)
        server = self.boot_for_volumes()
        member = server['OS-EXT-SRV-ATTR:hypervisor_hostname']
        volume_id = str(uuid.uuid4())
        self._attach_volume(server, volume_id)
        # Nova's record says it is encrypted (attached when nothing
        # refused it, say).
        bdm = objects.BlockDeviceMapping.get_by_volume_and_instance(
            context.get_admin_context(), volume_id, server['id'])
        info = jsonutils.loads(bdm.connection_info)
        info['data']['encrypted'] = True
        bdm.connection_info = jsonutils.dumps(info)
        bdm.save()
        # The member rebooted: containers stopped, volumes disconnected.
        self.lxd.instances.get(server['OS-EXT-SRV-ATTR:instance_name']).stop(
            force=True, wait=True)
        self.loops.cleanup()
        del self.loops.connected[:]
        self.use_socket(member)
        self.restart_compute_service(self.computes[member],
                                     keep_hypervisor_state=False)
        self.assertEqual('Stopped', self.container(server)['status'])
        self.assertEqual([], self.loops.connected)
        self.assertEqual([], _loops_of(self.loops.folder))
        server = self.api.get_server(server['id'])
        self.assertEqual('ERROR', server['status'])

    def test_rebuild_keeps_the_volume_and_gives_a_fresh_ephemeral_disk(self):
        flavor = self._create_flavor(name='eph', vcpu=1, memory_mb=256,
                                     disk=1, ephemeral=1)
        server = self._create_server(image_uuid=self.image_id,
                                     flavor_id=flavor, networks='none')
        self.flags(host=server['OS-EXT-SRV-ATTR:host'])
        volume_id = str(uuid.uuid4())
        self._attach_volume(server, volume_id)
        device = self.api.get_server_volume(server['id'], volume_id)[
            'device']
        rc, _, err = self.exec(server, 'touch', '/mnt/old')
        self.assertEqual(0, rc, err)

        server = self._rebuild_server(server, self.image_id)
        rc, out, err = self.exec(server, 'blockdev', '--getsize64', device)
        self.assertEqual((0, str(VOLUME_SIZE)), (rc, out.strip()), err)
        rc, out, err = self.exec(server, 'ls', '-A', '/mnt')
        self.assertEqual((0, ''), (rc, out.strip()), err)
        self.assertEqual(1, len(_loops_of(self.loops.folder)))

        self._delete_server(server)
        self.assertEqual([], _loops_of(self.loops.folder))
        self.assertEqual(set(), self.volume_names())

    def test_boot_from_volume_refused_before_anything_is_created(self):
        before = self.container_names()
        body = self._build_server(flavor_id=self.flavor_id, networks='none')
        body.pop('imageRef')
        body['block_device_mapping_v2'] = [{
            'boot_index': 0, 'source_type': 'volume',
            'destination_type': 'volume',
            'uuid': cinder_fixture.CinderFixture.IMAGE_BACKED_VOL}]
        server = self._wait_for_state_change(
            self.api.post_server({'server': body}), 'ERROR')
        self.assertIn('booting from a volume is not supported',
                      server['fault']['message'])
        self.assertEqual(before, self.container_names())
        self.assertEqual([], _loops_of(self.loops.folder))


class EphemeralTest(StorageTestCase):

    def test_ephemeral_disk_at_mnt_on_a_dir_pool_gone_with_the_server(self):
        flavor = self._create_flavor(name='eph', vcpu=1, memory_mb=256,
                                     disk=1, ephemeral=1)
        server = self.boot(flavor)
        volume = constants.EPHEMERAL_VOLUME_PREFIX + server['id']
        member = server['OS-EXT-SRV-ATTR:hypervisor_hostname']
        self.assertEqual([(self.bed.pool, member, volume)],
                         self.bed.nova_volumes())
        self.assertEqual(
            {'type': 'disk', 'pool': self.bed.pool, 'source': volume,
             'path': '/mnt'},
            self.container(server)['devices']['ephemeral0'])
        rc, out, err = self.exec(server, 'sh', '-c',
                                 'grep " /mnt " /proc/mounts && '
                                 'echo data > /mnt/file && cat /mnt/file')
        self.assertEqual(0, rc, err)
        self.assertIn('data', out)

        self._delete_server(server)
        self.assertEqual(set(), self.volume_names())

    def test_resize_makes_grows_and_reverts_the_ephemeral_disk(self):
        self.flags(allow_resize_to_same_host=True)
        one = self._create_flavor(name='eph1', vcpu=1, memory_mb=256,
                                  disk=1, ephemeral=1)
        two = self._create_flavor(name='eph2', vcpu=1, memory_mb=256,
                                  disk=1, ephemeral=2)
        server = self.boot()
        member = server['OS-EXT-SRV-ATTR:hypervisor_hostname']
        self.only_member(member)
        volume = constants.EPHEMERAL_VOLUME_PREFIX + server['id']
        api = self.lxd.api.storage_pools[self.bed.pool].volumes.custom

        def size():
            return api[volume].get(params={'target': member}).json()[
                'metadata']['config']['size']

        # None -> 1 GiB, mounted at /mnt while the container runs.
        server = self._resize_server(server, one)
        self.assertEqual('1GiB', size())
        rc, _, err = self.exec(server, 'grep', ' /mnt ', '/proc/mounts')
        self.assertEqual(0, rc, err)
        server = self._revert_resize(server)
        self.assertNotIn('ephemeral0', self.container(server)['devices'])
        self.assertEqual(set(), self.volume_names())

        server = self._resize_server(server, one)
        server = self._confirm_resize(server)
        server = self._resize_server(server, two)
        self.assertEqual('2GiB', size())
        server = self._revert_resize(server)
        self.assertEqual('1GiB', size())

        # Shrinking is refused; the server keeps its disk.
        self.api.post_server_action(server['id'], {'resize': {
            'flavorRef': self.flavor_id}})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self._wait_for_action_fail_completion(
            server, 'resize', 'compute_resize_instance')
        self.assertEqual('1GiB', size())
        self.assertEqual('eph1', server['flavor']['original_name'])

        self._delete_server(server)
        self.assertEqual(set(), self.volume_names())

    def test_swap_refused_before_anything_is_created(self):
        flavor = self._create_flavor(name='swap', vcpu=1, memory_mb=256,
                                     disk=1, ephemeral=1, swap=512)
        before = self.container_names()
        server = self.boot(flavor, expected_state='ERROR')
        self.assertIn('flavor swap asks for 512 MiB of swap',
                      server['fault']['message'])
        self.assertEqual(before, self.container_names())
        self.assertEqual(set(), self.volume_names())

    def test_failed_spawn_leaves_no_ephemeral_volume(self):
        # The ephemeral volume is made first; then the image turns out to
        # be no LXD image.
        flavor = self._create_flavor(name='eph', vcpu=1, memory_mb=256,
                                     disk=1, ephemeral=1)
        image_id = str(uuid.uuid4())
        self.glance.create(None, {
            'id': image_id, 'name': 'garbage', 'status': 'active',
            'disk_format': 'raw', 'container_format': 'bare'},
            data=io.BytesIO(b'not an image' * 100))
        server = self._create_server(
            image_uuid=image_id, flavor_id=flavor, networks='none',
            expected_state='ERROR')
        self.assertIn(image_id, server['fault']['message'])
        self.assertEqual(set(), self.volume_names())


class QuotaPoolTest(StorageTestCase):
    """root_gb and ephemeral_gb are limits on a pool that enforces sizes."""

    quota_pool = True

    def _fill(self, server, path):
        """Write 1.2 GiB at path: (exit status, stderr); then remove it."""
        rc, _, err = self.exec(
            server, 'dd', 'if=/dev/zero', 'of=%s' % path, 'bs=1M',
            'count=1229', 'conv=fsync')
        self.exec(server, 'rm', '-f', path)
        return rc, err

    def test_root_and_ephemeral_sizes_are_enforced(self):
        flavor = self._create_flavor(name='sized', vcpu=1, memory_mb=256,
                                     disk=1, ephemeral=1)
        server = self.boot(flavor)
        container = self.container(server)
        self.assertEqual(self.bed.quota_pool,
                         container['expanded_devices']['root']['pool'])
        volume = constants.EPHEMERAL_VOLUME_PREFIX + server['id']
        member = server['OS-EXT-SRV-ATTR:hypervisor_hostname']
        self.assertEqual('1GiB', self.bed.client().api.storage_pools[
            self.bed.quota_pool].volumes.custom[volume].get(
                params={'target': member}).json()['metadata']['config'][
                    'size'])
        for path in ('/mnt/big', '/root/big'):
            rc, err = self._fill(server, path)
            self.assertNotEqual(0, rc, path)
            self.assertIn('quota exceeded', err)
        # Below the size, writing works.
        rc, out, err = self.exec(server, 'dd', 'if=/dev/zero',
                                 'of=/mnt/small', 'bs=1M', 'count=100')
        self.assertEqual(0, rc, err)

        self._delete_server(server)
        self.assertEqual(set(), self.volume_names())


class RemoteMemberVolumeTest(base.LXDServicesTestCase):
    """Volumes refused where os-brick cannot connect: nothing is left.

    One nova-compute for all members over HTTPS, so no member is the host
    os-brick would connect on.
    """

    def setUp(self):
        super().setUp()
        self.loops = use_loop_volumes(self)
        self.use_https(members=['*'])
        self.start_service('compute', host='compute1')
        self.flags(host='compute1')
        image_id = str(uuid.uuid4())
        self.glance.create(None, {
            'id': image_id, 'name': 'busybox', 'status': 'active',
            'disk_format': 'raw', 'container_format': 'bare'},
            data=self.bed.marked_image(image_id))
        flavor = self._create_flavor(name='small', vcpu=1, memory_mb=256,
                                     disk=1, ephemeral=0)
        self.server = self._create_server(image_uuid=image_id,
                                          flavor_id=flavor, networks='none')

    def test_attach_refused_with_the_reason(self):
        volume_id = str(uuid.uuid4())
        self.api.post_server_volume(self.server['id'], {
            'volumeAttachment': {'volumeId': volume_id}})
        self.notifier.wait_for_versioned_notifications(
            'instance.volume_attach.error')
        self._wait_for_volume_detach(self.server['id'], volume_id)
        error = [n for n in self.notifier.versioned_notifications
                 if n['event_type'] == 'instance.volume_attach.error'][0]
        self.assertIn('os-brick connects volumes on the host',
                      error['payload']['nova_object.data']['fault'][
                          'nova_object.data']['exception_message'])
        self.assertEqual([], _loops_of(self.loops.folder))
        container = self.bed.client().instances.get(
            self.server['OS-EXT-SRV-ATTR:instance_name'])
        self.assertEqual(['root'], sorted(container.devices))
