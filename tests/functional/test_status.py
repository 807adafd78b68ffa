"""nova-lxd-status against the real test-bed cluster.

Each thing the check can find broken is broken for real here (a wrong
server certificate, an untrusted client, a missing pool or project, an
offline member, an unreachable Open vSwitch) and the check must name it;
a good configuration passes.
"""

import io
import json
import os
import signal
import subprocess
import time
from unittest import mock

import fixtures
import testtools

from nova_lxd.cmd import status
from tests.certs import write_self_signed
from tools import testbed

Code = status.Code
OVS_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class StatusTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.bed = testbed.Testbed()
        self.addCleanup(self.bed.check_daemons)
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def https(self, **overrides):
        lxd = dict(endpoint=self.bed.endpoint,
                   client_cert=self.bed.client_cert,
                   client_key=self.bed.client_key,
                   server_cert=self.bed.server_cert,
                   storage_pool=self.bed.quota_pool, members='*')
        lxd.update(overrides)
        return lxd

    def check(self, lxd, host=None, extra=''):
        """Run the command; (exit code, {check name: (result, details)})."""
        path = os.path.join(self.tmp, 'nova.conf')
        with open(path, 'w') as f:
            f.write('[DEFAULT]\nhost = %s\n[lxd]\n' % (
                host or self.bed.members[0]))
            f.writelines('%s = %s\n' % item for item in lxd.items())
            f.write(extra)
        out = io.StringIO()
        with mock.patch('sys.stdout', out):
            code = status.main(['--config-file', path, 'check', '--json'])
        found = json.loads(out.getvalue())
        return code, {c['check']: (c['result'], c['details'])
                      for c in found['checks']}

    def assertCheck(self, results, name, code, *fragments):
        result, details = results[name]
        self.assertEqual(code, result, '%s: %s' % (name, details))
        for fragment in fragments:
            self.assertIn(fragment, details)

    def test_good_https_configuration_passes(self):
        code, results = self.check(self.https())
        self.assertEqual({Code.SUCCESS}, {r for r, _ in results.values()},
                         results)
        self.assertEqual(0, code)
        self.assertCheck(results, 'Members and Nova hosts', Code.SUCCESS,
                         'manages %s' % ', '.join(self.bed.members))
        self.assertCheck(results, 'Storage pool', Code.SUCCESS,
                         'btrfs', 'sizes are enforced')
        # Both members asked at their own address.
        for member in self.bed.members:
            self.assertCheck(results, 'Clock skew', Code.SUCCESS,
                             '%s ' % member)

    def test_local_socket_of_the_member_named_like_the_host(self):
        member = self.bed.members[1]
        code, results = self.check(
            {'endpoint': self.bed.socket(member),
             'storage_pool': self.bed.quota_pool}, host=member)
        self.assertEqual(0, code, results)
        self.assertCheck(results, 'LXD server certificate', Code.SUCCESS,
                         'no TLS')
        self.assertCheck(results, 'Members and Nova hosts', Code.SUCCESS,
                         'manages %s as' % member)

    def test_dir_pool_is_a_warning_once_allowed(self):
        code, results = self.check(self.https(storage_pool=self.bed.pool))
        self.assertEqual(2, code)
        self.assertCheck(results, 'Storage pool', Code.FAILURE,
                         '[lxd] allow_dir_pool = True')
        code, results = self.check(self.https(storage_pool=self.bed.pool,
                                              allow_dir_pool=True))
        self.assertEqual(1, code)
        self.assertCheck(results, 'Storage pool', Code.WARNING,
                         'is dir, which does not enforce')

    def test_wrong_server_certificate(self):
        other, _ = write_self_signed(self.tmp, 'not-the-cluster')
        code, results = self.check(self.https(server_cert=other))
        self.assertEqual(2, code)
        self.assertCheck(results, 'LXD server certificate', Code.FAILURE,
                         'certificate other than [lxd] server_cert',
                         other)
        self.assertCheck(results, 'LXD project', Code.FAILURE,
                         'Not checked')

    def test_untrusted_client_certificate(self):
        cert, key = write_self_signed(self.tmp, 'stranger')
        code, results = self.check(self.https(client_cert=cert,
                                              client_key=key))
        self.assertEqual(2, code)
        self.assertCheck(results, 'LXD reachable', Code.SUCCESS)
        self.assertCheck(results, 'LXD trusts this client', Code.FAILURE,
                         'does not trust', 'lxc config trust add %s' % cert)

    def test_missing_pool_and_project(self):
        code, results = self.check(self.https(
            storage_pool='nova-lxd-no-such-pool',
            project='nova-lxd-no-such-project'))
        self.assertEqual(2, code)
        self.assertCheck(results, 'Storage pool', Code.FAILURE,
                         'nova-lxd-no-such-pool', 'missing on %s'
                         % ', '.join(self.bed.members))
        self.assertCheck(results, 'LXD project', Code.FAILURE,
                         'no project "nova-lxd-no-such-project"',
                         '[lxd] project')

    def test_member_not_named_like_the_host(self):
        code, results = self.check(self.https(members=''),
                                   host='compute-elsewhere')
        self.assertEqual(2, code)
        self.assertCheck(results, 'Members and Nova hosts', Code.FAILURE,
                         'no member compute-elsewhere',
                         'Its members are: %s' % ', '.join(self.bed.members))

    def test_networking_with_unreachable_open_vswitch(self):
        code, results = self.check(
            self.https(), extra='[neutron]\n[os_vif_ovs]\n'
            'ovsdb_connection = unix:%s/no-ovs.sock\n' % self.tmp)
        self.assertEqual(2, code)
        self.assertCheck(results, 'Networking (os-vif, Open vSwitch)',
                         Code.FAILURE, 'cannot ask Open vSwitch',
                         '[os_vif_ovs] ovsdb_connection',
                         # members=* over HTTPS cannot plug remote ports.
                         'manages the remote member(s)')

    def test_networking_with_a_real_ovsdb_server(self):
        """os-vif's OVSDB, really asked: with and without br-int.

        Only ovsdb-server runs (no ovs-vswitchd, so no datapath and no
        host device), with its database and socket in the test's folder.
        """
        sock = self._ovsdb_server()
        extra = ('[neutron]\novs_bridge = br-int\n[os_vif_ovs]\n'
                 'ovsdb_connection = unix:%s\n' % sock)
        # One nova-compute per member, over its socket: ports can be plugged.
        member = self.bed.members[0]
        lxd = {'endpoint': self.bed.socket(member),
               'storage_pool': self.bed.quota_pool}
        code, results = self.check(lxd, host=member, extra=extra)
        self.assertCheck(results, 'Networking (os-vif, Open vSwitch)',
                         Code.FAILURE, 'has no integration bridge br-int')
        subprocess.run(['ovs-vsctl', '--db=unix:' + sock, '--no-wait',
                        'add-br', 'br-int'], check=True, timeout=30)
        code, results = self.check(lxd, host=member, extra=extra)
        self.assertEqual(0, code, results)
        self.assertCheck(results, 'Networking (os-vif, Open vSwitch)',
                         Code.SUCCESS, 'has bridge br-int')

    def _ovsdb_server(self):
        folder = os.path.join(self.tmp, 'ovs')
        os.mkdir(folder)
        db, sock = os.path.join(folder, 'conf.db'), os.path.join(
            folder, 'db.sock')
        pidfile = os.path.join(folder, 'ovsdb-server.pid')
        subprocess.run(['ovsdb-tool', 'create', db, OVS_SCHEMA], check=True,
                       timeout=30)
        subprocess.run(['ovsdb-server', db, '--remote=punix:' + sock,
                        '--pidfile=' + pidfile, '--detach',
                        '--log-file=' + os.path.join(folder, 'ovsdb.log')],
                       check=True, timeout=30,
                       env=dict(os.environ, OVS_RUNDIR=folder))
        self.addCleanup(self._stop, pidfile)
        subprocess.run(['ovs-vsctl', '--db=unix:' + sock, '--no-wait',
                        'init'], check=True, timeout=30)
        return sock

    def _stop(self, pidfile):
        with open(pidfile) as f:
            os.kill(int(f.read()), signal.SIGTERM)
        for _ in range(50):
            if not os.path.exists(pidfile):
                return
            time.sleep(0.1)

    def test_offline_member(self):
        member = self.bed.members[-1]
        # Its daemon dies (lxd shutdown can wait minutes on a busy host).
        self.addCleanup(self.bed.revive)
        self.bed.kill_daemon(member)
        deadline = time.monotonic() + 90
        while True:
            code, results = self.check(self.https())
            if results['Members and Nova hosts'][0] == Code.WARNING:
                break
            self.assertLess(time.monotonic(), deadline,
                            'LXD still calls %s online' % member)
            time.sleep(3)
        # The service starts and manages the others: a warning, no failure.
        self.assertEqual(1, code, results)
        self.assertCheck(results, 'Members and Nova hosts', Code.WARNING,
                         'Members offline: %s (' % member,
                         'take no new servers')
        code, results = self.check(self.https(members=self.bed.members[0]))
        self.assertCheck(results, 'Members and Nova hosts', Code.WARNING,
                         'Members offline: %s' % member)
