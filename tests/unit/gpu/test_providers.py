import testtools

from nova_lxd.gpu import discovery
from nova_lxd.gpu import options
from nova_lxd.gpu import providers
from tests.unit import gpu as data


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
