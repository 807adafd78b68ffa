from unittest import mock

from nova.compute import provider_tree
from oslo_utils import uuidutils
import testtools

from nova_lxd.gpu import discovery
from nova_lxd.gpu import options
from nova_lxd.gpu import providers
from tests.unit import gpu as data

NODE = 'n1'
PROVIDER = 'n1_gpu_10de_2330'


def _tree():
    tree = provider_tree.ProviderTree()
    tree.new_root(NODE, uuidutils.generate_uuid())
    tree.update_inventory(NODE, {'VCPU': {'total': 64}})
    return tree


def _specs(count=4, model=data.H100, config=options.DEFAULT, health=None):
    """``count`` H100 cards (constructed), card i unhealthy per health."""
    resources = data.nvidia_host(count, model)
    facts = {data.pci_of(i): data.facts(data.pci_of(i), model,
                                        health=(health or {}).get(i, ()))
             for i in range(count)}
    cards = discovery.enrich(discovery.cards(resources), facts)
    return providers.gpu_providers(NODE, cards, config)


def _alloc(tree, name, amount, rc='PGPU'):
    """Allocations as Nova passes them to update_provider_tree."""
    return {uuidutils.generate_uuid(): {
        'allocations': {tree.data(name).uuid: {
            'generation': 1, 'resources': {rc: amount}}},
        'project_id': 'p', 'user_id': 'u', 'consumer_generation': 1}}


class FirstReportTest(testtools.TestCase):

    def test_child_per_model_with_inventory_and_traits(self):
        tree = _tree()
        tree.new_child('n1-other', NODE)
        providers.update_provider_tree(tree, NODE, _specs())
        gpu = tree.data(PROVIDER)
        self.assertEqual(tree.data(NODE).uuid, gpu.parent_uuid)
        self.assertEqual({'PGPU': {'total': 4, 'reserved': 0, 'min_unit': 1,
                                   'max_unit': 4, 'step_size': 1,
                                   'allocation_ratio': 1.0}},
                         gpu.inventory)
        self.assertIn('CUSTOM_GPU_MEMORY_80GB', gpu.traits)
        self.assertEqual({'VCPU': {'total': 64}}, tree.data(NODE).inventory)
        self.assertEqual({}, tree.data('n1-other').inventory)

    def test_unchanged_second_pass_changes_nothing(self):
        tree = _tree()
        specs = _specs()
        providers.update_provider_tree(tree, NODE, specs)
        before = tree.data(PROVIDER)
        with mock.patch.object(tree, 'new_child') as new_child:
            providers.update_provider_tree(tree, NODE, _specs())
        new_child.assert_not_called()
        self.assertFalse(tree.has_inventory_changed(PROVIDER,
                                                    before.inventory))
        self.assertFalse(tree.have_traits_changed(PROVIDER, before.traits))

    def test_model_without_units_gets_no_provider(self):
        tree = _tree()
        config = options.parse(modes=['*=mig'])      # no slices made
        providers.update_provider_tree(tree, NODE, _specs(config=config))
        self.assertFalse(tree.exists(PROVIDER))

    def test_several_models(self):
        tree = _tree()
        specs = _specs() + _specs(2, data.A100_SXM4_80)
        providers.update_provider_tree(tree, NODE, specs)
        self.assertEqual(2, tree.data('n1_gpu_10de_20b2').inventory[
            'PGPU']['total'])


class AllocationProtectionTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tree = _tree()
        providers.update_provider_tree(self.tree, NODE, _specs(4))
        self.warn = self._patch_warning()

    def _patch_warning(self):
        patcher = mock.patch.object(providers.LOG, 'warning')
        self.addCleanup(patcher.stop)
        providers._said.clear()
        self.addCleanup(providers._said.clear)
        return patcher.start()

    def _pgpu(self, name=PROVIDER):
        return self.tree.data(name).inventory['PGPU']

    def test_vanished_card_with_unknown_usage_is_kept_reserved(self):
        # Nova's periodic passes allocations=None: usage unknown.
        providers.update_provider_tree(self.tree, NODE, _specs(3))
        self.assertEqual((4, 1), (self._pgpu()['total'],
                                  self._pgpu()['reserved']))
        self.assertIn(providers.TRAIT_MISSING,
                      self.tree.data(PROVIDER).traits)
        providers.update_provider_tree(self.tree, NODE, _specs(3))
        self.assertEqual(1, self.warn.call_count)      # said once
        self.assertIn('unknown', self.warn.call_args[0][0])
        # The card comes back.
        providers.update_provider_tree(self.tree, NODE, _specs(4))
        self.assertEqual((4, 0), (self._pgpu()['total'],
                                  self._pgpu()['reserved']))
        self.assertNotIn(providers.TRAIT_MISSING,
                         self.tree.data(PROVIDER).traits)

    def test_shrinks_when_allocations_fit(self):
        allocations = _alloc(self.tree, PROVIDER, 2)
        providers.update_provider_tree(self.tree, NODE, _specs(3),
                                       allocations=allocations)
        self.assertEqual((3, 0), (self._pgpu()['total'],
                                  self._pgpu()['reserved']))

    def test_kept_when_allocations_exceed_what_is_left(self):
        allocations = _alloc(self.tree, PROVIDER, 4)
        allocations.update(_alloc(self.tree, NODE, 8, rc='VCPU'))
        providers.update_provider_tree(self.tree, NODE, _specs(2),
                                       allocations=allocations)
        self.assertEqual((4, 2), (self._pgpu()['total'],
                                  self._pgpu()['reserved']))
        self.assertIn('4 are allocated', self.warn.call_args[0][0])

    def test_ledger_usage_allows_shrinking(self):
        providers.update_provider_tree(self.tree, NODE, _specs(1),
                                       usage={PROVIDER: {'PGPU': 1}})
        self.assertEqual(1, self._pgpu()['total'])

    def test_placement_usage_is_asked_only_before_shrinking(self):
        asked = []

        def placement_usage(uuid):
            asked.append(uuid)
            return {'PGPU': used}
        used = 4
        providers.update_provider_tree(self.tree, NODE, _specs(4),
                                       placement_usage=placement_usage)
        self.assertEqual([], asked)
        # A card vanishes while all four are allocated: kept, reserved.
        providers.update_provider_tree(self.tree, NODE, _specs(3),
                                       placement_usage=placement_usage)
        uuid = self.tree.data(PROVIDER).uuid
        self.assertEqual([uuid], asked)
        self.assertEqual((4, 1), (self._pgpu()['total'],
                                  self._pgpu()['reserved']))
        self.assertIn('4 are allocated', self.warn.call_args[0][0])
        # One server went: the inventory shrinks, the trait goes.
        used = 3
        providers.update_provider_tree(self.tree, NODE, _specs(3),
                                       placement_usage=placement_usage)
        self.assertEqual((3, 0), (self._pgpu()['total'],
                                  self._pgpu()['reserved']))
        self.assertNotIn(providers.TRAIT_MISSING,
                         self.tree.data(PROVIDER).traits)

    def test_placement_unreachable_keeps_the_inventory(self):
        providers.update_provider_tree(self.tree, NODE, _specs(2),
                                       placement_usage=lambda uuid: None)
        self.assertEqual((4, 2), (self._pgpu()['total'],
                                  self._pgpu()['reserved']))

    def test_vanished_model_is_kept_until_known_unused(self):
        providers.update_provider_tree(self.tree, NODE, [])
        self.assertEqual((4, 4), (self._pgpu()['total'],
                                  self._pgpu()['reserved']))
        self.assertIn(providers.TRAIT_MISSING,
                      self.tree.data(PROVIDER).traits)
        providers.update_provider_tree(self.tree, NODE, [],
                                       allocations=_alloc(self.tree,
                                                          PROVIDER, 1))
        self.assertTrue(self.tree.exists(PROVIDER))
        providers.update_provider_tree(self.tree, NODE, [], allocations={})
        self.assertFalse(self.tree.exists(PROVIDER))

    def test_mode_change_keeps_allocated_whole_cards(self):
        # All four cards move to MIG while containers may hold them whole.
        resources = data.nvidia_host(4, data.H100)
        facts = {}
        for i in range(4):
            slices = [('1g.10gb', 'MIG-%d-%d' % (i, j)) for j in range(7)]
            facts[data.pci_of(i)] = data.facts(data.pci_of(i), data.H100,
                                               slices)
        cards = discovery.enrich(discovery.cards(resources), facts)
        specs = providers.gpu_providers(NODE, cards,
                                        options.parse(modes=['*=mig']))
        providers.update_provider_tree(self.tree, NODE, specs)
        inv = self.tree.data(PROVIDER).inventory
        self.assertEqual((4, 4), (inv['PGPU']['total'],
                                  inv['PGPU']['reserved']))
        self.assertEqual(28, inv['CUSTOM_MIG_1G_10GB']['total'])
        providers.update_provider_tree(self.tree, NODE, specs, usage={})
        self.assertEqual({'CUSTOM_MIG_1G_10GB'},
                         set(self.tree.data(PROVIDER).inventory))


class HealthTest(testtools.TestCase):

    def test_unhealthy_card_is_reserved_then_returns(self):
        tree = _tree()
        providers.update_provider_tree(
            tree, NODE, _specs(4, health={1: ['XID 79 (fallen off the '
                                              'bus)']}))
        data_ = tree.data(PROVIDER)
        self.assertEqual((4, 1), (data_.inventory['PGPU']['total'],
                                  data_.inventory['PGPU']['reserved']))
        self.assertIn(providers.TRAIT_UNHEALTHY, data_.traits)
        providers.update_provider_tree(tree, NODE, _specs(4))
        data_ = tree.data(PROVIDER)
        self.assertEqual(0, data_.inventory['PGPU']['reserved'])
        self.assertNotIn(providers.TRAIT_UNHEALTHY, data_.traits)

    def test_all_cards_unhealthy(self):
        tree = _tree()
        sick = {i: ['lost'] for i in range(2)}
        providers.update_provider_tree(tree, NODE, _specs(2, health=sick))
        pgpu = tree.data(PROVIDER).inventory['PGPU']
        self.assertEqual((2, 2), (pgpu['total'], pgpu['reserved']))


class TraitOwnershipTest(testtools.TestCase):

    def test_only_our_traits_change(self):
        tree = _tree()
        providers.update_provider_tree(tree, NODE, _specs())
        tree.add_traits(PROVIDER, 'CUSTOM_RACK_7', 'HW_NIC_SRIOV',
                        'CUSTOM_GPU_STALE',
                        'HW_GPU_CUDA_COMPUTE_CAPABILITY_V7_0')
        config = options.parse(traits=['10de:2330=CUSTOM_GPU_NVLINK+'
                                       'CUSTOM_TEAM_A'])
        providers.update_provider_tree(tree, NODE, _specs(config=config))
        traits = tree.data(PROVIDER).traits
        self.assertLessEqual({'CUSTOM_RACK_7', 'HW_NIC_SRIOV',
                              'CUSTOM_GPU_NVLINK', 'CUSTOM_TEAM_A'}, traits)
        self.assertFalse({'CUSTOM_GPU_STALE',
                          'HW_GPU_CUDA_COMPUTE_CAPABILITY_V7_0'} & traits)
        # Out of the option: CUSTOM_GPU_ goes, the other name stays
        # (it cannot be told from one set by hand).
        providers.update_provider_tree(tree, NODE, _specs())
        traits = tree.data(PROVIDER).traits
        self.assertNotIn('CUSTOM_GPU_NVLINK', traits)
        self.assertIn('CUSTOM_TEAM_A', traits)

    def test_other_providers_are_left_alone(self):
        tree = _tree()
        tree.new_child('n1-pci-dev', NODE)
        tree.update_inventory('n1-pci-dev', {'CUSTOM_X': {'total': 1}})
        tree.new_root('n2', uuidutils.generate_uuid())
        tree.new_child('n2_gpu_10de_2330', 'n2')
        tree.update_inventory('n2_gpu_10de_2330', {'PGPU': {'total': 2}})
        providers.update_provider_tree(tree, NODE, [], allocations={})
        self.assertTrue(tree.exists('n1-pci-dev'))
        self.assertEqual({'PGPU': {'total': 2}},
                         tree.data('n2_gpu_10de_2330').inventory)
