"""The ``lxd:`` extra specs through Nova's real flavor API (no compute, no
LXD): Nova finds our validators through the installed entry point."""

import os
import sys

from nova import exception
from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional.api import client as api_client

from nova_lxd import extra_specs


class FlavorExtraSpecsTest(test.TestCase):

    # Extra spec validation is enforced from this microversion on.
    microversion = '2.86'

    def setUp(self):
        # Nova's wheel installs api-paste.ini under sys.prefix; the API
        # fixture reads it in setUp.
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        super().setUp()
        self.useFixture(nova_fixtures.RealPolicyFixture())
        self.api = self.useFixture(nova_fixtures.OSAPIFixture(
            api_version='v2.1')).admin_api
        self.api.microversion = self.microversion
        self.flavor_id = self.api.post_flavor({'flavor': {
            'name': 'lxd.small', 'ram': 512, 'vcpus': 1, 'disk': 1}})['id']

    def assertRefused(self, specs, *fragments):
        e = self.assertRaises(api_client.OpenStackApiException,
                              self.api.post_extra_spec, self.flavor_id,
                              {'extra_specs': specs})
        self.assertEqual(400, e.response.status_code)
        message = e.response.json()['badRequest']['message']
        for fragment in fragments:
            self.assertIn(fragment, message)
        self.assertEqual({}, self.api.get_extra_specs(self.flavor_id))

    def test_bad_boolean_refused_naming_the_key(self):
        self.assertRefused({'lxd:privileged': 'maybe'},
                           'lxd:privileged', "'maybe'")

    def test_unknown_key_refused(self):
        self.assertRefused({'lxd:bogus': '1'}, 'lxd:bogus')

    def test_bad_capabilities_and_cuda_refused(self):
        self.assertRefused({'lxd:nvidia_driver_capabilities': 'cuda'},
                           'lxd:nvidia_driver_capabilities', 'compat32')
        self.assertRefused({'lxd:nvidia_require_cuda': 'latest'},
                           'lxd:nvidia_require_cuda', "'latest'")

    def test_one_bad_key_refuses_the_whole_request(self):
        self.assertRefused({'lxd:nesting': 'true', 'lxd:privileged': 'maybe'},
                           'lxd:privileged')

    def test_good_values_stored(self):
        specs = {
            'lxd:privileged': 'true',
            'lxd:nesting': 'False',
            'lxd:isolated_idmap': 'yes',
            'lxd:nvidia_runtime': '1',
            'lxd:nvidia_driver_capabilities': 'compute,utility',
            'lxd:nvidia_require_cuda': '>=12.0',
        }
        self.api.post_extra_spec(self.flavor_id, {'extra_specs': specs})
        stored = self.api.get_extra_specs(self.flavor_id)
        self.assertEqual(specs, stored)
        self.assertEqual(
            extra_specs.LXDSpecs(
                privileged=True, nesting=False, isolated_idmap=True,
                nvidia_runtime=True,
                nvidia_driver_capabilities='compute,utility',
                nvidia_require_cuda='cuda>=12.0'),
            extra_specs.lxd_specs(stored))

    def test_update_one_key(self):
        self.api.put_extra_spec(self.flavor_id, 'lxd:privileged',
                                {'lxd:privileged': 'true'})
        self.assertEqual({'lxd:privileged': 'true'},
                         self.api.get_extra_specs(self.flavor_id))
        e = self.assertRaises(api_client.OpenStackApiException,
                              self.api.put_extra_spec, self.flavor_id,
                              'lxd:privileged', {'lxd:privileged': 'maybe'})
        self.assertEqual(400, e.response.status_code)
        self.assertIn('lxd:privileged', e.response.text)
        self.assertEqual({'lxd:privileged': 'true'},
                         self.api.get_extra_specs(self.flavor_id))

    def test_older_microversion_stores_what_the_driver_then_refuses(self):
        # Before 2.86 Nova validates nothing: a flavor can hold a bad value,
        # which is why the driver's parser checks again.
        self.api.microversion = '2.85'
        self.api.post_extra_spec(
            self.flavor_id, {'extra_specs': {'lxd:privileged': 'maybe'}})
        stored = self.api.get_extra_specs(self.flavor_id)
        self.assertEqual({'lxd:privileged': 'maybe'}, stored)
        e = self.assertRaises(exception.ValidationError,
                              extra_specs.lxd_specs, stored)
        self.assertIn('lxd:privileged', str(e))
        self.assertIn("'maybe'", str(e))
