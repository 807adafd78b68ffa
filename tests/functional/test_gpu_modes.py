"""Whole cards, shared cards and MIG slices of one model through Nova's API.

Member lxd1's GPU source is replaced: its ``GET /1.0/resources`` answers
with four H200 cards and NVML answers with their facts, card 0 cut into
seven 1g.18gb MIG slices. Both are constructed from real device ids (see
tests/unit/data), since no public recording of such a host exists;
everything else is the real test bed and real Placement. The operator
puts card 0 in MIG mode and card 1 in shared mode with two slots; cards 2
and 3 stay whole.

LXD validates each gpu device when the container is created. Starting
needs the real card, which these machines lack, so starts are held until
the test has read what LXD stored, then fail with LXD's words, and nothing
is left behind.
"""

import threading
import time

import fixtures
from nova import context

from nova_lxd.lxd import client
from tests.functional import base
from tests.unit import data as gpu_data

H200 = 'lxd1_gpu_10de_2335'
MIG_CARD, SHARED_CARD, WHOLE_CARDS = (
    gpu_data.pci_of(0), gpu_data.pci_of(1),
    {gpu_data.pci_of(2), gpu_data.pci_of(3)})
SLICES = gpu_data.h200_slices(0)


class HeldStarts(fixtures.Fixture):
    """Starts wait for ``release()``; LXD's stored devices are kept first."""

    def _setUp(self):
        self.devices = {}       # container -> its devices, as LXD has them
        self._released = threading.Event()
        real_change_state = client.LXD.change_state

        def change_state(lxd, name, action, **kwargs):
            if action == 'start':
                self.devices[name] = lxd.instance(name)['devices']
                self._released.wait(120)
            return real_change_state(lxd, name, action, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.change_state', change_state))
        self.addCleanup(self._released.set)

    def wait_for(self, count, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.devices) < count:
            if time.monotonic() > deadline:
                raise AssertionError('%d of %d containers reached start'
                                     % (len(self.devices), count))
            time.sleep(0.1)
        return self.devices

    def release(self):
        self._released.set()


def gpu_devices(devices):
    return [d for d in devices.values() if d['type'] == 'gpu']


class GPUModesTest(base.LXDServicesTestCase):

    def setUp(self):
        super().setUp()
        self.host = gpu_data.nvidia_host(4, gpu_data.H200)
        real_resources = client.LXD.resources

        def resources(lxd, member):
            found = real_resources(lxd, member)
            if member != 'lxd1':
                return found
            return dict(found, gpu=self.host['gpu'])
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.resources', resources))
        facts = {pci: gpu_data.facts(pci) for pci in WHOLE_CARDS}
        facts[SHARED_CARD] = gpu_data.facts(SHARED_CARD)
        facts[MIG_CARD] = gpu_data.facts(MIG_CARD, slices=SLICES)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.gpu.nvml.collect', lambda: facts))
        self.flags(gpu_modes=['%s=mig' % MIG_CARD,
                              '%s=shared:2' % SHARED_CARD], group='lxd')
        # NVML facts belong to the member behind the local socket.
        self.use_socket('lxd1', members=['lxd1'])
        self.compute = self.start_service('compute', host='compute1')
        self.lxd = self.bed.client()
        self.image = self.glance.create(None, {
            'name': 'busybox', 'status': 'active', 'disk_format': 'raw',
            'container_format': 'bare'},
            data=self.bed.marked_image('gpu-modes'))['id']
        self.held = self.useFixture(HeldStarts())
        self.before = self.lxd_state()

    def lxd_state(self):
        return ({i.name for i in self.lxd.instances.all()},
                {p.name for p in self.lxd.profiles.all()})

    def flavor(self, name, resource_class, amount=1):
        return self._create_flavor(
            name=name, vcpu=1, memory_mb=128, disk=1, ephemeral=0,
            extra_spec={'resources:%s' % resource_class: str(amount)})

    def boot(self, flavor, count=1):
        """POST one request for ``count`` servers; their UUIDs."""
        reservation = self.api.post_server({'server': {
            'name': 'gpu', 'imageRef': self.image, 'flavorRef': flavor,
            'networks': 'none', 'min_count': count, 'max_count': count,
            'return_reservation_id': True}})['reservation_id']
        servers = self.api.get_servers(
            search_opts={'reservation_id': reservation})
        self.assertEqual(count, len(servers))
        return [s['id'] for s in servers]

    def assert_no_valid_host(self, flavor):
        (uuid,) = self.boot(flavor)
        server = self._wait_for_state_change({'id': uuid}, 'ERROR')
        self.assertIn('No valid host', server['fault']['message'])

    def release_and_check_nothing_left(self, uuids):
        self.held.release()
        for uuid in uuids:
            server = self._wait_for_state_change({'id': uuid}, 'ERROR')
            self.assertIn('LXD:', server['fault']['message'])
        self.assertEqual(self.before, self.lxd_state())

    def update_resources(self):
        """Nova's periodic resource update, now."""
        self.compute.manager.update_available_resource(
            context.get_admin_context())

    def usage(self, resource_class):
        provider = self._get_provider_uuid_by_name(H200)
        return self._get_provider_usages(provider).get(resource_class, 0)

    def test_one_provider_per_model_with_an_inventory_per_mode(self):
        provider = self._get_provider_uuid_by_name(H200)
        inventory = self._get_provider_inventory(provider)
        self.assertEqual(
            {'PGPU': (2, 2), 'CUSTOM_SHARED_GPU': (2, 1),
             'CUSTOM_MIG_1G_18GB': (7, 7)},
            {rc: (i['total'], i['max_unit']) for rc, i in inventory.items()})
        traits = self._get_provider_traits(provider)
        for trait in ('CUSTOM_GPU_10DE_2335', 'CUSTOM_GPU_MEMORY_141GB',
                      'CUSTOM_GPU_MODEL_H200_SXM_141GB'):
            self.assertIn(trait, traits)

    def test_concurrent_boots_get_distinct_whole_cards(self):
        flavor = self.flavor('gpu.whole', 'PGPU')
        uuids = self.boot(flavor, count=2)
        devices = self.held.wait_for(2)
        cards = [gpu_devices(d) for d in devices.values()]
        self.assertEqual([1, 1], [len(c) for c in cards])
        self.assertEqual(WHOLE_CARDS, {c[0]['pci'] for c in cards})
        for (card,) in cards:
            self.assertEqual({'type': 'gpu', 'gputype': 'physical',
                              'pci': card['pci']}, card)
        self.assertEqual(2, self.usage('PGPU'))
        # Every whole card is taken: Placement says no, the driver is
        # never asked for a card it does not have.
        self.assert_no_valid_host(flavor)
        self.assertEqual(2, len(self.held.devices))
        self.release_and_check_nothing_left(uuids)

    def test_mig_slice_needs_the_operators_nvidia_runtime_switch(self):
        # LXD 5.0 starts a MIG slice only with NVIDIA's hook, which runs as
        # root of the host: never switched on behind the operator's back.
        (uuid,) = self.boot(self.flavor('gpu.mig', 'CUSTOM_MIG_1G_18GB'))
        server = self._wait_for_state_change({'id': uuid}, 'ERROR')
        self.assertIn('MIG slice on LXD without gpu_mig_cdi needs NVIDIA\'s '
                      'hook (nvidia.runtime), run as host root; off here: '
                      '[lxd] allow_nvidia_runtime = False',
                      server['fault']['message'])
        self.assertEqual(self.before, self.lxd_state())

    def test_mig_slices_serve_one_instance_each(self):
        self.flags(allow_nvidia_runtime=True, group='lxd')
        flavor = self.flavor('gpu.mig', 'CUSTOM_MIG_1G_18GB')
        uuids = self.boot(flavor, count=3)
        devices = self.held.wait_for(3)
        slices = [gpu_devices(d) for d in devices.values()]
        self.assertEqual([1, 1, 1], [len(s) for s in slices])
        taken = {s[0]['mig.uuid'] for s in slices}
        self.assertEqual(3, len(taken))
        self.assertLessEqual(taken, {uuid for _, uuid in SLICES})
        for (mig,) in slices:
            self.assertEqual('mig', mig['gputype'])
            self.assertEqual(MIG_CARD, mig['pci'])
        # Before LXD's gpu_mig_cdi, a MIG device needs nvidia.runtime:
        # the driver's profile carries it.
        for name in devices:
            profiles = self.lxd.instances.get(name).profiles
            self.assertEqual(1, len(profiles))
            self.assertEqual(
                'true', self.lxd.profiles.get(profiles[0]).config[
                    'nvidia.runtime'])
        self.assertEqual(3, self.usage('CUSTOM_MIG_1G_18GB'))
        self.release_and_check_nothing_left(uuids)

    def test_shared_card_holds_as_many_instances_as_slots(self):
        flavor = self.flavor('gpu.shared', 'CUSTOM_SHARED_GPU')
        uuids = self.boot(flavor, count=2)
        devices = self.held.wait_for(2)
        for found in devices.values():
            self.assertEqual([{'type': 'gpu', 'gputype': 'physical',
                               'pci': SHARED_CARD}], gpu_devices(found))
        self.assert_no_valid_host(flavor)
        self.release_and_check_nothing_left(uuids)

    def test_all_whole_cards_in_one_instance(self):
        uuids = self.boot(self.flavor('gpu.two', 'PGPU', amount=2))
        (devices,) = self.held.wait_for(1).values()
        self.assertEqual(WHOLE_CARDS,
                         {d['pci'] for d in gpu_devices(devices)})
        self.release_and_check_nothing_left(uuids)

    def test_vanished_card_stays_reserved_until_its_server_goes(self):
        uuids = self.boot(self.flavor('gpu.two', 'PGPU', amount=2))
        self.held.wait_for(1)
        gone = gpu_data.pci_of(3)
        cards = [c for c in self.host['gpu']['cards']
                 if c['pci_address'] != gone]
        self.host['gpu'] = {'cards': cards, 'total': len(cards)}
        self.update_resources()
        provider = self._get_provider_uuid_by_name(H200)
        # Both cards are allocated: the total stays, the lost card is
        # reserved, and the provider says why.
        pgpu = self._get_provider_inventory(provider)['PGPU']
        self.assertEqual((2, 1), (pgpu['total'], pgpu['reserved']))
        self.assertIn('CUSTOM_GPU_MISSING',
                      self._get_provider_traits(provider))
        self.release_and_check_nothing_left(uuids)
        self.update_resources()
        pgpu = self._get_provider_inventory(provider)['PGPU']
        self.assertEqual((1, 0), (pgpu['total'], pgpu['reserved']))
        self.assertNotIn('CUSTOM_GPU_MISSING',
                         self._get_provider_traits(provider))

    def test_mode_change_reshapes_the_provider(self):
        # The operator turns the shared card into a whole one and
        # restarts nova-compute.
        self.flags(gpu_modes=['%s=mig' % MIG_CARD], group='lxd')
        self.compute = self.restart_compute_service(self.compute)
        provider = self._get_provider_uuid_by_name(H200)
        self.assertEqual(
            {'PGPU': 3, 'CUSTOM_MIG_1G_18GB': 7},
            {rc: i['total'] for rc, i in
             self._get_provider_inventory(provider).items()})

    def test_resize_gives_and_takes_cards_and_revert_restores(self):
        # Resize changes the devices of a stopped container: LXD validates
        # them, and a start would need the real cards.
        self.held.release()
        self.flags(allow_resize_to_same_host=True)
        plain = self._create_flavor(name='plain', vcpu=1, memory_mb=128,
                                    disk=1, ephemeral=0)
        server = self._create_server(image_uuid=self.image, flavor_id=plain,
                                     networks='none')
        name = server['OS-EXT-SRV-ATTR:instance_name']
        server = self._stop_server(server)

        def cards():
            devices = self.lxd.instances.get(name).devices
            return {d['pci'] for d in gpu_devices(devices)}

        self._resize_server(server, self.flavor('gpu.one', 'PGPU'))
        (card,) = cards()
        self.assertIn(card, WHOLE_CARDS)
        self.assertEqual(1, self.usage('PGPU'))
        self.api.post_server_action(server['id'], {'revertResize': None})
        self._wait_for_migration_status(server, ['reverted'])
        self._wait_for_state_change(server, 'SHUTOFF')
        self.assertEqual(set(), cards())
        self.assertEqual(0, self.usage('PGPU'))

        self._resize_server(server, self.flavor('gpu.two', 'PGPU', 2))
        self.api.post_server_action(server['id'], {'confirmResize': None})
        self._wait_for_migration_status(server, ['confirmed'])
        self._wait_for_state_change(server, 'SHUTOFF')
        self.assertEqual(WHOLE_CARDS, cards())
        self.assertEqual(2, self.usage('PGPU'))
        self._delete_server(server)
        self.assertEqual(self.before, self.lxd_state())
