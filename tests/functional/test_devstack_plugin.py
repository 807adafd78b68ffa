"""The DevStack plugin's LXD side against the real test bed.

DevStack's own functions run the plugin's post-config, unstack and clean
phases as in tests/devstack, but lxc is the real one, on the test bed's
first member (NOVA_LXD_LXD_DIR): the project, the trusted client
certificate and the pinned server certificate are really made in LXD,
nova-lxd-status accepts the nova-cpu.conf the plugin wrote, and clean
really removes what post-config made (and what Nova would have left in the
project), and nothing else. lxd itself stays a stand-in: the test bed's
pool exists, so nothing may call ``lxd init`` on it.
"""

import hashlib
import io
import json
import os
import ssl
import subprocess
from unittest import mock
import uuid

import fixtures
import testtools

from nova_lxd.cmd import status
from tests.devstack import test_plugin
from tools import testbed


class DevStackOnTestbedTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.bed = testbed.Testbed()
        self.addCleanup(self.bed.check_daemons)
        self.member = self.bed.members[0]
        self.other = self.bed.members[-1]
        self.project = 'nova-lxd-devstack-%s' % uuid.uuid4().hex[:8]
        tmp = self.useFixture(fixtures.TempDir()).path
        self.box = test_plugin.Sandbox(
            os.path.join(tmp, 'box'),
            fakes=[f for f in test_plugin.FAKES if f != 'lxc'])
        self.env = {'LXD_CONF': os.path.join(tmp, 'lxc-client')}
        self.localrc = ('NOVA_LXD_INSTALL=none\n'
                        'NOVA_LXD_LXD_DIR=%s\n'
                        'NOVA_LXD_STORAGE_POOL=%s\n'
                        'NOVA_LXD_PROJECT=%s\n'
                        'NOVA_LXD_MEMBER_NAME=%s\n'
                        'NOVA_LXD_MEMBERS=%s\n' % (
                            self.bed.lxd_dirs[self.member], self.bed.pool,
                            self.project, self.member, self.member))
        self.addCleanup(self._leave_nothing)

    def lxc(self, *args, check=True):
        return subprocess.run(
            ['lxc'] + list(args), check=check, capture_output=True,
            text=True, timeout=120,
            env=dict(os.environ, LXD_DIR=self.bed.lxd_dirs[self.member],
                     **self.env))

    def query(self, path):
        done = self.lxc('query', path, check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def run_plugin(self, *calls):
        done = self.box.run_plugin(list(calls), localrc=self.localrc,
                                   env=self.env)
        if done.returncode:
            self.fail('plugin failed (%d):\n%s\n%s' % (
                done.returncode, done.stdout[-3000:], done.stderr[-3000:]))

    def fingerprint(self):
        with open(self.box.path('etc/nova/lxd/client.crt')) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        return hashlib.sha256(der).hexdigest()

    def _leave_nothing(self):
        """If the test failed half-way: what clean would have removed."""
        if self.query('/1.0/projects/%s' % self.project) is not None:
            for name in self.lxc('profile', 'list', '--project',
                                 self.project, '--format', 'csv',
                                 check=False).stdout.split('\n'):
                name = name.split(',')[0]
                if name and name != 'default':
                    self.lxc('profile', 'delete', name, '--project',
                             self.project, check=False)
            self.lxc('storage', 'volume', 'delete', self.bed.pool,
                     'nova-ephemeral-devstack', '--project', self.project,
                     '--target', self.other, check=False)
            self.lxc('project', 'delete', self.project, check=False)
        crt = self.box.path('etc/nova/lxd/client.crt')
        if os.path.exists(crt):
            self.lxc('config', 'trust', 'remove', self.fingerprint(),
                     check=False)

    def test_post_config_then_clean_in_real_lxd(self):
        self.run_plugin('stack post-config', test_plugin.START_NOVA_COMPUTE)
        # Nothing initialised LXD: the pool was there.
        self.assertEqual([], self.box.calls('lxd'))
        project = self.query('/1.0/projects/%s' % self.project)
        self.assertEqual({'features.images': 'true',
                          'features.profiles': 'true',
                          'features.storage.volumes': 'true'},
                         {k: v for k, v in project['config'].items()
                          if k.startswith('features.images') or
                          k in ('features.profiles',
                                'features.storage.volumes')})
        fingerprint = self.fingerprint()
        trusted = self.query('/1.0/certificates/%s' % fingerprint)
        self.assertEqual('nova-lxd-%s' % self.member, trusted['name'])
        with open(self.bed.server_cert) as f, open(
                self.box.path('etc/nova/lxd/server.crt')) as g:
            self.assertEqual(f.read().strip(), g.read().strip())

        # nova-lxd-status takes the nova-cpu.conf DevStack makes from the
        # nova.conf the plugin wrote.
        out = io.StringIO()
        with mock.patch('sys.stdout', out):
            code = status.main(['--config-file',
                                self.box.path('etc/nova/nova-cpu.conf'),
                                'check', '--json'])
        results = {c['check']: c for c in json.loads(out.getvalue())[
            'checks']}
        self.assertNotIn(status.Code.FAILURE,
                         [c['result'] for c in results.values()], results)
        self.assertIn('manages %s as' % self.member,
                      results['Members and Nova hosts']['details'])
        self.assertEqual(1, code)   # the test bed's pool is dir: a warning

        # What Nova leaves in its project: an ephemeral disk on another
        # member, a GPU profile.
        self.lxc('storage', 'volume', 'create', self.bed.pool,
                 'nova-ephemeral-devstack', '--project', self.project,
                 '--target', self.other)
        self.lxc('profile', 'create', 'nova-gpu-devstack', '--project',
                 self.project)
        self.run_plugin('unstack')
        self.run_plugin('clean')
        self.assertIsNone(self.query('/1.0/projects/%s' % self.project))
        self.assertIsNone(self.query('/1.0/certificates/%s' % fingerprint))
        # The pool was not made by stack: it stays.
        self.assertIsNotNone(self.query('/1.0/storage-pools/%s'
                                        % self.bed.pool))
        self.assertFalse(os.path.exists(self.box.path('etc/nova/lxd')))
