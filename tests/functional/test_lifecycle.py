"""Servers through Nova's REST API become containers on the real cluster.

Every test checks LXD's own state, not only what Nova says.
"""

import base64
import io
import uuid

import fixtures
from nova import context
from nova import exception
from nova.tests.functional.api import client as api_client
from nova import utils
from oslo_serialization import jsonutils
from pylxd import exceptions as pylxd_exc
import yaml

from nova_lxd.lxd import client
from nova_lxd.lxd import errors
from tests.functional import base
from tools import testbed


class LifecycleTest(base.ServersTestCase):

    def test_boot_is_an_unprivileged_container_on_the_allocated_member(self):
        server = self.boot()
        container = self.container(server)
        member = server['OS-EXT-SRV-ATTR:hypervisor_hostname']
        self.assertEqual(member, container['location'])
        self.assertEqual(
            {self._get_provider_uuid_by_name(member)},
            set(self._get_allocations_by_server_uuid(server['id'])))
        self.assertEqual('Running', container['status'])
        cfg = container['config']
        self.assertEqual(server['id'], cfg['user.nova.instance_uuid'])
        self.assertEqual(('1', '256MiB'),
                         (cfg['limits.cpu'], cfg['limits.memory']))
        self.assertEqual('1GiB',
                         container['expanded_devices']['root']['size'])
        self.assertNotEqual('true', cfg.get('security.privileged'))
        # Root in the container is an unprivileged id on the host.
        self.assertNotIn('"Hostid":0,', cfg['volatile.idmap.current'])

        self._delete_server(server)
        self.assertNotIn(container['name'], self.container_names())

    def test_flavor_extra_specs_reach_lxd(self):
        flavor = self._create_flavor(
            name='tuned', vcpu=1, memory_mb=256, disk=1, ephemeral=0,
            extra_spec={'quota:disk_total_iops_sec': '500',
                        'quota:disk_read_bytes_sec': '10485760',
                        'lxd:isolated_idmap': 'true'})
        container = self.container(self.boot(flavor))
        root = container['expanded_devices']['root']
        self.assertEqual(('500iops', '10485760B'),
                         (root['limits.max'], root['limits.read']))
        self.assertEqual('true',
                         container['config']['security.idmap.isolated'])
        self.assertEqual('Running', container['status'])

    def test_privileged_flavor_refused_unless_the_operator_allows_it(self):
        flavor = self._create_flavor(
            name='privileged', vcpu=1, memory_mb=256, disk=1, ephemeral=0,
            extra_spec={'lxd:privileged': 'true'})
        before = self.container_names()
        server = self.boot(flavor, expected_state='ERROR')
        self.assertIn('[lxd] allow_privileged', server['fault']['message'])
        self.assertEqual(before, self.container_names())

        self.flags(allow_privileged=True, group='lxd')
        server = self.boot(flavor)
        self.assertEqual('true',
                         self.container(server)['config'][
                             'security.privileged'])

    def test_power_actions(self):
        server = self.boot()
        status = lambda: self.container(server)['status']  # noqa: E731
        pid = lambda: self.lxd.api.instances[  # noqa: E731
            server['OS-EXT-SRV-ATTR:instance_name']].state.get().json()[
                'metadata']['pid']

        server = self._stop_server(server)
        self.assertEqual('Stopped', status())
        server = self._start_server(server)
        self.assertEqual('Running', status())

        for hard in (False, True):
            before = pid()
            server = self._reboot_server(server, hard=hard)
            self.assertEqual('Running', status())
            self.assertNotEqual(before, pid())

        self.api.post_server_action(server['id'], {'pause': None})
        server = self._wait_for_state_change(server, 'PAUSED')
        self.assertEqual('Frozen', status())
        self.api.post_server_action(server['id'], {'unpause': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('Running', status())

        server = self._suspend_server(server)
        self.assertEqual('Frozen', status())
        server = self._resume_server(server)
        self.assertEqual('Running', status())

    def test_member_reboot_brings_running_servers_back(self):
        self.flags(resume_guests_state_on_host_boot=True)
        server = self.boot()
        member = server['OS-EXT-SRV-ATTR:hypervisor_hostname']
        # The member rebooted: its containers are stopped.
        self.lxd.instances.get(server['OS-EXT-SRV-ATTR:instance_name']).stop(
            force=True, wait=True)
        self.use_socket(member)
        self.restart_compute_service(self.computes[member],
                                     keep_hypervisor_state=False)
        self.assertEqual('Running', self.container(server)['status'])

    def test_delete_when_the_container_is_already_gone(self):
        server = self.boot()
        name = server['OS-EXT-SRV-ATTR:instance_name']
        self.lxd.instances.get(name).stop(force=True, wait=True)
        self.lxd.instances.get(name).delete(wait=True)
        self._delete_server(server)
        self.assertRaises(api_client.OpenStackApiNotFoundException,
                          self.api.get_server, server['id'])

    def test_diagnostics_from_lxd(self):
        server = self.boot()
        with utils.temporary_mutation(self.admin_api, microversion='2.1'):
            diags = self.admin_api.api_get(
                'servers/%s/diagnostics' % server['id']).body
        self.assertEqual('Running', diags['status'])
        self.assertGreater(diags['cpu_time_ns'], 0)
        self.assertGreater(diags['memory_bytes'], 0)
        self.assertIn('lo_bytes_received', diags)

        # 2.48: Nova's standard diagnostics (its response schema checked
        # by Nova's API in these tests).
        state = self.state(server)
        with utils.temporary_mutation(self.admin_api, microversion='2.48'):
            diags = self.admin_api.api_get(
                'servers/%s/diagnostics' % server['id']).body
        self.assertEqual(('running', 'lxd', False),
                         (diags['state'], diags['hypervisor'],
                          diags['config_drive']))
        self.assertEqual(256, diags['memory_details']['maximum'])
        # MiB: busybox uses less than one.
        self.assertAlmostEqual(state['memory']['usage'] // 2 ** 20,
                               diags['memory_details']['used'], delta=1)
        self.assertEqual(1, diags['num_cpus'])
        self.assertGreaterEqual(diags['cpu_details'][0]['time'],
                                state['cpu']['usage'])
        self.assertGreaterEqual(diags['uptime'], 0)
        self.assertLess(diags['uptime'], 600)
        self.assertEqual((0, []), (diags['num_nics'], diags['nic_details']))

    def test_hypervisor_uptime_is_the_members(self):
        # The test bed's members run on this host: its uptime.
        def up():
            with open('/proc/uptime') as f:
                minutes = int(float(f.read().split()[0])) // 60
            hours, minutes = divmod(minutes % (24 * 60), 60)
            return ('%2d:%02d,' % (hours, minutes) if hours
                    else '%d min,' % minutes)
        before = up()
        uptimes = []
        with utils.temporary_mutation(self.admin_api, microversion='2.1'):
            for hypervisor in self.admin_api.api_get(
                    'os-hypervisors').body['hypervisors']:
                uptimes.append(self.admin_api.api_get(
                    'os-hypervisors/%s/uptime' % hypervisor['id']).body[
                        'hypervisor']['uptime'])
        # 2.88: in the hypervisor itself.
        with utils.temporary_mutation(self.admin_api, microversion='2.88'):
            for hypervisor in self.admin_api.api_get(
                    'os-hypervisors/detail').body['hypervisors']:
                uptimes.append(self.admin_api.api_get(
                    'os-hypervisors/%s' % hypervisor['id']).body[
                        'hypervisor']['uptime'])
        after = up()
        self.assertEqual(2 * len(self.bed.members), len(uptimes))
        for uptime in uptimes:
            self.assertIn(' up ', uptime)
            self.assertIn(',  load average: ', uptime)
            self.assertTrue(before in uptime or after in uptime,
                            '%r is not %r or %r' % (uptime, before, after))

    def test_resize_on_the_same_member_live_or_restarted_for_vcpus(self):
        self.flags(allow_resize_to_same_host=True)
        roomier = self._create_flavor(name='roomier', vcpu=1, memory_mb=512,
                                      disk=1, ephemeral=0)
        bigger = self._create_flavor(name='bigger', vcpu=2, memory_mb=512,
                                     disk=1, ephemeral=0)
        server = self.boot()
        self.only_member(server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        pid = self.state(server)['pid']

        # More memory: changed live, and back.
        server = self._resize_server(server, roomier)
        cfg = self.container(server)['config']
        self.assertEqual(('1', '512MiB'),
                         (cfg['limits.cpu'], cfg['limits.memory']))
        self.assertEqual(pid, self.state(server)['pid'])  # no restart
        server = self._revert_resize(server)
        self.assertEqual('256MiB',
                         self.container(server)['config']['limits.memory'])
        self.assertEqual(pid, self.state(server)['pid'])

        # Another vCPU count: stopped, changed and started again, so that
        # LXD pins it to as many CPUs (nproc), and back.
        for flavor, cpus in ((bigger, '2'), (None, '1')):
            server = (self._resize_server(server, flavor) if flavor else
                      self._revert_resize(server))
            self.assertEqual(cpus,
                             self.container(server)['config']['limits.cpu'])
            self.assertEqual('Running', self.state(server)['status'])
            self.assertNotEqual(pid, self.state(server)['pid'])
            pid = self.state(server)['pid']
            self.assertEqual(cpus, self.nproc(server))

        server = self._resize_server(server, bigger)
        server = self._confirm_resize(server)
        self.assertEqual('2', self.container(server)['config']['limits.cpu'])
        self.assertEqual('2', self.nproc(server))

    def nproc(self, server):
        rc, out, err = self.bed.exec(
            server['OS-EXT-SRV-ATTR:instance_name'], 'nproc')
        self.assertEqual(0, rc, err)
        return out.strip()

    def test_snapshot_round_trip(self):
        self.glance_keeps_uploads()
        server = self.boot()
        name = server['OS-EXT-SRV-ATTR:instance_name']
        self.lxd.instances.get(name).files.put('/root/hello', b'kept\n')

        image_id = self.api.post_server_action(
            server['id'], {'createImage': {'name': 'snap'}})['image_id']
        self.notifier.wait_for_versioned_notifications(
            'instance.snapshot.end')
        self.assertEqual('Running', self.container(server)['status'])

        copy = self._create_server(image_uuid=image_id,
                                   flavor_id=self.flavor_id,
                                   networks='none')
        files = self.lxd.instances.get(
            copy['OS-EXT-SRV-ATTR:instance_name']).files
        self.assertEqual(b'kept\n', files.get('/root/hello'))
        self.assertEqual(self.image_id.encode(),
                         files.get('/etc/nova-lxd-marker'))

    def test_rebuild_gives_a_fresh_container(self):
        server = self.boot()
        name = server['OS-EXT-SRV-ATTR:instance_name']
        self.lxd.instances.get(name).files.put('/root/scratch', b'x')
        server = self._rebuild_server(server, self.image_id)
        files = self.lxd.instances.get(name).files
        self.assertRaises(pylxd_exc.NotFound, files.get, '/root/scratch')
        self.assertEqual('Running', self.container(server)['status'])

    def test_rescue_reaches_the_old_root_and_unrescue_restores_it(self):
        server = self.boot()
        name = server['OS-EXT-SRV-ATTR:instance_name']
        self.lxd.instances.get(name).files.put('/root/notes', b'mine\n')

        self.api.post_server_action(server['id'], {'rescue': {}})
        server = self._wait_for_state_change(server, 'RESCUE')
        self.assertEqual('Stopped', self.container(server)['status'])
        rescue = self.lxd.instances.get(name + '-rescue')
        self.assertEqual('Running', rescue.status)
        self.assertEqual(server['OS-EXT-SRV-ATTR:hypervisor_hostname'],
                         rescue.location)
        self.assertEqual(b'mine\n', rescue.files.get(
            '/mnt/original-root/root/notes'))

        self.api.post_server_action(server['id'], {'unrescue': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertNotIn(name + '-rescue', self.container_names())
        self.assertEqual('Running', self.container(server)['status'])
        self.assertEqual(b'mine\n', self.lxd.instances.get(name).files.get(
            '/root/notes'))

    def test_image_cache_pass_removes_unused_imports_only(self):
        self.flags(remove_unused_original_minimum_age_seconds=0,
                   group='image_cache')
        images = self.bed.image_fingerprints()
        server = self.boot()
        (imported,) = self.bed.image_fingerprints() - images
        ctxt = context.get_admin_context()
        for compute in self.computes.values():
            compute.manager._run_image_cache_manager_pass(ctxt)
        self.assertIn(imported, self.bed.image_fingerprints())  # in use

        self._delete_server(server)
        for compute in self.computes.values():
            compute.manager._run_image_cache_manager_pass(ctxt)
        self.assertEqual(images, self.bed.image_fingerprints())

    def test_periodic_work_costs_one_bulk_request_per_node(self):
        member = self.bed.members[0]
        self.only_member(member)
        for _ in range(3):
            self.boot()
        manager = self.computes[member].manager
        requests = []
        manager.driver.lxd.session.hooks['response'].append(
            lambda r, *a, **k: requests.append(r.request.path_url))
        ctxt = context.get_admin_context()

        manager._sync_power_states(ctxt)
        self.assertEqual(1, len(requests), requests)
        del requests[:]
        manager.update_available_resource(ctxt)
        # The member's resources and its pool's size.
        self.assertEqual(2, len(requests), requests)


class RescueInAProjectTest(base.ServersTestCase):
    """Rescue where LXD names volumes <project>_<name>.

    As in tools/cloud's project; the default project holds a container of
    the same name.
    """

    def setUp(self):
        super().setUp()
        self.project = 'nova-lxd-test-%s' % uuid.uuid4().hex[:8]
        default = self.bed.client()
        made = default.projects.create(self.project, config={
            'features.images': 'false', 'features.profiles': 'false'})
        self.addCleanup(made.delete)
        self.addCleanup(self.empty_project)
        self.lxd = self.bed.client(project=self.project)
        self.flags(project=self.project, group='lxd')
        for member, compute in self.computes.items():
            self.use_socket(member)
            self.computes[member] = self.restart_compute_service(compute)

    def names(self):
        """The project's containers (pylxd's names carry a ?project=)."""
        return {i['name'] for i in self.lxd.api.instances.get(
            params={'recursion': 1}).json()['metadata']}

    def empty_project(self):
        for name in self.names():
            testbed.delete_container(self.lxd.instances.get(name))

    def files(self, name, project=None):
        return self.bed.client(project=project).instances.get(name).files

    def test_rescue_mounts_this_servers_root_only(self):
        server = self.boot()
        name = server['OS-EXT-SRV-ATTR:instance_name']
        member = server['OS-EXT-SRV-ATTR:hypervisor_hostname']
        self.files(name, self.project).put('/root/notes', b'mine\n')
        # Someone's container of the same name in the default project.
        decoy = self.bed.client().instances.create(
            {'name': name, 'profiles': [],
             'source': {'type': 'image', 'alias': self.bed.image},
             'devices': {'root': {'type': 'disk', 'path': '/',
                                  'pool': self.bed.pool}}},
            target=member, wait=True)
        self.addCleanup(testbed.delete_container, decoy)
        decoy.files.put('/root/notes', b'not yours\n')

        self.api.post_server_action(server['id'], {'rescue': {}})
        server = self._wait_for_state_change(server, 'RESCUE')
        self.assertEqual('Stopped', self.container(server)['status'])
        rescued = self.lxd.instances.get(name + '-rescue')
        self.assertEqual('Running', rescued.status)
        self.assertEqual(b'mine\n', rescued.files.get(
            '/mnt/original-root/root/notes'))
        # Its owners are right: the rescue has the original's id map.
        rc, out, err = self.bed.exec_in(
            self.project, name + '-rescue', 'sh', '-c',
            'stat -c %u:%g /mnt/original-root/root/notes && '
            'echo fixed > /mnt/original-root/root/fixed')
        self.assertEqual((0, '0:0'), (rc, out.strip()), err)

        decoy.sync()
        self.assertEqual(b'not yours\n', decoy.files.get('/root/notes'))
        self.assertRaises(pylxd_exc.NotFound, decoy.files.get, '/root/fixed')

        self.api.post_server_action(server['id'], {'unrescue': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual({name}, self.names())
        self.assertEqual('Running', self.container(server)['status'])
        self.assertEqual(b'fixed\n',
                         self.files(name, self.project).get('/root/fixed'))

    def test_refused_rescue_leaves_the_container_running(self):
        server = self.boot()
        name = server['OS-EXT-SRV-ATTR:instance_name']
        real = client.LXD.pool

        def zfs(lxd, member, name=None):
            return dict(real(lxd, member, name), driver='zfs')
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.pool', zfs))
        self.api.post_server_action(server['id'], {'rescue': {}})
        # Nova marks any refused rescue ERROR (its compute manager); the
        # driver puts the container back as it was, and leaves nothing.
        server = self._wait_for_state_change(server, 'ERROR')
        self.assertIn('is zfs; rescue needs dir or btrfs',
                      server['fault']['message'])
        self.assertEqual('Running', self.container(server)['status'])
        self.assertEqual({name}, self.names())
        server = self._reboot_server(server, hard=True)
        self.assertEqual('Running', self.container(server)['status'])


class SpawnFailureTest(base.ServersTestCase):
    """A spawn failing at any step leaves nothing in LXD."""

    def fail_at(self, target, exc=None):
        self.useFixture(fixtures.MockPatch(
            target, side_effect=exc or errors.LXDError(
                reason='injected failure')))

    def boot_fails(self, image_imported=True):
        """Boot into ERROR; no container, and no image unless imported.

        A failure after the Glance image was imported keeps it cached
        (under its nova-glance-<id> alias) for the next boot, as Nova's
        image cache does; manage_image_cache removes it when unused.
        """
        containers = self.container_names()
        images = self.bed.image_fingerprints()
        server = self.boot(expected_state='ERROR')
        self.assertEqual(containers, self.container_names())
        new_images = self.bed.image_fingerprints() - images
        self.assertEqual(1 if image_imported else 0, len(new_images))
        return server

    def test_image_download_fails(self):
        self.fail_at('nova.tests.fixtures.GlanceFixture.download',
                     exception.ImageNotFound(image_id=self.image_id))
        self.boot_fails(image_imported=False)

    def test_create_fails_after_lxd_created_it(self):
        real = client.LXD.create_instance

        def create_then_fail(lxd, body, member):
            real(lxd, body, member)
            raise errors.LXDError(reason='injected after create')
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.create_instance', create_then_fail))
        self.boot_fails()

    def test_start_fails(self):
        real = client.LXD.change_state

        def no_start(lxd, name, action, **kwargs):
            if action == 'start':
                raise errors.LXDError(reason='injected start failure')
            return real(lxd, name, action, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.change_state', no_start))
        server = self.boot_fails()
        self.assertIn('LXD: injected start failure',
                      server['fault']['message'])

    def test_config_drive_write_fails(self):
        self.flags(force_config_drive=True)
        self.fail_at('nova_lxd.lxd.client.LXD.push_files')
        server = self.boot_fails()
        self.assertIn('LXD: injected failure', server['fault']['message'])

    def test_not_an_lxd_image(self):
        qcow2 = str(uuid.uuid4())
        self.glance.create(None, {
            'id': qcow2, 'name': 'vm', 'status': 'active',
            'disk_format': 'raw', 'container_format': 'bare'},
            data=io.BytesIO(b'QFI\xfb' + b'\0' * 4096))
        containers = self.container_names()
        images = self.bed.image_fingerprints()
        server = self._create_server(image_uuid=qcow2,
                                     flavor_id=self.flavor_id,
                                     networks='none', expected_state='ERROR')
        self.assertIn('not an LXD image', server['fault']['message'])
        self.assertEqual(containers, self.container_names())
        self.assertEqual(images, self.bed.image_fingerprints())


class CloudInitTest(base.ServersTestCase):

    def test_user_data_keys_and_config_drive(self):
        self.api.post_keypair({'keypair': {'name': 'k', 'public_key':
                                           KEY}})
        user_data = '#cloud-config\nruncmd: [echo hi]\n'
        server = self.api.post_server({'server': dict(
            self._build_server(image_uuid=self.image_id,
                               flavor_id=self.flavor_id, networks='none'),
            key_name='k', config_drive=True,
            user_data=base64.b64encode(user_data.encode()).decode())})
        server = self._wait_for_state_change(server, 'ACTIVE')
        name = server['OS-EXT-SRV-ATTR:instance_name']
        cfg = self.container(server)['config']
        self.assertEqual(user_data, cfg['user.user-data'])
        self.assertEqual(server['id'],
                         cfg['volatile.cloud-init.instance-id'])
        meta = yaml.safe_load(cfg['user.meta-data'])
        self.assertEqual(server['id'], meta['instance-id'])
        self.assertEqual([KEY], meta['public-keys'])

        files = self.lxd.instances.get(name).files
        seed = '/var/lib/cloud/seed/config_drive/openstack/latest/'
        drive_meta = jsonutils.loads(files.get(seed + 'meta_data.json'))
        self.assertEqual(server['id'], drive_meta['uuid'])
        self.assertEqual(KEY, drive_meta['public_keys']['k'])
        # The same values both ways in.
        self.assertEqual(drive_meta['hostname'], meta['local-hostname'])
        self.assertTrue(meta['local-hostname'].startswith(
            server['OS-EXT-SRV-ATTR:hostname'] + '.'))
        self.assertEqual(user_data.encode(), files.get(seed + 'user_data'))
        self.assertIsInstance(
            jsonutils.loads(files.get(seed + 'vendor_data.json')), dict)

    def test_no_config_drive_unless_asked(self):
        server = self.boot()
        files = self.lxd.instances.get(
            server['OS-EXT-SRV-ATTR:instance_name']).files
        self.assertRaises(pylxd_exc.NotFound, files.get,
                          '/var/lib/cloud/seed/config_drive/openstack/'
                          'latest/meta_data.json')
        self.flags(force_config_drive=True)
        server = self.boot()
        files = self.lxd.instances.get(
            server['OS-EXT-SRV-ATTR:instance_name']).files
        self.assertIn(server['id'].encode(), files.get(
            '/var/lib/cloud/seed/config_drive/openstack/latest/'
            'meta_data.json'))

    def test_injected_files(self):
        body = self._build_server(image_uuid=self.image_id,
                                  flavor_id=self.flavor_id, networks='none')
        body['personality'] = [{'path': '/etc/motd', 'contents':
                                base64.b64encode(b'welcome\n').decode()}]
        with utils.temporary_mutation(self.api, microversion='2.56'):
            server = self.api.post_server({'server': body})
        server = self._wait_for_state_change(server, 'ACTIVE')
        files = self.lxd.instances.get(
            server['OS-EXT-SRV-ATTR:instance_name']).files
        self.assertEqual(b'welcome\n', files.get('/etc/motd'))


KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3ke0ESY7ZzzHKUeWm2BcNtDZ3yW'
       'hK7VIdIiZEZzLLf test@nova-lxd')
