"""tools/testbed's clean-up of a killed member's cgroups (no LXD)."""

import os
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
