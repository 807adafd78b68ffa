"""benchmarks/rally_raw.py: the raw LXD side of benchmarks/rally/run."""

import json
import threading

import fixtures
import testtools

from benchmarks import rally_raw


class BodyTest(testtools.TestCase):

    def test_what_the_driver_writes_for_the_flavor(self):
        body = rally_raw.body(1, 256, 1, 'testbed')
        self.assertEqual({
            'limits.cpu': '1', 'limits.memory': '256MiB',
            'limits.memory.swap': 'false', 'limits.processes': '4096',
            'security.idmap.isolated': 'true', 'boot.autostart': 'false',
        }, body['config'])
        self.assertEqual({'root': {'type': 'disk', 'path': '/',
                                   'pool': 'testbed', 'size': '1GiB'}},
                         body['devices'])

    def test_no_size_for_a_flavor_without_disk(self):
        body = rally_raw.body(2, 512, 0, 'p', max_processes=100)
        self.assertNotIn('size', body['devices']['root'])
        self.assertEqual('100', body['config']['limits.processes'])
        self.assertEqual('2', body['config']['limits.cpu'])


class PlanTest(testtools.TestCase):

    def test_members_in_turn(self):
        self.assertEqual(
            [('r-0', 'lxd1'), ('r-1', 'lxd2'), ('r-2', 'lxd1')],
            rally_raw.plan(3, ['lxd1', 'lxd2'], 'r'))
        self.assertEqual([], rally_raw.plan(0, ['lxd1'], 'r'))


class RangeLocksTest(testtools.TestCase):

    def test_a_lock_per_member_for_isolated_containers(self):
        config = json.dumps(rally_raw.body(1, 256, 1, 'p'))
        locks = rally_raw.range_locks(config, ['lxd1', 'lxd2'])
        self.assertEqual(['lxd1', 'lxd2'], sorted(locks))
        self.assertIsNot(locks['lxd1'], locks['lxd2'])
        self.assertTrue(locks['lxd1'].acquire(blocking=False))

    def test_none_for_shared_id_maps(self):
        body = rally_raw.body(1, 256, 1, 'p')
        del body['config']['security.idmap.isolated']
        locks = rally_raw.range_locks(json.dumps(body), ['lxd1'])
        self.assertEqual({'lxd1': None}, locks)

    def test_created_without_the_range_then_given_it_under_the_lock(self):
        config = json.dumps(rally_raw.body(1, 256, 1, 'p'))
        lock = threading.Lock()
        calls = []

        def lxc(*args, stdin=None):
            calls.append((args[:2], lock.locked(),
                          stdin and json.loads(stdin)['config'].get(
                              'security.idmap.isolated')))
        self.useFixture(fixtures.MonkeyPatch(
            'benchmarks.rally_raw.lxc', lxc))
        result = rally_raw.iteration('a', 'p', config, 'c1', 'lxd1', lock)
        self.assertIsNone(result['error'])
        self.assertEqual([(('init', 'a'), False, None),
                          (('config', 'set'), True, None),
                          (('start', '--project'), False, None),
                          (('delete', '--force'), False, None)], calls)
