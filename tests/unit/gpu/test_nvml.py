import builtins
from unittest import mock

import testtools

from nova_lxd.gpu import nvml
from tests.unit import data
from tests.unit import fakes


def _a100_mig():
    # Constructed from the real nvidia-smi -L of an A100-SXM4-80GB (seven
    # 1g.10gb slices); NVML names a slice "<GPU name> MIG <profile>".
    ((name, uuid, slices),) = data.nvidia_smi_l(
        data.load('nvidia-smi-L-A100-SXM4-80GB-7x1g.10gb.txt'))
    return {'pci': '00000000:18:00.0', 'uuid': uuid, 'name': name,
            'memory_mib': 81920, 'cc': (8, 0), 'mig': 1, 'ecc': 0,
            'retired_pending': 0, 'remapped': (0, 0, 0, 0),
            'migs': [(u, '%s MIG %s' % (name, p)) for p, u in slices]}


def _rtx():
    # GeForce: no MIG, no ECC, no row remapping (NVML: not supported).
    return {'pci': '00000000:03:00.0',
            'uuid': 'GPU-ba320978-affc-8e3e-1c78-adab016a3a2b',
            'name': 'NVIDIA GeForce RTX 2080 Ti', 'memory_mib': 11264,
            'cc': (7, 5)}


class ReadFactsTest(testtools.TestCase):

    def test_mig_card_and_plain_card(self):
        facts = nvml.read_facts(fakes.fake_nvml([_a100_mig(), _rtx()]))
        self.assertEqual(['0000:03:00.0', '0000:18:00.0'], sorted(facts))
        a100 = facts['0000:18:00.0']
        self.assertEqual((81920, '8.0', True, ()),
                         (a100.memory_mib, a100.compute_capability,
                          a100.mig_enabled, a100.health))
        self.assertEqual(['1g.10gb'] * 7,
                         [m.profile for m in a100.mig_devices])
        self.assertEqual('MIG-1aae4990-b962-574e-8375-119d6d9b9687',
                         a100.mig_devices[6].uuid)
        self.assertEqual({'0000:18:00.0'},
                         {m.parent_pci for m in a100.mig_devices})
        rtx = facts['0000:03:00.0']
        self.assertEqual((None, (), '7.5', 11264, ()),
                         (rtx.mig_enabled, rtx.mig_devices,
                          rtx.compute_capability, rtx.memory_mib,
                          rtx.health))

    def test_real_3g_40gb_listing(self):
        # Constructed from the real A100 80GB PCIe listing: 2 x 3g.40gb.
        ((name, uuid, slices),) = data.nvidia_smi_l(
            data.load('nvidia-smi-L-A100-80GB-PCIe-2x3g.40gb.txt'))
        gpu = dict(_a100_mig(), name=name, uuid=uuid,
                   migs=[(u, '%s MIG %s' % (name, p)) for p, u in slices])
        (facts,) = nvml.read_facts(fakes.fake_nvml([gpu])).values()
        self.assertEqual(['3g.40gb', '3g.40gb'],
                         [m.profile for m in facts.mig_devices])

    def test_mig_mode_off(self):
        gpu = dict(_a100_mig(), mig=0)
        (facts,) = nvml.read_facts(fakes.fake_nvml([gpu])).values()
        self.assertEqual((False, ()), (facts.mig_enabled, facts.mig_devices))

    def test_health_problems(self):
        cases = [({'ecc': 3}, 'uncorrected ECC'),
                 ({'retired_pending': 1}, 'retired memory pages pending'),
                 ({'remapped': (0, 1, 1, 0)}, 'row remapping pending'),
                 ({'remapped': (0, 9, 0, 1)}, 'row remapping failed')]
        for change, reason in cases:
            gpu = dict(_a100_mig(), **change)
            (facts,) = nvml.read_facts(fakes.fake_nvml([gpu])).values()
            self.assertEqual(1, len(facts.health), facts.health)
            self.assertIn(reason, facts.health[0])

    def test_lost_gpu_is_unhealthy(self):
        lib = fakes.fake_nvml([_a100_mig(), dict(_rtx(), lost=True)])
        facts = nvml.read_facts(lib)
        self.assertEqual((), facts['0000:18:00.0'].health)
        self.assertIn('lost', facts['0000:03:00.0'].health[0])

    def test_critical_xids_given(self):
        lib = fakes.fake_nvml([_rtx()])
        (facts,) = nvml.read_facts(lib, {'0000:03:00.0': {79}}).values()
        self.assertEqual(('XID 79 (fallen off the bus)',), facts.health)

    def test_unaddressable_gpu_is_left_out(self):
        gpu = dict(_rtx(), pci='garbage')
        self.assertEqual({}, nvml.read_facts(fakes.fake_nvml([gpu])))

    def test_old_driver_mig_name_falls_back_to_attributes(self):
        gpu = dict(_a100_mig(), migs=[('MIG-x', 'A100-SXM4-80GB')])
        lib = fakes.fake_nvml([gpu])
        lib.nvmlDeviceGetAttributes = lambda h: mock.Mock(
            gpuInstanceSliceCount=2, memorySizeMB=19968)
        (facts,) = nvml.read_facts(lib).values()
        self.assertEqual('2g.20gb', facts.mig_devices[0].profile)


class CollectorTest(testtools.TestCase):

    def test_no_library_says_why_once(self):
        lib = fakes.fake_nvml([], init_error=fakes.LIBRARY_NOT_FOUND)
        collector = nvml.Collector(lib)
        with mock.patch.object(nvml.LOG, 'info') as info:
            self.assertIsNone(collector.collect())
            self.assertIsNone(collector.collect())
        info.assert_called_once()
        self.assertIn('no libnvidia-ml', info.call_args[0][1])

    def test_driver_not_loaded(self):
        lib = fakes.fake_nvml([], init_error=fakes.DRIVER_NOT_LOADED)
        with mock.patch.object(nvml.LOG, 'info') as info:
            self.assertIsNone(nvml.Collector(lib).collect())
        self.assertIn('not loaded', info.call_args[0][1])

    def test_no_pynvml_package(self):
        real_import = builtins.__import__

        def no_pynvml(name, *args, **kwargs):
            if name == 'pynvml':
                raise ImportError(name)
            return real_import(name, *args, **kwargs)

        with mock.patch.object(builtins, '__import__', no_pynvml):
            self.assertIsNone(nvml.Collector().collect())

    def test_no_gpu_is_empty_not_none(self):
        self.assertEqual({}, nvml.Collector(fakes.fake_nvml([])).collect())

    def test_init_once_and_xids_stick(self):
        lib = fakes.fake_nvml([_rtx(), _a100_mig()],
                              events=[(0, 13), (0, 79)])
        collector = nvml.Collector(lib)
        first = collector.collect()
        # XID 13 is an application's fault, 79 the card's.
        self.assertEqual(('XID 79 (fallen off the bus)',),
                         first['0000:03:00.0'].health)
        self.assertEqual((), first['0000:18:00.0'].health)
        second = collector.collect()
        self.assertEqual(first['0000:03:00.0'].health,
                         second['0000:03:00.0'].health)
        self.assertEqual(['init'], lib.calls)

    def test_module_collect_uses_one_collector(self):
        self.addCleanup(setattr, nvml, '_collector', None)
        nvml._collector = nvml.Collector(fakes.fake_nvml([_rtx()]))
        self.assertEqual(['0000:03:00.0'], list(nvml.collect()))
