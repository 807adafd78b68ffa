"""The GPU room: providers of a member, cards picked under its lock."""

import contextlib
import datetime
import threading
import time
from unittest import mock

import fixtures
from nova.compute import provider_tree
from nova import test
from oslo_utils.fixture import uuidsentinel as uuids
import testtools

from nova_lxd.extra_specs import LXDSpecs
from nova_lxd.gpu import assignment
from nova_lxd.gpu import devices
from nova_lxd.gpu import options
from tests.unit import data
from tests.unit import fakes

LXD_5_0 = ('gpu_devices', 'gpu_mdev', 'gpu_sriov', 'gpu_mig',
           'gpu_mig_uuid', 'nvidia_runtime', 'nvidia_runtime_config')
H200 = '%s_gpu_10de_2335'


class FakeLXD(object):
    """The GPU room's LXD requests; containers made are kept here."""

    api_extensions = LXD_5_0

    def __init__(self):
        self.containers = []
        self.profiles = []
        self.read_barrier = None
        self.unused_deleted = []
        self.all_projects = True

    def sees_all_projects(self):
        return self.all_projects

    def instances_of_all_projects(self):
        found = list(self.containers)
        barrier = self.read_barrier
        if barrier:
            # Each thread's first read waits for the other's.
            barrier.wait(5)
            self.read_barrier = None
        return found

    def ensure_profile(self, body):
        self.profiles.append(body)

    def delete_unused_profiles(self, is_ours):
        self.unused_deleted.append(is_ours)


class GPUsTestCase(test.NoDBTestCase):
    """Members lxd1 (local: NVML facts) and lxd2, 2 H200s each."""

    def setUp(self):
        super().setUp()
        host = data.nvidia_host(2)
        facts = {data.pci_of(i): data.facts(data.pci_of(i))
                 for i in range(2)}
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.gpu.nvml.collect', lambda: facts))
        self.lxd = FakeLXD()
        self.gpus = devices.GPUs(self.lxd, options.DEFAULT, 'lxd1')
        self.tree = provider_tree.ProviderTree()
        for member in ('lxd1', 'lxd2'):
            self.tree.new_root(member, getattr(uuids, member))
            self.gpus.update_providers(self.tree, member, host)

    def instance(self, member='lxd1', uuid=None):
        uuid = uuid or uuids.instance
        # A container name of its own: instance-<8 hex digits of the UUID>.
        return fakes.instance(uuid=uuid, node=member, id=int(uuid[:8], 16))

    def allocations(self, member='lxd1', amount=1):
        gpu = self.tree.data(H200 % member).uuid
        return {gpu: {'resources': {'PGPU': amount}},
                getattr(uuids, member): {'resources': {'VCPU': 1}}}

    def spawn(self, instance, results, started=None):
        """Claim, then "create" the container with the devices."""
        if started:
            started.wait(5)

        def create(part):
            time.sleep(0.02)        # LXD's create takes a while
            self.lxd.containers.append({
                'name': instance.name, 'location': instance.node,
                'created_at': datetime.datetime.now(
                    datetime.timezone.utc).isoformat(),
                'config': {'user.nova.instance_uuid': instance.uuid},
                'devices': part.devices})
            results[instance.uuid] = part

        def remove():
            self.lxd.containers[:] = [c for c in self.lxd.containers
                                      if c['name'] != instance.name]
            del results[instance.uuid]
        self.gpus.created(instance, LXDSpecs(),
                          self.allocations(instance.node), create, remove)

    def spawn_two(self):
        results, started = {}, threading.Barrier(2)
        threads = [threading.Thread(target=self.spawn, args=(
            self.instance(uuid=uuid), results, started))
            for uuid in (uuids.one, uuids.two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        return [part.devices['nova-gpu-0']['pci']
                for part in results.values()]


class ClaimTest(GPUsTestCase):

    def test_the_allocated_model_by_pci_address(self):
        with self.gpus.claimed(self.instance(), LXDSpecs(),
                               self.allocations()) as part:
            self.assertEqual(
                {'nova-gpu-0': {'type': 'gpu', 'gputype': 'physical',
                                'pci': data.pci_of(0)}}, part.devices)
            self.assertEqual((), part.profiles)

    def test_two_spawns_on_one_member_pick_distinct_cards(self):
        self.assertEqual({data.pci_of(0), data.pci_of(1)},
                         set(self.spawn_two()))

    def test_two_processes_both_picking_one_card_try_again(self):
        # Two nova-computes, each with its own lock: both read the ledger
        # before either creates its container and pick one card. The
        # later created gives it up when it sees the other, and picks
        # again after a random pause.
        self.useFixture(fixtures.MonkeyPatch(
            'oslo_concurrency.lockutils.lock',
            lambda name: contextlib.nullcontext()))
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.gpu.devices.CLAIM_PAUSE_SECONDS', (0.01, 0.3)))
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.gpu.devices.CONTEST_POLL_SECONDS', 0.01))
        log = self.useFixture(fixtures.FakeLogger())
        self.lxd.read_barrier = threading.Barrier(2)
        picked = self.spawn_two()
        self.assertEqual({data.pci_of(0), data.pci_of(1)}, set(picked))
        self.assertIn('also taken by instance-', log.output)
        self.assertEqual(2, len(self.lxd.containers))

    def claim_against(self, other_at, other_stays=True):
        """Claim while 'other', created at ``other_at``, takes the card.

        ``other_stays``: False: it is gone at the second read.
        """
        reads = []
        real = self.lxd.instances_of_all_projects

        def instances():
            found = real()
            reads.append(len(found))
            if len(reads) > 2 and not other_stays:
                found = [c for c in found if c['name'] != 'other']
            return found
        self.lxd.instances_of_all_projects = instances
        with self.gpus.claimed(self.instance(), LXDSpecs(),
                               self.allocations()) as part:
            self.lxd.containers += [
                {'name': 'other', 'location': 'lxd1', 'config': {},
                 'created_at': other_at,
                 'devices': {'g': part.devices['nova-gpu-0']}},
                {'name': 'mine', 'location': 'lxd1',
                 'created_at': '2026-11-30T20:00:02Z',
                 'config': {'user.nova.instance_uuid': uuids.instance},
                 'devices': part.devices}]
        return reads

    def test_a_card_taken_meanwhile_by_an_earlier_one_is_given_up(self):
        with testtools.ExpectedException(assignment.GPUsTaken,
                                         '.*also taken by other'):
            self.claim_against('2026-11-30T20:00:01Z')

    def test_the_first_holder_waits_for_the_later_to_go(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.gpu.devices.CONTEST_POLL_SECONDS', 0.01))
        log = self.useFixture(fixtures.FakeLogger())
        reads = self.claim_against('2026-11-30T20:00:03Z',
                                   other_stays=False)
        self.assertEqual(3, len(reads))     # pick, contested, then free
        self.assertIn('waiting for them to give it up', log.output)

    def test_the_first_holder_gives_up_when_the_later_stays(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.gpu.devices.CONTEST_POLL_SECONDS', 0.01))
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.gpu.devices.CONTEST_WAIT_SECONDS', 0.1))
        with testtools.ExpectedException(assignment.GPUsTaken):
            self.claim_against('2026-11-30T20:00:03Z')

    def test_refused_when_the_ledger_cannot_see_every_project(self):
        self.lxd.all_projects = False
        claim = self.gpus.claimed(self.instance(), LXDSpecs(),
                                  self.allocations())
        e = self.assertRaises(assignment.GPUAssignmentError,
                              claim.__enter__)
        self.assertIn('cannot list every project', str(e))

    def test_containers_with_every_gpu_are_reported(self):
        self.lxd.containers.append(
            {'name': 'ops/all', 'location': 'lxd1', 'config': {},
             'devices': {'gpus': {'type': 'gpu'}}})
        log = self.useFixture(fixtures.FakeLogger())
        with self.gpus.claimed(self.instance(), LXDSpecs(),
                               self.allocations()):
            pass
        self.assertIn('Container ops/all holds every GPU of member lxd1 '
                      '(gpu device gpus', log.output)

    def test_one_lock_per_member(self):
        claim = self.gpus.claimed(self.instance('lxd1', uuids.one),
                                  LXDSpecs(), self.allocations('lxd1'))
        claim.__enter__()
        results = {}
        threads = [threading.Thread(target=self.spawn, args=(
            self.instance(member, uuid), results))
            for member, uuid in (('lxd2', uuids.two), ('lxd1', uuids.three))]
        for thread in threads:
            thread.start()
        threads[0].join(5)
        self.assertIn(uuids.two, results)          # another member's
        time.sleep(0.1)
        self.assertNotIn(uuids.three, results)     # waits for lxd1's lock
        claim.__exit__(None, None, None)
        threads[1].join(5)
        self.assertIn(uuids.three, results)

    def test_nothing_without_a_gpu_allocation(self):
        self.lxd.instances_of_all_projects = mock.Mock()
        with self.gpus.claimed(self.instance(), LXDSpecs(nvidia_runtime=True),
                               {uuids.lxd1: {'resources': {'VCPU': 1}}}
                               ) as part:
            self.assertEqual(({}, ()), (part.devices, part.profiles))
        self.lxd.instances_of_all_projects.assert_not_called()
        self.assertEqual([], self.lxd.profiles)

    def test_a_container_holding_gpus_gives_them_back(self):
        # A resize to a flavor without GPUs picks again: none.
        with self.gpus.claimed(self.instance(), LXDSpecs(), {},
                               holding=True) as part:
            self.assertEqual({}, part.devices)

    def test_nvidia_libraries_come_from_a_shared_profile(self):
        self.flags(allow_nvidia_runtime=True, group='lxd')
        specs = LXDSpecs(nvidia_runtime=True)
        with self.gpus.claimed(self.instance(), specs,
                               self.allocations()) as part:
            (profile,) = self.lxd.profiles
            self.assertEqual((profile['name'],), part.profiles)
            self.assertEqual({'nvidia.runtime': 'true'}, profile['config'])

    def test_nvidia_libraries_need_the_operator(self):
        claim = self.gpus.claimed(self.instance(),
                                  LXDSpecs(nvidia_runtime=True),
                                  self.allocations())
        e = self.assertRaises(assignment.GPUAssignmentError,
                              claim.__enter__)
        self.assertIn('[lxd] allow_nvidia_runtime = False', str(e))
        self.assertEqual([], self.lxd.profiles)

    def test_member_not_known_before_its_first_resource_update(self):
        gpus = devices.GPUs(self.lxd, options.DEFAULT, 'lxd1')
        claim = gpus.claimed(self.instance(), LXDSpecs(),
                             self.allocations())
        e = self.assertRaises(assignment.GPUAssignmentError,
                              claim.__enter__)
        self.assertIn('not known yet', str(e))

    def test_unused_profiles_are_the_drivers_only(self):
        self.gpus.remove_unused_profiles()
        (is_ours,) = self.lxd.unused_deleted
        self.assertTrue(is_ours('nova-gpu-0123456789ab'))
        self.assertFalse(is_ours('default'))


class ProvidersTest(GPUsTestCase):

    def test_one_provider_per_model_per_member(self):
        for member in ('lxd1', 'lxd2'):
            self.assertEqual(
                2, self.tree.data(H200 % member).inventory['PGPU']['total'])

    def test_unreadable_gpu_data_keeps_the_providers(self):
        before = self.tree.data(H200 % 'lxd1').inventory
        self.gpus.update_providers(self.tree, 'lxd1',
                                   {'gpu': {'cards': 'garbage'}})
        self.assertEqual(before, self.tree.data(H200 % 'lxd1').inventory)

    def test_placement_usage(self):
        client = self.useFixture(fixtures.MockPatch(
            'nova.scheduler.client.report.report_client_singleton')).mock
        client.return_value.get_allocations_for_resource_provider \
            .return_value.allocations = {
                uuids.a: {'resources': {'PGPU': 1}},
                uuids.b: {'resources': {'PGPU': 2, 'VCPU': 1}}}
        self.assertEqual({'PGPU': 3, 'VCPU': 1},
                         devices.placement_usage(uuids.rp))
        client.side_effect = Exception('Placement is down')
        self.assertIsNone(devices.placement_usage(uuids.rp))

    def test_wanted(self):
        self.assertTrue(devices.wanted(
            {uuids.rp: {'resources': {'CUSTOM_MIG_1G_10GB': 1}}}))
        self.assertFalse(devices.wanted(
            {uuids.rp: {'resources': {'VCPU': 1}}}))
        self.assertFalse(devices.wanted(None))
