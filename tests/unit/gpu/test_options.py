from oslo_config import cfg
import testtools

from nova_lxd.gpu import discovery
from nova_lxd.gpu import options
from tests.unit import data


def _card(pci='0000:41:00.0', model=data.H200):
    (card,) = discovery.cards({'cards': [data.nvidia_card(pci, model)]})
    return card


class ParseTest(testtools.TestCase):

    def test_defaults(self):
        config = options.parse()
        self.assertEqual(options.DEFAULT, config)
        self.assertTrue(config.exposes_all())
        self.assertEqual(options.WHOLE, config.mode_of(_card()))
        self.assertEqual(frozenset(), config.traits_of('10de:2335'))

    def test_most_specific_mode_wins_whatever_the_order(self):
        config = options.parse(modes=['0000:41:00.0=shared:4',
                                      '*=whole', '10de:2335=mig'])
        self.assertEqual('shared:4', str(config.mode_of(_card())))
        self.assertEqual('mig', str(config.mode_of(_card('0000:42:00.0'))))
        self.assertEqual('whole', str(config.mode_of(
            _card('0000:43:00.0', data.H100))))

    def test_nvml_spelling_of_an_address_is_accepted(self):
        config = options.parse(devices=['00000000:41:00.0'],
                               modes=['41:00.0=mig'])
        self.assertTrue(config.listed(_card()))
        self.assertEqual('mig', str(config.mode_of(_card())))

    def test_devices(self):
        config = options.parse(devices=['10de:2330', '0000:41:00.0'])
        self.assertFalse(config.exposes_all())
        self.assertTrue(config.listed(_card()))
        self.assertTrue(config.listed(_card('0000:99:00.0', data.H100)))
        self.assertFalse(config.listed(_card('0000:99:00.0')))
        self.assertEqual(frozenset(), options.parse(devices=[]).devices)

    def test_traits_per_model_and_all(self):
        config = options.parse(traits=['10de:2335=CUSTOM_GPU_NVLINK+'
                                       'CUSTOM_TEAM_A', '*=CUSTOM_LAB',
                                       '10de:2335=HW_GPU_API_VULKAN'])
        self.assertEqual({'CUSTOM_GPU_NVLINK', 'CUSTOM_TEAM_A', 'CUSTOM_LAB',
                          'HW_GPU_API_VULKAN'},
                         config.traits_of('10de:2335'))
        self.assertEqual({'CUSTOM_LAB'}, config.traits_of('1002:74a1'))

    def test_errors_name_the_option(self):
        cases = [
            ({'devices': ['nvidia']}, 'gpu_devices', 'not "*"'),
            ({'modes': ['10de:2335']}, 'gpu_modes', 'selector=value'),
            ({'modes': ['10de:2335=']}, 'gpu_modes', 'selector=value'),
            ({'modes': ['10de:2335=vgpu']}, 'gpu_modes', 'mode must be'),
            ({'modes': ['10de:2335=shared']}, 'gpu_modes', 'slot count'),
            ({'modes': ['10de:2335=shared:1']}, 'gpu_modes', 'slot count'),
            ({'modes': ['10de:2335=shared:x']}, 'gpu_modes', 'slot count'),
            ({'modes': ['10de:2335=mig:2']}, 'gpu_modes', 'mode must be'),
            ({'modes': ['*=mig', '*=whole']}, 'gpu_modes', 'twice'),
            ({'modes': ['0000:41:00.0=mig', '41:00.0=whole']}, 'gpu_modes',
             'twice'),
            ({'traits': ['0000:41:00.0=CUSTOM_X']}, 'gpu_traits',
             'per model'),
            ({'traits': ['*=custom_x']}, 'gpu_traits', 'not a trait'),
            ({'traits': ['*=HW_NOT_A_TRAIT']}, 'gpu_traits',
             'neither CUSTOM_'),
            ({'traits': ['*=CUSTOM_A+']}, 'gpu_traits', 'not a trait'),
        ]
        for kwargs, option, words in cases:
            e = self.assertRaises(options.GpuConfigError, options.parse,
                                  **kwargs)
            self.assertIn('[lxd] %s' % option, str(e))
            self.assertIn(words, str(e))

    def test_from_nova_conf(self):
        conf = cfg.ConfigOpts()
        conf.register_opts(options.gpu_opts, group='lxd')
        conf([])
        self.assertEqual(options.DEFAULT, options.from_conf(conf))
        conf.set_override('gpu_modes', ['10de:2335=shared:4'], group='lxd')
        self.assertEqual('shared:4',
                         str(options.from_conf(conf).mode_of(_card())))

    def test_help_has_examples(self):
        for opt in options.gpu_opts:
            self.assertIn('Example', opt.help)
