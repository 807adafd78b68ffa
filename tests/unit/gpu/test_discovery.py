import json

import testtools

from nova_lxd.gpu import discovery
from tests.unit import data


class PciAddressTest(testtools.TestCase):

    def test_nvml_and_lxd_spellings_meet(self):
        # nvidia-container-cli (real): "Bus Location: 00000000:01:00.0".
        text = data.load('nvidia-container-cli-info-GTX1080MaxQ.txt')
        nvml_form = text.split('Bus Location:')[1].split()[0]
        self.assertEqual('00000000:01:00.0', nvml_form)
        self.assertEqual('0000:01:00.0', discovery.normalize_pci(nvml_form))
        self.assertEqual('0000:41:00.0',
                         discovery.normalize_pci('0000:41:00.0'))
        self.assertEqual('0000:c1:00.1', discovery.normalize_pci('C1:00.1'))

    def test_bad_address_is_a_clear_error(self):
        for bad in ('41:00', 'x', '0000:41:00.9', None, 7):
            e = self.assertRaises(discovery.GPUDataError,
                                  discovery.normalize_pci, bad)
            self.assertIn('PCI address', str(e))


class RealFixturesTest(testtools.TestCase):

    def test_aspeed_rtx2080ti_gtx1080ti(self):
        found = discovery.discover(data.load(data.ASPEED_RTX))
        self.assertEqual(['0000:03:00.0', '0000:82:00.0'],
                         [c.pci_address for c in found.cards])
        rtx, gtx = found.cards
        self.assertEqual(('10de', '1e04', 'GeForce RTX 2080 Ti', 0, '7.5'),
                         (rtx.vendor_id, rtx.product_id, rtx.name,
                          rtx.numa_node, rtx.compute_capability))
        self.assertEqual('GPU-ba320978-affc-8e3e-1c78-adab016a3a2b',
                         rtx.nvidia_uuid)
        self.assertEqual(('nvidia', '510.60.02', '11.6', 'renderD128', 1),
                         (rtx.driver, rtx.driver_version, rtx.cuda_version,
                          rtx.render_name, rtx.drm_id))
        self.assertEqual((1, '6.1', 'GeForce GTX 1080 Ti'),
                         (gtx.numa_node, gtx.compute_capability, gtx.name))
        self.assertTrue(rtx.healthy)
        self.assertIsNone(rtx.memory_mib)
        (aspeed,) = found.skipped
        self.assertEqual(('0000:06:00.0', '1a03'),
                         (aspeed.pci_address, aspeed.vendor_id))
        self.assertIn('no render node', aspeed.reason)

    def test_virtio_and_gt730(self):
        found = discovery.discover(data.load(data.VIRTIO_GT730))
        (gt730,) = found.cards
        self.assertEqual(('0000:07:00.0', '10de:1287', 'GeForce GT 730',
                          '3.5', 'nvidia0'),
                         (gt730.pci_address, gt730.model, gt730.name,
                          gt730.compute_capability, gt730.nvidia_card_name))
        (virtio,) = found.skipped
        self.assertEqual('1af4', virtio.vendor_id)
        self.assertIn('virtual machine', virtio.reason)

    def test_whole_resources_answer_or_gpu_object_or_text(self):
        gpu = data.load(data.ASPEED_RTX)
        for given in (gpu, {'cpu': {}, 'gpu': gpu}, json.dumps(gpu)):
            self.assertEqual(2, len(discovery.cards(given)))


class ConstructedVendorsTest(testtools.TestCase):

    def test_amd_instinct(self):
        # Constructed (see fixtures README): BMC + 2 x MI300X + MI210.
        found = discovery.discover(data.load(data.AMD))
        self.assertEqual(['1002:74a1', '1002:74a1', '1002:740f'],
                         [c.model for c in found.cards])
        self.assertEqual(['Instinct MI300X', 'Instinct MI300X',
                          'Instinct MI210'], [c.name for c in found.cards])
        self.assertEqual({'amdgpu'}, {c.driver for c in found.cards})
        self.assertIsNone(found.cards[0].compute_capability)
        self.assertEqual(['1a03'], [s.vendor_id for s in found.skipped])

    def test_intel_max_1550_with_sriov(self):
        # Constructed: 2 x Data Center GPU Max 1550, one with 2 VFs.
        one, two = discovery.cards(data.load(data.INTEL))
        self.assertEqual('Data Center GPU Max 1550', one.name)
        self.assertEqual((0, 63, ()), (one.sriov_vfs, one.sriov_max_vfs,
                                       one.vf_addresses))
        self.assertEqual((2, ('0000:9a:00.1', '0000:9a:00.2')),
                         (two.sriov_vfs, two.vf_addresses))

    def test_multi_gpu_nvidia_host(self):
        cards = discovery.cards(data.nvidia_host(8))
        self.assertEqual(8, len(cards))
        self.assertEqual({'10de:2335'}, {c.model for c in cards})
        self.assertEqual([0] * 4 + [1] * 4, [c.numa_node for c in cards])
        self.assertEqual('H200 SXM 141GB', cards[0].name)


class NoGpuAndMalformedTest(testtools.TestCase):

    def test_host_without_gpu(self):
        for resources in ({'cpu': {'total': 2}}, {'gpu': {'cards': [],
                                                          'total': 0}},
                          {'gpu': {'total': 0}}, {'gpu': None}):
            found = discovery.discover(resources)
            self.assertEqual(((), ()), (found.cards, found.skipped))

    def test_malformed_section_names_the_field(self):
        for resources, field in (({'gpu': {'cards': 'x'}}, 'gpu.cards'),
                                 ({'gpu': []}, 'gpu'),
                                 ([], 'resources'),
                                 ('{not json', 'resources')):
            e = self.assertRaises(discovery.GPUDataError,
                                  discovery.discover, resources)
            self.assertIn(field, str(e))

    def test_malformed_card_is_skipped_with_the_field(self):
        good = data.nvidia_card('0000:18:00.0')
        cases = [
            (dict(good, numa_node='zero'), 'gpu.cards[0].numa_node'),
            (dict(good, vendor_id=4318), 'gpu.cards[0].vendor_id'),
            (dict(good, product_id='23x5'), 'gpu.cards[0].product_id'),
            (dict(good, pci_address='18:00'), 'gpu.cards[0].pci_address'),
            (dict(good, drm=[1]), 'gpu.cards[0].drm'),
            (dict(good, nvidia={'uuid': 5}), 'gpu.cards[0].nvidia.uuid'),
            (dict(good, sriov={'vfs': ['x']}), 'gpu.cards[0].sriov.vfs[0]'),
            ('card', 'gpu.cards[0]'),
            (None, 'gpu.cards[0]'),
        ]
        for card, field in cases:
            found = discovery.discover({'cards': [card,
                                                  data.nvidia_card(
                                                      '0000:28:00.0')]})
            self.assertEqual(['0000:28:00.0'],
                             [c.pci_address for c in found.cards])
            (skipped,) = found.skipped
            self.assertIn(field, skipped.reason)
            self.assertIn('malformed', skipped.reason)

    def test_not_passable_cards(self):
        base = data.nvidia_card('0000:18:00.0')
        cases = [
            ({'driver': 'simpledrm', 'drm': {'id': 0}}, 'no PCI address'),
            (dict(base, vendor_id=None), 'vendor/product'),
            (dict(base, driver='vfio-pci'), 'vfio-pci'),
            (dict(base, driver=''), 'no kernel driver'),
            (dict(base, vendor_id='1234', product_id='1111',
                  driver='bochs-drm'), 'virtual machine'),
        ]
        for card, reason in cases:
            found = discovery.discover({'cards': [card]})
            self.assertEqual((), found.cards)
            self.assertIn(reason, found.skipped[0].reason)

    def test_nvidia_card_without_drm_is_passable(self):
        # nvidia-drm not loaded: no DRM block, the nvidia block remains.
        card = data.nvidia_card('0000:18:00.0')
        del card['drm']
        self.assertEqual(1, len(discovery.cards({'cards': [card]})))

    def test_same_address_twice(self):
        card = data.nvidia_card('0000:18:00.0')
        found = discovery.discover({'cards': [card, card]})
        self.assertEqual(1, len(found.cards))
        self.assertIn('twice', found.skipped[0].reason)


class EnrichTest(testtools.TestCase):

    def test_nvml_facts_from_real_mig_listing(self):
        # Constructed from the real nvidia-smi -L of an A100-SXM4-80GB with
        # seven 1g.10gb slices; the PCI address is made up.
        ((name, uuid, slices),) = data.nvidia_smi_l(
            data.load('nvidia-smi-L-A100-SXM4-80GB-7x1g.10gb.txt'))
        self.assertEqual('NVIDIA A100-SXM4-80GB', name)
        pci = data.pci_of(0)
        resources = {'cards': [data.nvidia_card(pci, data.A100_SXM4_80)]}
        facts = {pci: data.facts(pci, data.A100_SXM4_80, slices, uuid=uuid)}
        (card,) = discovery.enrich(discovery.cards(resources), facts)
        self.assertTrue(card.nvml_seen and card.mig_enabled)
        self.assertEqual(['1g.10gb'] * 7,
                         [m.profile for m in card.mig_devices])
        self.assertEqual('MIG-feb88891-0321-5fef-9c87-d4af3b54259e',
                         card.mig_devices[0].uuid)
        self.assertEqual((81920, '8.0'),
                         (card.memory_mib, card.compute_capability))

    def test_without_nvml_cards_are_unchanged(self):
        cards = discovery.cards(data.load(data.ASPEED_RTX))
        self.assertEqual(cards, discovery.enrich(cards, None))

    def test_nvidia_card_nvml_does_not_see_is_unhealthy(self):
        cards = discovery.cards(data.load(data.ASPEED_RTX))
        pci = cards[0].pci_address
        rtx, gtx = discovery.enrich(cards, {pci: data.facts(pci)})
        self.assertTrue(rtx.healthy)
        self.assertEqual(('not seen by NVML',), gtx.health)

    def test_amd_cards_ignore_nvml(self):
        cards = discovery.cards(data.load(data.AMD))
        self.assertEqual(cards, discovery.enrich(cards, {}))

    def test_health_reasons_are_carried(self):
        pci = data.pci_of(0)
        cards = discovery.cards({'cards': [data.nvidia_card(pci)]})
        (card,) = discovery.enrich(
            cards, {pci: data.facts(pci, health=['XID 79 (fallen off the '
                                                 'bus)'])})
        self.assertFalse(card.healthy)
