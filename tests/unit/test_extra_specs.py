"""The ``lxd:`` flavor extra specs, as Nova's API and the driver see them."""

from importlib import metadata

from nova.api.validation.extra_specs import validators
from nova import exception
import testtools

from nova_lxd import extra_specs


class ValidatorsTest(testtools.TestCase):
    """Through Nova's own validate(), i.e. what its API runs from 2.86."""

    def setUp(self):
        super().setUp()
        if 'lxd:privileged' not in validators.VALIDATORS:
            # Loaded at import time from the installed entry points; a
            # stale install (setup.cfg changed, no pip install) lacks ours.
            validators.load_validators()
        self.assertIn('lxd:privileged', validators.VALIDATORS,
                      'nova-lxd\'s extra spec validators are not installed')

    def assertRefused(self, name, value, *fragments):
        e = self.assertRaises(exception.ValidationError,
                              validators.validate, name, value)
        for fragment in (name,) + fragments:
            self.assertIn(fragment, str(e))

    def test_entry_point_is_ours(self):
        (ours,) = [e for e in metadata.entry_points(
            group='nova.api.extra_spec_validators') if e.name == 'lxd']
        self.assertIs(extra_specs, ours.load())
        self.assertEqual(
            {'lxd:privileged', 'lxd:nesting', 'lxd:isolated_idmap',
             'lxd:max_processes', 'lxd:memory_swap',
             'lxd:nvidia_runtime', 'lxd:nvidia_driver_capabilities',
             'lxd:nvidia_require_cuda'},
            {v.name for v in extra_specs.register()})
        self.assertIn('lxd', validators.NAMESPACES)

    def test_every_key_is_described(self):
        for validator in extra_specs.register():
            self.assertGreater(len(validator.description), 60,
                               validator.name)

    def test_booleans_accept_what_nova_accepts(self):
        for key in ('privileged', 'nesting', 'isolated_idmap',
                    'nvidia_runtime'):
            for value in ('true', 'False', 'YES', 'no', 'on', 'off', 'y',
                          'n', 't', 'f', '1', '0'):
                validators.validate(f'lxd:{key}', value)

    def test_max_processes_is_a_positive_number(self):
        validators.validate('lxd:max_processes', '500')
        self.assertRefused('lxd:max_processes', '0', "'0'", '1 or more')
        self.assertRefused('lxd:max_processes', 'many', "'many'")
        self.assertEqual(500, extra_specs.lxd_specs(
            {'lxd:max_processes': '500'}).max_processes)
        self.assertTrue(extra_specs.lxd_specs(
            {'lxd:memory_swap': 'yes'}).memory_swap)

    def test_booleans_refuse_others(self):
        self.assertRefused('lxd:privileged', 'maybe', "'maybe'", 'true')
        self.assertRefused('lxd:nesting', '2', "'2'")
        self.assertRefused('lxd:isolated_idmap', '', "''")
        self.assertRefused('lxd:nvidia_runtime', 'enabled')

    def test_unknown_key_in_our_namespace_is_refused(self):
        self.assertRefused('lxd:unknown_key', '1')
        self.assertRefused('lxd:privilegd', 'true')

    def test_capabilities(self):
        for value in ('compute', 'compute,utility', 'all', 'compat32',
                      'compute,utility,video,graphics,display,compat32'):
            validators.validate('lxd:nvidia_driver_capabilities', value)
        for value in ('', 'cuda', 'compute,', ',compute', 'compute, utility',
                      'compute,all', 'Compute', 'compute;utility'):
            self.assertRefused('lxd:nvidia_driver_capabilities', value,
                               f"'{value}'", 'compat32')

    def test_cuda_constraint(self):
        for value in ('>=12.0', '12.2', '12', '<13', '=12.2.1', '!=11.8',
                      '>11', '<=12.4', 'cuda>=12.0'):
            validators.validate('lxd:nvidia_require_cuda', value)
        for value in ('', '=>12.0', '>= 12.0', '12.x', 'v12', '12.0.1.2',
                      'cuda', '>=', 'cuda>=12.0 brand=tesla', '==12',
                      'driver>=535'):
            self.assertRefused('lxd:nvidia_require_cuda', value,
                               f"'{value}'", '>=12.0')

    def test_other_namespaces_untouched(self):
        validators.validate('hw:cpu_policy', 'dedicated')
        validators.validate('lxdfoo:bar', 'baz')
        self.assertRaises(exception.ValidationError,
                          validators.validate, 'hw:cpu_policy', 'maybe')


class LXDSpecsTest(testtools.TestCase):
    """The parser the driver reads a flavor with."""

    def test_defaults(self):
        specs = extra_specs.lxd_specs({})
        self.assertEqual(extra_specs.LXDSpecs(), specs)
        self.assertEqual(
            (False, False, False, False, None, None),
            (specs.privileged, specs.nesting, specs.isolated_idmap,
             specs.nvidia_runtime, specs.nvidia_driver_capabilities,
             specs.nvidia_require_cuda))
        self.assertEqual(extra_specs.LXDSpecs(), extra_specs.lxd_specs(None))

    def test_frozen(self):
        specs = extra_specs.lxd_specs({})
        self.assertRaises(AttributeError, setattr, specs, 'privileged', True)

    def test_parses_every_key(self):
        self.assertEqual(
            extra_specs.LXDSpecs(
                privileged=True, nesting=True, isolated_idmap=False,
                nvidia_runtime=True,
                nvidia_driver_capabilities='compute,utility',
                nvidia_require_cuda='cuda>=12.0'),
            extra_specs.lxd_specs({
                'lxd:privileged': 'True',
                'lxd:nesting': 'yes',
                'lxd:isolated_idmap': '0',
                'lxd:nvidia_runtime': 'on',
                'lxd:nvidia_driver_capabilities': 'compute,utility',
                'lxd:nvidia_require_cuda': '>=12.0',
                'hw:cpu_policy': 'dedicated',
                'resources:VGPU': '1',
                'lxdfoo:bar': 'baz',
            }))

    def test_cuda_constraint_in_libnvidia_container_form(self):
        # LXD passes nvidia.require.cuda verbatim as NVIDIA_REQUIRE_CUDA,
        # which libnvidia-container only understands as cuda<op><version>.
        for value, expected in (('>=12.0', 'cuda>=12.0'),
                                ('12.2', 'cuda>=12.2'),
                                ('<13', 'cuda<13'),
                                ('=12.2.1', 'cuda=12.2.1'),
                                ('cuda>=11.8', 'cuda>=11.8')):
            self.assertEqual(
                expected,
                extra_specs.lxd_specs(
                    {'lxd:nvidia_require_cuda': value}).nvidia_require_cuda)

    def test_bad_values_name_key_and_value(self):
        for name, value in (('lxd:privileged', 'maybe'),
                            ('lxd:nesting', ''),
                            ('lxd:nvidia_driver_capabilities', 'cuda'),
                            ('lxd:nvidia_require_cuda', 'latest')):
            e = self.assertRaises(exception.ValidationError,
                                  extra_specs.lxd_specs, {name: value})
            self.assertIn(name, str(e))
            self.assertIn(f"'{value}'", str(e))

    def test_unknown_key_is_refused(self):
        # A misspelt security setting must not be dropped silently.
        e = self.assertRaises(exception.ValidationError,
                              extra_specs.lxd_specs,
                              {'lxd:isolated_idmpa': 'true'})
        self.assertIn('lxd:isolated_idmpa', str(e))
        self.assertIn("'true'", str(e))
        self.assertIn('lxd:isolated_idmap', str(e))

    def test_agrees_with_nova_on_booleans(self):
        for value in ('1', 't', 'true', 'on', 'y', 'yes', 'TRUE', ' yes '):
            self.assertTrue(
                extra_specs.lxd_specs({'lxd:privileged': value}).privileged)
        for value in ('0', 'f', 'false', 'off', 'n', 'no', 'No'):
            self.assertFalse(
                extra_specs.lxd_specs({'lxd:privileged': value}).privileged)
