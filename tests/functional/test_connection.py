"""init_host against the real test-bed cluster: good and bad [lxd] configs.

Each bad configuration stops the service with one InvalidConfiguration
that names the problem and the option to fix.
"""

import os
import shutil

import fixtures

from nova import exception
from nova import test

from nova_lxd import driver
from tests.certs import write_self_signed
from tools import testbed


class ConnectionTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.bed = testbed.Testbed()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.flags(storage_pool=self.bed.pool, allow_dir_pool=True,
                   members=['*'], group='lxd')
        self.https()

    def https(self, **overrides):
        opts = dict(endpoint=self.bed.endpoint,
                    client_cert=self.bed.client_cert,
                    client_key=self.bed.client_key,
                    server_cert=self.bed.server_cert)
        opts.update(overrides)
        self.flags(group='lxd', **opts)

    def start(self, host='compute1'):
        lxd_driver = driver.LXDDriver(None)
        lxd_driver.init_host(host)
        return lxd_driver

    def assertRefused(self, *fragments):
        e = self.assertRaises(exception.InvalidConfiguration, self.start)
        for fragment in fragments:
            self.assertIn(fragment, str(e))
        return str(e)

    def test_https_with_pinned_certificate_despite_ca_bundle(self):
        # These machines export REQUESTS_CA_BUNDLE; with pylxd's own
        # verify=<server cert> that bundle replaced the pin.
        other_cert, _ = write_self_signed(self.tmp, 'unrelated-ca')
        self.useFixture(fixtures.EnvironmentVariable('REQUESTS_CA_BUNDLE',
                                                     other_cert))
        lxd_driver = self.start()
        self.assertEqual(self.bed.members, lxd_driver.get_available_nodes())
        for member in self.bed.members:
            self.assertEqual(
                self.bed.expected_capacity(member)['VCPU'],
                lxd_driver.get_available_resource(member)['vcpus'])

    def test_unix_socket_of_one_member_sees_the_cluster(self):
        last = self.bed.members[-1]
        self.flags(endpoint='unix://' + self.bed.socket(last), group='lxd')
        self.assertEqual(self.bed.members,
                         self.start().get_available_nodes())

    def test_default_member_is_the_host(self):
        self.flags(members=[], group='lxd')
        last = self.bed.members[-1]
        self.assertEqual([last], self.start(host=last).get_available_nodes())

    def test_nothing_listens_at_endpoint(self):
        self.https(endpoint='https://127.0.0.2:1')
        self.assertRefused('Cannot reach LXD at https://127.0.0.2:1',
                           '[lxd] endpoint')

    def test_missing_socket(self):
        self.flags(endpoint=self.tmp + '/unix.socket', group='lxd')
        self.assertRefused(self.tmp + '/unix.socket', '[lxd] endpoint')

    def test_untrusted_client_certificate(self):
        cert, key = write_self_signed(self.tmp, 'stranger')
        self.https(client_cert=cert, client_key=key)
        self.assertRefused('does not trust', '[lxd] client_cert',
                           'lxc config trust add ' + cert)

    def test_other_server_certificate(self):
        cert, _ = write_self_signed(self.tmp, 'impostor')
        self.https(server_cert=cert)
        self.assertRefused('certificate other than [lxd] server_cert',
                           cert)

    def test_unverified_https_needs_explicit_insecure(self):
        self.https(server_cert=None)
        self.assertRefused('[lxd] server_cert is not set',
                           '[lxd] insecure')
        self.flags(insecure=True, group='lxd')
        log = self.useFixture(fixtures.FakeLogger())
        self.assertEqual(self.bed.members,
                         self.start().get_available_nodes())
        # Said once, at start.
        self.assertEqual(1, log.output.count('[lxd] insecure = True'))

    def test_client_key_readable_by_others_is_refused(self):
        key = os.path.join(self.tmp, 'client.key')
        shutil.copy(self.bed.client_key, key)
        os.chmod(key, 0o644)
        self.https(client_key=key)
        self.assertRefused('[lxd] client_key %s' % key, 'mode 0644',
                           'chmod 600 %s' % key)
        os.chmod(key, 0o600)
        self.assertEqual(self.bed.members,
                         self.start().get_available_nodes())

    def test_unknown_member(self):
        self.flags(members=['lxd9'], group='lxd')
        self.assertRefused('no member lxd9', ', '.join(self.bed.members),
                           '[lxd] members')

    def test_unknown_project(self):
        self.flags(project='no-such-project', group='lxd')
        self.assertRefused('no-such-project', '[lxd] project')

    def test_dir_pool_needs_the_operators_consent(self):
        self.flags(allow_dir_pool=False, group='lxd')
        self.assertRefused('LXD storage pool "%s" ([lxd] storage_pool) is '
                           'a dir pool' % self.bed.pool,
                           '[lxd] allow_dir_pool = True')
        # A pool that enforces sizes needs no consent.
        self.flags(storage_pool=self.bed.quota_pool, group='lxd')
        self.assertEqual(self.bed.members,
                         self.start().get_available_nodes())

    def test_unknown_storage_pool(self):
        self.flags(storage_pool='no-such-pool', group='lxd')
        self.assertRefused('no-such-pool', '[lxd] storage_pool')
