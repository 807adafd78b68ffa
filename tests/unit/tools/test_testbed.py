"""tools/testbed without LXD: a killed member's cgroups, dead daemons."""

import os
import subprocess
from unittest import mock

import fixtures
import testtools

from tools import testbed

PROC = ('12:cpuset:/lxc.payload.instance-00000001\n'
        '11:memory:/lxc.payload.instance-00000001/init.scope\n'
        '4:pids:/lxc.monitor.instance-00000001\n'
        '1:name=systemd:/system.slice/ssh.service\n'
        '0::/\n')


class KilledCgroupsTest(testtools.TestCase):

    def test_the_lxc_cgroups_of_a_process(self):
        with mock.patch('builtins.open', mock.mock_open(read_data=PROC)):
            self.assertEqual({'lxc.payload.instance-00000001',
                              'lxc.monitor.instance-00000001'},
                             testbed._lxc_cgroups(1))

    def test_a_gone_process_has_none(self):
        self.assertEqual(set(), testbed._lxc_cgroups(2 ** 30))

    def test_empty_cgroups_go_in_every_hierarchy_busy_ones_stay(self):
        root = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.MonkeyPatch(
            'tools.testbed.CGROUP_ROOT', root))
        name = 'lxc.payload.c1'
        for hierarchy in ('cpuset', 'memory'):
            os.makedirs(os.path.join(root, hierarchy, name, 'init.scope'))
        busy = os.path.join(root, 'pids', name)
        os.makedirs(busy)
        with open(os.path.join(busy, 'cgroup.procs'), 'w') as f:
            f.write('42\n')     # a file: rmdir fails, as on a busy cgroup
        testbed._remove_cgroup(name)
        self.assertEqual(['pids'], sorted(
            h for h in os.listdir(root)
            if os.path.exists(os.path.join(root, h, name))))


class DeadDaemonsTest(testtools.TestCase):
    """lxd1 runs (this test's child), lxd2's daemon has exited."""

    def setUp(self):
        super().setUp()
        folder = self.useFixture(fixtures.TempDir()).path
        alive = subprocess.Popen(['sleep', '60'])
        self.addCleanup(alive.wait)
        self.addCleanup(alive.kill)
        gone = subprocess.Popen(['true'])
        gone.wait()
        self.bed = object.__new__(testbed.Testbed)
        self.bed.members = ['lxd1', 'lxd2']
        self.bed.lxd_dirs = {m: os.path.join(folder, m)
                             for m in self.bed.members}
        for member, pid in (('lxd1', alive.pid), ('lxd2', gone.pid)):
            with open(self.bed.lxd_dirs[member] + '.pid', 'w') as f:
                f.write('%d 4242\n' % pid)
        with open(self.bed.lxd_dirs['lxd2'] + '.out', 'w') as f:
            f.write('early line\n' * 40 + 'panic: runtime error\n')
        self.revive = self.useFixture(fixtures.MockPatchObject(
            self.bed, 'revive')).mock

    def test_the_dead_one_is_named_restarted_and_its_output_shown(self):
        self.assertEqual(['lxd2'], self.bed.dead_daemons())
        e = self.assertRaises(testtools.TestCase.failureException,
                              self.bed.check_daemons)
        self.assertIn('daemon of lxd2 died', str(e))
        self.assertIn('panic: runtime error', str(e))
        self.assertEqual(29, str(e).count('early line'))
        self.revive.assert_called_once_with()

    def test_nothing_when_all_run(self):
        self.bed.members = ['lxd1']
        self.bed.check_daemons()
        self.revive.assert_not_called()
