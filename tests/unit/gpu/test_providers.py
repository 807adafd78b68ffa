"""GPU cards + options -> Placement providers, and applying them (pure)."""

from unittest import mock

from nova.compute import provider_tree
from oslo_utils import uuidutils
import testtools

from nova_lxd.gpu import discovery
from nova_lxd.gpu import options
from nova_lxd.gpu import providers
from tests.unit import data


def _cards(resources, facts=None):
    return discovery.enrich(discovery.cards(resources), facts)


def _h200_host(count=8, profile='1g.18gb', slices=7, health=None):
    """8 x H200 with MIG slices (constructed; NVIDIA's H200 profiles)."""
    resources = data.nvidia_host(count, data.H200)
    facts = {}
    for i in range(count):
        pci = data.pci_of(i)
        facts[pci] = data.facts(pci, data.H200,
                                data.h200_slices(i, profile, slices),
                                health=(health or {}).get(i, ()))
    return _cards(resources, facts)


class NamesTest(testtools.TestCase):

    def test_provider_and_class_names(self):
        self.assertEqual('lxd1_gpu_10de_2335',
                         providers.provider_name('lxd1', '10de', '2335'))
        self.assertEqual('CUSTOM_MIG_1G_10GB',
                         providers.mig_resource_class('1g.10gb'))
        self.assertEqual('CUSTOM_MIG_1G_18GB_ME',
                         providers.mig_resource_class('1g.18gb+me'))

    def test_h100_profiles_from_real_table(self):
        table = data.load('nvidia-smi-mig-lgip-H100-SXM5-80GB.txt')
        profiles = [w for w in table.split() if w[0].isdigit() and 'g.' in w]
        self.assertEqual(
            ['CUSTOM_MIG_1G_10GB', 'CUSTOM_MIG_1G_10GB_ME',
             'CUSTOM_MIG_1G_20GB', 'CUSTOM_MIG_2G_20GB',
             'CUSTOM_MIG_3G_40GB', 'CUSTOM_MIG_4G_40GB',
             'CUSTOM_MIG_7G_80GB'],
            [providers.mig_resource_class(p) for p in profiles])

    def test_memory_buckets(self):
        for mib, trait in ((81559, '80GB'),      # H100 80GB
                           (143771, '141GB'),    # H200
                           (15360, '16GB'),      # T4
                           (11264, '11GB'),      # RTX 2080 Ti
                           (23028, '24GB'),      # A10G
                           (95830, '94GB'),      # H100 NVL
                           (40960, '40GB'),
                           (196608, '192GB'),    # MI300X
                           (512000, '500GB')):   # beyond the list
            self.assertEqual('CUSTOM_GPU_MEMORY_' + trait,
                             providers.memory_trait(mib))

    def test_compute_capability_standard_where_os_traits_has_it(self):
        self.assertEqual('HW_GPU_CUDA_COMPUTE_CAPABILITY_V6_1',
                         providers.compute_capability_trait('6.1'))
        # os-traits stops at 7.2.
        self.assertEqual('CUSTOM_GPU_CUDA_COMPUTE_CAPABILITY_V9_0',
                         providers.compute_capability_trait('9.0'))


class RealFixtureProvidersTest(testtools.TestCase):

    def test_rtx2080ti_and_gtx1080ti_one_provider_per_model(self):
        specs = providers.gpu_providers(
            'lxd1', _cards(data.load(data.ASPEED_RTX)))
        self.assertEqual(['lxd1_gpu_10de_1b06', 'lxd1_gpu_10de_1e04'],
                         [s.name for s in specs])
        gtx, rtx = specs
        self.assertEqual({'PGPU': providers.Units(1, 0, 1)}, rtx.units)
        self.assertEqual({'CUSTOM_GPU_VENDOR_10DE', 'CUSTOM_GPU_10DE_1E04',
                          'CUSTOM_GPU_MODEL_GEFORCE_RTX_2080_TI',
                          'CUSTOM_GPU_CUDA_COMPUTE_CAPABILITY_V7_5'},
                         rtx.traits)
        self.assertIn('HW_GPU_CUDA_COMPUTE_CAPABILITY_V6_1', gtx.traits)
        self.assertEqual(('0000:82:00.0',), gtx.cards)

    def test_plans_say_why_a_card_is_out(self):
        cards = _cards(data.load(data.VIRTIO_GT730))
        config = options.parse(devices=['0000:99:00.0'])
        (plan,) = providers.card_plans('lxd1', cards, config)
        self.assertFalse(plan.exposed)
        self.assertIn('gpu_devices', plan.reason)
        self.assertEqual([], providers.gpu_providers('lxd1', cards, config))


class NvidiaModesTest(testtools.TestCase):

    def test_eight_whole_cards_are_one_pgpu_8(self):
        cards = _cards(data.nvidia_host(8, data.H100))
        (spec,) = providers.gpu_providers('n1', cards)
        self.assertEqual({'PGPU': providers.Units(8, 0, 8)}, spec.units)
        self.assertIn('CUSTOM_GPU_MODEL_H100_SXM5_80GB', spec.traits)

    def test_h200_mig_seven_slices_each(self):
        config = options.parse(modes=['10de:2335=mig'])
        (spec,) = providers.gpu_providers('n1', _h200_host(), config)
        self.assertEqual({'CUSTOM_MIG_1G_18GB': providers.Units(56, 0, 56)},
                         spec.units)
        self.assertLessEqual({'CUSTOM_GPU_MEMORY_141GB',
                              'CUSTOM_GPU_10DE_2335',
                              'CUSTOM_GPU_CUDA_COMPUTE_CAPABILITY_V9_0'},
                             spec.traits)

    def test_mixed_h200_profiles_and_modes_on_one_model(self):
        # NVIDIA's H200 table: 3g.71gb x2 or 1g.35gb x4 per card.
        resources = data.nvidia_host(4, data.H200)
        slices = {0: data.h200_slices(0, '3g.71gb', 2),
                  1: data.h200_slices(1, '1g.35gb', 4)}
        facts = {data.pci_of(i): data.facts(data.pci_of(i),
                                            slices=slices.get(i, ()))
                 for i in range(4)}
        config = options.parse(modes=[
            '%s=mig' % data.pci_of(0), '%s=mig' % data.pci_of(1),
            '%s=shared:4' % data.pci_of(2)])
        (spec,) = providers.gpu_providers('n1', _cards(resources, facts),
                                          config)
        self.assertEqual({'CUSTOM_MIG_3G_71GB': providers.Units(2, 0, 2),
                          'CUSTOM_MIG_1G_35GB': providers.Units(4, 0, 4),
                          'CUSTOM_SHARED_GPU': providers.Units(4, 0, 1),
                          'PGPU': providers.Units(1, 0, 1)}, spec.units)

    def test_shared_max_unit_is_one_slot_per_card(self):
        config = options.parse(modes=['*=shared:4'])
        (spec,) = providers.gpu_providers(
            'n1', _cards(data.nvidia_host(2, data.A100_PCIE_80)), config)
        self.assertEqual({'CUSTOM_SHARED_GPU': providers.Units(8, 0, 2)},
                         spec.units)

    def test_mig_without_nvml_or_slices_offers_nothing_and_says_why(self):
        config = options.parse(modes=['*=mig'])
        resources = data.nvidia_host(3, data.A100_SXM4_80)
        no_nvml = providers.card_plans('n1', _cards(resources), config)
        self.assertIn('NVML', no_nvml[0].notes[0])
        facts = {data.pci_of(0): data.facts(data.pci_of(0),
                                            data.A100_SXM4_80, mig=False),
                 data.pci_of(1): data.facts(data.pci_of(1),
                                            data.A100_SXM4_80, mig=True),
                 data.pci_of(2): data.facts(data.pci_of(2),
                                            data.A100_SXM4_80, mig=None)}
        plans = providers.card_plans('n1', _cards(resources, facts), config)
        self.assertEqual([(), (), ()], [p.units for p in plans])
        self.assertIn('-mig 1', plans[0].notes[0])
        self.assertIn('no slices', plans[1].notes[0])
        self.assertIn('-mig 1', plans[2].notes[0])
        (spec,) = providers.gpu_providers('n1', _cards(resources, facts),
                                          config)
        self.assertEqual({}, spec.units)

    def test_whole_mode_on_a_mig_card_is_noted(self):
        (plan,) = providers.card_plans('n1', _h200_host(count=1))
        self.assertEqual('whole', plan.mode)
        self.assertIn('MIG is enabled', plan.notes[0])

    def test_unhealthy_cards_are_counted_and_flagged(self):
        config = options.parse(modes=['10de:2335=mig'])
        cards = _h200_host(health={3: ['XID 79 (fallen off the bus)']})
        (spec,) = providers.gpu_providers('n1', cards, config)
        self.assertEqual(providers.Units(56, 7, 56),
                         spec.units['CUSTOM_MIG_1G_18GB'])
        self.assertIn(providers.TRAIT_UNHEALTHY, spec.traits)
        plan = providers.card_plans('n1', cards, config)[3]
        self.assertIn('XID 79', plan.notes[-1])


class OtherVendorsTest(testtools.TestCase):

    def test_amd_instinct(self):
        # Constructed fixture: 2 x MI300X + MI210 (+ BMC, skipped).
        specs = providers.gpu_providers('a1', _cards(data.load(data.AMD)))
        self.assertEqual(['a1_gpu_1002_740f', 'a1_gpu_1002_74a1'],
                         [s.name for s in specs])
        mi210, mi300x = specs
        self.assertEqual({'PGPU': providers.Units(2, 0, 2)}, mi300x.units)
        self.assertEqual({'CUSTOM_GPU_VENDOR_1002', 'CUSTOM_GPU_1002_74A1',
                          'CUSTOM_GPU_MODEL_INSTINCT_MI300X'},
                         mi300x.traits)
        self.assertIn('CUSTOM_GPU_MODEL_INSTINCT_MI210', mi210.traits)

    def test_mig_is_refused_for_amd(self):
        config = options.parse(modes=['*=mig'])
        plans = providers.card_plans('a1', _cards(data.load(data.AMD)),
                                     config)
        self.assertEqual([False] * 3, [p.exposed for p in plans])
        self.assertIn('NVIDIA feature', plans[0].reason)

    def test_intel_max_1550_shared(self):
        config = options.parse(modes=['8086:0bd5=shared:2'],
                               traits=['8086:0bd5=CUSTOM_XE_LINK'])
        (spec,) = providers.gpu_providers('i1', _cards(data.load(data.INTEL)),
                                          config)
        self.assertEqual({'CUSTOM_SHARED_GPU': providers.Units(4, 0, 2)},
                         spec.units)
        self.assertLessEqual({'CUSTOM_GPU_VENDOR_8086', 'CUSTOM_XE_LINK',
                              'CUSTOM_GPU_MODEL_DATA_CENTER_GPU_MAX_1550'},
                             spec.traits)

    def test_other_vendor_only_when_named(self):
        card = dict(data.nvidia_card('0000:05:00.0'), vendor_id='1d94',
                    product_id='6210', vendor='Chengdu Haiguang',
                    product='Kunpeng [K100 AI]', driver='hydcu')
        del card['nvidia']
        cards = _cards({'cards': [card]})
        (plan,) = providers.card_plans('h1', cards)
        self.assertIn('not NVIDIA, AMD or Intel', plan.reason)
        config = options.parse(devices=['*', '1d94:6210'])
        (spec,) = providers.gpu_providers('h1', cards, config)
        self.assertEqual('h1_gpu_1d94_6210', spec.name)

    def test_no_gpu(self):
        self.assertEqual([], providers.gpu_providers(
            'h1', _cards({'cpu': {}})))
        self.assertEqual([], providers.gpu_providers(
            'h1', _cards(data.load(data.ASPEED_RTX)),
            options.parse(devices=[])))


# -- applying them to Nova's ProviderTree ---------------------------

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
