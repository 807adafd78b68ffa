"""Servers move between members through Nova's API: LXD's cluster move.

Every test checks where LXD says the container is, its limits and files,
and Placement's allocations on both nodes.
"""

from nova.tests.functional.api import client as api_client
from nova import utils

from tests.functional import base


class MigrationTestCase(base.ServersTestCase):

    def boot_on(self, member, flavor_id=None):
        """A server on ``member``; every compute service enabled after."""
        self.only_member(member)
        server = self.boot(flavor_id)
        for service in self.admin_api.get_services(binary='nova-compute'):
            self.admin_api.put_service(service['id'], {'status': 'enabled'})
        self.assertEqual(member, self.member(server))
        return server

    @staticmethod
    def member(server):
        return server['OS-EXT-SRV-ATTR:hypervisor_hostname']

    def mark(self, server, path='/root/mark', data=b'kept\n'):
        """A file in the container, to find after a move."""
        self.lxd.instances.get(
            server['OS-EXT-SRV-ATTR:instance_name']).files.put(path, data)

    def read(self, server, path='/root/mark'):
        return self.lxd.instances.get(
            server['OS-EXT-SRV-ATTR:instance_name']).files.get(path)

    def providers(self, consumer):
        """{provider name: resources} of a consumer's allocations."""
        names = {p['uuid']: p['name'] for p in self._get_all_providers()}
        return {names[rp]: alloc['resources'] for rp, alloc in
                self._get_allocations_by_server_uuid(consumer).items()}

    def migration(self, server):
        (found,) = [m for m in self.admin_api.get_migrations()
                    if m['instance_uuid'] == server['id'] and
                    m['status'] not in ('completed', 'reverted')] or [None]
        return found

    def assertOn(self, server, member, limits=('1', '256MiB')):
        container = self.container(server)
        self.assertEqual(member, self.member(server))
        self.assertEqual(member, container['location'])
        self.assertEqual('Running', container['status'])
        self.assertEqual(limits, (container['config']['limits.cpu'],
                                  container['config']['limits.memory']))
        self.assertEqual(server['id'],
                         container['config']['user.nova.instance_uuid'])
        # No copy left anywhere else.
        self.assertEqual(1, len([
            i for i in self.lxd.api.instances.get(
                params={'recursion': 1}).json()['metadata']
            if (i['config'] or {}).get('user.nova.instance_uuid') ==
            server['id']]))


class ColdMigrationTest(MigrationTestCase):
    """One nova-compute per member (over its own socket)."""

    def test_migrate_moves_the_container_and_confirm_keeps_it_there(self):
        server = self.boot_on('lxd1')
        self.mark(server)

        server = self._migrate_server(server)
        dest = self.member(server)
        self.assertNotEqual('lxd1', dest)
        self.assertOn(server, dest)
        self.assertEqual(b'kept\n', self.read(server))
        flavor = {'VCPU': 1, 'MEMORY_MB': 256, 'DISK_GB': 1}
        self.assertEqual({dest: flavor}, self.providers(server['id']))
        # The source holds the old flavor for a revert until confirmed.
        self.assertEqual({'lxd1': flavor}, self.providers(
            self.migration(server)['uuid']))

        server = self._confirm_resize(server)
        self.assertOn(server, dest)
        self.assertEqual({dest: flavor}, self.providers(server['id']))
        self._delete_server(server)
        self.assertNotIn(server['OS-EXT-SRV-ATTR:instance_name'],
                         self.container_names())

    def test_resize_to_another_member_and_revert(self):
        self.flags(allow_resize_to_same_host=False)
        bigger = self._create_flavor(name='bigger', vcpu=2, memory_mb=512,
                                     disk=1, ephemeral=1)
        small_eph = self._create_flavor(name='small.eph', vcpu=1,
                                        memory_mb=256, disk=1, ephemeral=1)
        server = self.boot_on('lxd2', small_eph)
        self.mark(server)
        self.mark(server, '/mnt/scratch', b'ephemeral\n')

        server = self._resize_server(server, bigger)
        dest = self.member(server)
        self.assertNotEqual('lxd2', dest)
        self.assertOn(server, dest, limits=('2', '512MiB'))
        self.assertEqual(b'ephemeral\n', self.read(server, '/mnt/scratch'))
        self.assertEqual([(self.bed.pool, dest)], [
            (pool, member) for pool, member, _ in self.bed.nova_volumes()])
        self.assertEqual({'VCPU': 2, 'MEMORY_MB': 512, 'DISK_GB': 2},
                         self.providers(server['id'])[dest])

        server = self._revert_resize(server)
        self.assertOn(server, 'lxd2')
        self.assertEqual(b'kept\n', self.read(server))
        self.assertEqual(b'ephemeral\n', self.read(server, '/mnt/scratch'))
        self.assertEqual([(self.bed.pool, 'lxd2')], [
            (pool, member) for pool, member, _ in self.bed.nova_volumes()])
        self.assertEqual({'lxd2': {'VCPU': 1, 'MEMORY_MB': 256,
                                   'DISK_GB': 2}},
                         self.providers(server['id']))

    def test_same_member_resize_keeps_working(self):
        self.flags(allow_resize_to_same_host=True)
        bigger = self._create_flavor(name='bigger', vcpu=2, memory_mb=512,
                                     disk=1, ephemeral=0)
        server = self.boot_on('lxd3')
        self.only_member('lxd3')
        pid = self.state(server)['pid']
        server = self._resize_server(server, bigger)
        self.assertOn(server, 'lxd3', limits=('2', '512MiB'))
        self.assertEqual(pid, self.state(server)['pid'])
        server = self._confirm_resize(server)
        self.assertOn(server, 'lxd3', limits=('2', '512MiB'))

    def test_live_migration_is_refused_and_the_server_stays(self):
        server = self.boot_on('lxd1')
        pid = self.state(server)['pid']
        for host in (None, 'lxd2'):
            server = self._live_migrate(
                server, migration_expected_state='error', host=host)
            self.assertEqual('ACTIVE', server['status'])
            self.assertOn(server, 'lxd1')
            self.assertEqual(pid, self.state(server)['pid'])
        # What an admin reads (openstack server event show): the
        # destination's pre-check names the reason.
        self.assertIn('live migration is not supported by the LXD driver',
                      self.live_migration_error(server))

    def live_migration_error(self, server):
        """The details of the last live migration's events (2.84)."""
        with utils.temporary_mutation(self.admin_api, microversion='2.84'):
            actions = self.admin_api.api_get(
                'servers/%s/os-instance-actions' % server['id']).body[
                    'instanceActions']
            request = [a for a in actions
                       if a['action'] == 'live-migration'][0]['request_id']
            action = self.admin_api.api_get(
                'servers/%s/os-instance-actions/%s' % (
                    server['id'], request)).body['instanceAction']
        return '\n'.join(e.get('details') or '' for e in action['events'])


class OneServiceMigrationTest(MigrationTestCase):
    """One nova-compute for every member, over HTTPS."""

    def setUp(self):
        super(base.ServersTestCase, self).setUp()
        self.use_https()
        self.compute = self.start_service('compute', host='compute1')
        self.computes = {'compute1': self.compute}
        self.lxd = self.bed.client()
        self.image_id = self.glance.create(None, {
            'name': 'busybox', 'status': 'active', 'disk_format': 'raw',
            'container_format': 'bare'},
            data=self.bed.marked_image('one-service'))['id']
        self.flavor_id = self._create_flavor(
            name='small', vcpu=1, memory_mb=256, disk=1, ephemeral=0)

    def test_migrate_between_members_of_one_service(self):
        server = self.boot()
        source = self.member(server)
        self.mark(server)
        server = self._migrate_server(server)
        dest = self.member(server)
        self.assertNotEqual(source, dest)
        self.assertOn(server, dest)
        self.assertEqual(b'kept\n', self.read(server))
        server = self._revert_resize(server)
        self.assertOn(server, source)
        server = self._migrate_server(server)
        server = self._confirm_resize(server)
        self.assertOn(server, self.member(server))
        self.assertNotEqual(source, self.member(server))
        self.assertRaises(api_client.OpenStackApiException,
                          self.admin_api.post_server_action, server['id'],
                          {'confirmResize': None})
