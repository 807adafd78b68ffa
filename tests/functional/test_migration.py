"""Servers move between members through Nova's API: LXD's cluster move.

Every test checks where LXD says the container is, its limits and files,
and Placement's allocations on both nodes.
"""

import copy
import uuid

import fixtures
from nova.tests.fixtures import neutron as neutron_fixture
from nova.tests.functional.api import client as api_client
from nova import utils
import os_vif

from nova_lxd import container
from nova_lxd.lxd import client
from nova_lxd import storage
from tests.functional import base
from tests.functional import ovs
from tests.functional import test_network
from tests.functional import test_storage
from tests.unit import data as gpu_data


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

    def containers_of(self, server):
        """The LXD instances of a server, wherever they are."""
        return [i['name'] for i in self.lxd.api.instances.get(
                params={'recursion': 1}).json()['metadata']
                if (i['config'] or {}).get('user.nova.instance_uuid') ==
                server['id']]

    def shelve(self, server):
        """Shelve and offload: no container, no allocations left."""
        self.flags(shelved_offload_time=0)
        self.api.post_server_action(server['id'], {'shelve': {}})
        server = self._wait_for_server_parameter(
            server, {'status': 'SHELVED_OFFLOADED',
                     'OS-EXT-SRV-ATTR:host': None})
        self.assertEqual([], self.containers_of(server))
        self.assertEqual({}, self.providers(server['id']))
        return server

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
        self.assertEqual(1, len(self.containers_of(server)))


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
        member = self.bed.members[-1]
        server = self.boot_on(member)
        self.only_member(member)
        server = self._resize_server(server, bigger)
        self.assertOn(server, member, limits=('2', '512MiB'))
        # Started again for its new vCPU count (test_lifecycle).
        self.assertEqual('Running', self.state(server)['status'])
        server = self._confirm_resize(server)
        self.assertOn(server, member, limits=('2', '512MiB'))

    def test_shelve_offloaded_and_unshelve_where_placement_picks(self):
        self.glance_keeps_uploads()
        server = self.boot_on('lxd1')
        self.mark(server)
        server = self.shelve(server)
        # Placement picks lxd2: the other members are disabled.
        self.only_member('lxd2')
        server = self._unshelve_server(server)
        self.assertOn(server, 'lxd2')
        # The root comes from the shelve snapshot.
        self.assertEqual(b'kept\n', self.read(server))
        self.assertEqual({'lxd2': {'VCPU': 1, 'MEMORY_MB': 256,
                                   'DISK_GB': 1}},
                         self.providers(server['id']))
        self._delete_server(server)
        self.assertEqual([], self.containers_of(server))

    def test_drain_a_member_as_the_operator_guide_says(self):
        """doc/source/migration.rst: disable the service, migrate, confirm."""
        servers = [self.boot_on('lxd1') for _ in range(2)]
        (service,) = self.admin_api.get_services(binary='nova-compute',
                                                 host='lxd1')
        self.admin_api.put_service(service['id'], {
            'status': 'disabled', 'disabled_reason': 'maintenance'})
        for server in servers:
            server = self._confirm_resize(self._migrate_server(server))
            self.assertOn(server, self.member(server))
            self.assertNotEqual('lxd1', self.member(server))
        self.assertEqual([], [
            i['name'] for i in self.lxd.api.instances.get(
                params={'recursion': 1}).json()['metadata']
            if i['location'] == 'lxd1'])
        usages = self._get_provider_usages(
            self._get_provider_uuid_by_name('lxd1'))
        self.assertEqual((0, 0, 0), (usages['VCPU'], usages['MEMORY_MB'],
                                     usages['DISK_GB']))

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


class OneServiceTestCase(MigrationTestCase):
    """One nova-compute for every member, over HTTPS to lxd1."""

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


class OneServiceMigrationTest(OneServiceTestCase):

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


def _rtx_only_at(pci):
    """The recorded lxd1 GPUs with only the RTX 2080 Ti, at ``pci``.

    Constructed from the recording (tests/unit/data/gpu): another member
    with the same model in another slot.
    """
    recorded = gpu_data.load(gpu_data.ASPEED_RTX)
    cards = [dict(c, pci_address=pci) for c in recorded['cards']
             if c['product_id'] == '1e04']
    return dict(recorded, cards=cards, total=len(cards))


class GPUMigrationTest(MigrationTestCase):
    """Cards given back on the source, picked again on the destination.

    lxd1 answers with the recorded RTX 2080 Ti + GTX 1080 Ti host, lxd2
    with one RTX 2080 Ti in another slot; LXD validates the gpu devices
    the driver writes. Starting needs the real card, which this machine
    lacks: the start of a container with cards is recorded, not done.
    """

    RTX = 'CUSTOM_GPU_10DE_1E04'

    def setUp(self):
        super().setUp()
        gpus = {'lxd1': gpu_data.load(gpu_data.ASPEED_RTX),
                'lxd2': _rtx_only_at('0000:41:00.0')}
        real_resources = client.LXD.resources

        def resources(lxd, member):
            found = real_resources(lxd, member)
            return dict(found, gpu=gpus[member]) if member in gpus else found
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.resources', resources))
        self.started = []
        real_change_state = client.LXD.change_state

        def change_state(lxd, name, action, **kwargs):
            found = lxd.instance(name)
            if action == 'start' and container.holds_gpus(found):
                self.started.append((found['location'], {
                    n: d['pci'] for n, d in found['devices'].items()
                    if d['type'] == 'gpu'}))
                return
            return real_change_state(lxd, name, action, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.change_state', change_state))
        self._run_periodics()
        self.rtx = self._create_flavor(
            name='gpu.rtx', vcpu=1, memory_mb=256, disk=1, ephemeral=0,
            extra_spec={'resources:PGPU': '1',
                        'trait:%s' % self.RTX: 'required'})

    def assertCardOn(self, server, member, pci):
        """On ``member`` with the card at ``pci``, started with it.

        And the server's PGPU allocated from that member's RTX provider.
        """
        self.assertEqual((member, {'nova-gpu-0': pci}), self.cards(server))
        self.assertEqual((member, {'nova-gpu-0': pci}), self.started[-1])
        self.assertEqual({'PGPU': 1}, self.providers(server['id'])[
            '%s_gpu_10de_1e04' % member])

    def cards(self, server):
        """{device: pci} of the container's gpu devices, where it is."""
        found = self.container(server)
        return found['location'], {n: d['pci'] for n, d in
                                   found['devices'].items()
                                   if d['type'] == 'gpu'}

    def test_migrate_picks_the_destination_card_and_revert_the_source(self):
        server = self.boot_on('lxd1', self.rtx)
        self.assertEqual(('lxd1', {'nova-gpu-0': '0000:03:00.0'}),
                         self.cards(server))
        server = self._migrate_server(server)
        self.assertEqual('lxd2', self.member(server))
        self.assertCardOn(server, 'lxd2', '0000:41:00.0')
        self.assertEqual({'PGPU': 1}, self.providers(
            self.migration(server)['uuid'])['lxd1_gpu_10de_1e04'])

        server = self._revert_resize(server)
        self.assertCardOn(server, 'lxd1', '0000:03:00.0')

        server = self._migrate_server(server)
        # Nova takes the state after a confirm from the container, which
        # could not start here: SHUTOFF.
        self.api.post_server_action(server['id'], {'confirmResize': None})
        server = self._wait_for_state_change(server, 'SHUTOFF')
        self._wait_for_migration_status(server, ['confirmed'])
        self.assertEqual(('lxd2', {'nova-gpu-0': '0000:41:00.0'}),
                         self.cards(server))
        self.assertNotIn('lxd1_gpu_10de_1e04', self.providers(server['id']))
        # The source's card is free again: another server gets it.
        other = self.boot_on('lxd1', self.rtx)
        self.assertEqual(('lxd1', {'nova-gpu-0': '0000:03:00.0'}),
                         self.cards(other))

    def test_unshelve_picks_a_card_of_the_member_placement_picks(self):
        self.glance_keeps_uploads()
        server = self.boot_on('lxd1', self.rtx)
        server = self.shelve(server)
        self.only_member('lxd2')
        # The container never started (no real card): a stopped one is
        # shelved as it is, and unshelve starts it.
        server = self._unshelve_server(server)
        self.assertEqual('lxd2', self.member(server))
        self.assertCardOn(server, 'lxd2', '0000:41:00.0')
        self.assertNotIn('lxd1_gpu_10de_1e04', self.providers(server['id']))


class VolumeMigrationTest(MigrationTestCase):
    """Volumes disconnected on the source, connected on the destination.

    Loop devices stand for Cinder's, as test_storage's LoopConnector
    makes them.
    """

    def setUp(self):
        super().setUp()
        self.loops = test_storage.use_loop_volumes(self)

    def volume_device(self, server, volume_id):
        found = self.container(server)['devices']
        return found[storage.volume_device_name({'serial': volume_id})]

    def test_migrate_and_revert_reconnect_the_volume(self):
        server = self.boot_on('lxd1')
        # Nova detaches volumes where instance.host == CONF.host, which the
        # in-process services share (test_storage.boot_for_volumes).
        self.flags(host='lxd1')
        volume_id = str(uuid.uuid4())
        self._attach_volume(server, volume_id)
        before = self.volume_device(server, volume_id)
        self.assertEqual(before['source'], self.loops.loops[volume_id])

        server = self._migrate_server(server)
        dest = self.member(server)
        self.assertOn(server, dest)
        device = self.volume_device(server, volume_id)
        # Connected on the destination (a loop device again), once.
        self.assertEqual(self.loops.loops[volume_id], device['source'])
        self.assertEqual(1, len(self.loops.loops))
        self.assertEqual(before['path'], device['path'])
        rc, out, err = self.bed.exec(server['OS-EXT-SRV-ATTR:instance_name'],
                                     'blockdev', '--getsize64',
                                     device['path'])
        self.assertEqual((0, str(test_storage.VOLUME_SIZE)),
                         (rc, out.strip()), err)

        server = self._revert_resize(server)
        self.assertOn(server, 'lxd1')
        self.assertEqual(self.loops.loops[volume_id],
                         self.volume_device(server, volume_id)['source'])
        self.assertEqual(1, len(self.loops.loops))


class NetworkMigrationTest(MigrationTestCase):
    """Ports plugged on the destination, unplugged on the source.

    Each member's host has its own integration bridge in the test's Open
    vSwitch (tests/functional/ovs.py); Neutron binds a port to the bridge
    of the host it is bound to, as an agent per host does.
    """

    def setUp(self):
        super().setUp()
        self.ovs = self.useFixture(ovs.OpenVSwitch(self))
        self.bridges = {m: 'nlx-' + uuid.uuid4().hex[:8]
                        for m in self.bed.members}
        for bridge in self.bridges.values():
            self.ovs.add_bridge(bridge)
        self.flags(vif_plugging_timeout=0)
        real_update = self.neutron.update_port

        def update_port(port_id, body=None):
            found = real_update(port_id, body)
            host = (body or {}).get('port', {}).get('binding:host_id')
            if host in self.bridges:
                self.neutron._ports[port_id]['binding:vif_details'][
                    'bridge_name'] = self.bridges[host]
                # One binding, as Neutron keeps for a cold migration: the
                # fixture keeps the old host's too and may show it as the
                # port's (then Nova leaves the port bound there).
                bindings = self.neutron._port_bindings[port_id]
                for other in set(bindings) - {host}:
                    del bindings[other]
            return found
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.NeutronFixture.update_port',
            lambda fixture, *a, **k: update_port(*a, **k)))

    def port(self):
        port = copy.deepcopy(neutron_fixture.NeutronFixture.port_1)
        port_id = str(uuid.uuid4())
        port.update({
            'id': port_id, 'mac_address': 'fa:16:3e:00:01:01',
            'binding:vif_details': {'port_filter': True,
                                    'ovs_hybrid_plug': False,
                                    'datapath_type': 'netdev'}})
        self.neutron._ports[port_id] = port
        self.addCleanup(test_network.NetworkTest.remove_host_devices,
                        port_id)
        return port

    def tap(self, port):
        return 'tap' + port['id'][:11]

    def assertPluggedOn(self, port, server, member):
        """The port's OVS port on the member's bridge only; eth0 inside."""
        for each, bridge in self.bridges.items():
            ports = self.ovs.ports(bridge)
            if each == member:
                self.assertIn(self.tap(port), ports)
            else:
                self.assertNotIn(self.tap(port), ports)
        self.assertEqual(server['id'],
                         self.ovs.external_ids(self.tap(port))['vm-uuid'])
        self.assertGreater(int(self.ovs.interface(self.tap(port),
                                                  'ofport')), 0)
        nic = self.container(server)['devices']['nova-port-' + port['id']]
        self.assertEqual(('physical', 'nlx' + port['id'][:11]),
                         (nic['nictype'], nic['parent']))
        result = self.lxd.instances.get(
            server['OS-EXT-SRV-ATTR:instance_name']).execute(
                ['cat', '/sys/class/net/eth0/address'])
        self.assertEqual(port['mac_address'], result.stdout.strip())

    def assertNicIn(self, port, server):
        """The container has the port's nic and its MAC where it runs."""
        nic = self.container(server)['devices']['nova-port-' + port['id']]
        self.assertEqual(('physical', 'nlx' + port['id'][:11]),
                         (nic['nictype'], nic['parent']))
        result = self.lxd.instances.get(
            server['OS-EXT-SRV-ATTR:instance_name']).execute(
                ['cat', '/sys/class/net/eth0/address'])
        self.assertEqual(port['mac_address'], result.stdout.strip())

    def test_migrate_revert_and_confirm_plug_on_the_members_bridges(self):
        """The source unplugs once the container left; the destination plugs.

        The members share this test's one Open vSwitch (one userspace OVS
        per machine), so a port's name exists once in it: the source's
        unplug must come before the destination's plug, or the port
        stays on the source's bridge (os-vif adds with may-exist).
        """
        calls = []
        real_plug, real_unplug = os_vif.plug, os_vif.unplug

        def plug(vif, info):
            calls.append(('plug', vif.bridge_name))
            return real_plug(vif, info)

        def unplug(vif, info):
            calls.append(('unplug', vif.bridge_name))
            return real_unplug(vif, info)
        self.useFixture(fixtures.MonkeyPatch('os_vif.plug', plug))
        self.useFixture(fixtures.MonkeyPatch('os_vif.unplug', unplug))
        port = self.port()
        self.only_member('lxd1')
        server = self._create_server(image_uuid=self.image_id,
                                     flavor_id=self.flavor_id,
                                     networks=[{'port': port['id']}])
        for service in self.admin_api.get_services(binary='nova-compute'):
            self.admin_api.put_service(service['id'], {'status': 'enabled'})
        self.assertPluggedOn(port, server, 'lxd1')

        del calls[:]
        server = self._migrate_server(server)
        dest = self.member(server)
        self.assertOn(server, dest)
        self.assertPluggedOn(port, server, dest)
        # Unplugged on the source after the move; the start on the
        # destination plugs again (VIFs.replug: unplug, then plug).
        self.assertEqual([('unplug', self.bridges['lxd1']),
                          ('unplug', self.bridges[dest]),
                          ('plug', self.bridges[dest])], calls)

        del calls[:]
        server = self._revert_resize(server)
        self.assertOn(server, 'lxd1')
        self.assertPluggedOn(port, server, 'lxd1')
        # Unplugged on the destination, then plugged again on the source
        # by its start.
        self.assertEqual([('unplug', self.bridges[dest]),
                          ('unplug', self.bridges['lxd1']),
                          ('plug', self.bridges['lxd1'])], calls)

        server = self._migrate_server(server)
        dest = self.member(server)
        del calls[:]
        server = self._confirm_resize(server)
        self.assertEqual([], calls)
        self.assertPluggedOn(port, server, dest)

        self._delete_server(server)
        self.assertEqual(set(), {p for b in self.bridges.values()
                                 for p in self.ovs.ports(b)})

    def test_unshelve_plugs_the_port_where_placement_picks(self):
        self.glance_keeps_uploads()
        port = self.port()
        self.only_member('lxd1')
        server = self._create_server(image_uuid=self.image_id,
                                     flavor_id=self.flavor_id,
                                     networks=[{'port': port['id']}])
        self.assertPluggedOn(port, server, 'lxd1')
        server = self.shelve(server)
        self.assertEqual(set(), {p for b in self.bridges.values()
                                 for p in self.ovs.ports(b)})
        for service in self.admin_api.get_services(binary='nova-compute'):
            self.admin_api.put_service(service['id'], {'status': 'enabled'})
        self.only_member('lxd2')
        server = self._unshelve_server(server)
        self.assertOn(server, 'lxd2')
        self.assertPluggedOn(port, server, 'lxd2')
