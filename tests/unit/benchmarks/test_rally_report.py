"""benchmarks/rally_report.py: Rally's JSON report against raw LXD's."""

import json
import os

import fixtures
import testtools

from benchmarks import rally_report


def _action(name, start, seconds, children=(), failed=False):
    action = {'name': name, 'children': list(children),
              'started_at': start, 'finished_at': start + seconds}
    if failed:
        action['failed'] = True
    return action


def _iteration(boot, delete, error=()):
    """A boot-and-delete iteration as Rally 5.1's JSON report has it."""
    actions = [_action('nova.boot_server', 1000.0, boot)]
    if delete is not None:
        actions.append(_action('nova.delete_server', 1000.0 + boot, delete))
    return {'duration': boot + (delete or 0), 'timestamp': 1000.0,
            'idle_duration': 0.0, 'error': list(error),
            'output': {'additive': [], 'complete': []},
            'atomic_actions': actions}


def _workload(concurrency, iterations, scenario=rally_report.SCENARIO,
              image='busybox'):
    return {
        'uuid': 'w-%d' % concurrency, 'description': '',
        'runner': {'constant': {'times': len(iterations),
                                'concurrency': concurrency}},
        'hooks': [],
        'scenario': {scenario: {'image': {'name': image},
                                'flavor': {'name': 'rally-busybox'},
                                'nics': [{'net-name': 'cloud-net'}]}},
        'start_time': 1796076733.5, 'data': iterations,
        'statistics': {}, 'failed_iteration_count': sum(
            1 for i in iterations if i['error']),
        'total_iteration_count': len(iterations),
    }


def _report(*workloads):
    return {'info': {'rally_version': '5.1.1', 'format_version': '1.2'},
            'tasks': [{'uuid': 't', 'title': 'x', 'subtasks': [
                {'uuid': 's%d' % i, 'title': 'x', 'workloads': [w]}
                for i, w in enumerate(workloads)]}]}


def _rounded(pair):
    return tuple(round(value, 9) for value in pair)


class PercentileTest(testtools.TestCase):

    def test_as_rallys_tables(self):
        # Rank (n - 1) * p, linear between the nearest two.
        values = [4.0, 1.0, 3.0, 2.0]
        self.assertEqual(2.5, rally_report.percentile(values, 0.5))
        self.assertAlmostEqual(3.7, rally_report.percentile(values, 0.9))
        self.assertEqual(1.0, rally_report.percentile(values, 0.0))
        self.assertEqual(4.0, rally_report.percentile(values, 1.0))
        self.assertEqual([4.0, 1.0, 3.0, 2.0], values)

    def test_one_and_none(self):
        self.assertEqual(7.0, rally_report.percentile([7.0], 0.9))
        self.assertIsNone(rally_report.percentile([], 0.5))


class WorkloadsTest(testtools.TestCase):

    def test_boot_and_delete_of_each_passed_iteration(self):
        report = _report(
            _workload(1, [_iteration(3.0, 2.0), _iteration(5.0, 4.0)]),
            _workload(2, [_iteration(6.0, 2.5),
                          _iteration(9.0, None, error=['Timeout', 'x'])]),
            _workload(1, [_iteration(1.0, 1.0)], scenario='Other.thing'))
        found = rally_report.workloads(report)
        self.assertEqual([1, 2], [w['concurrency'] for w in found])
        first, second = found
        self.assertEqual('busybox', first['image'])
        self.assertEqual('rally-busybox', first['flavor'])
        self.assertEqual('constant', first['runner'])
        self.assertEqual(2, first['times'])
        self.assertEqual([3.0, 5.0], first['boot'])
        self.assertEqual([2.0, 4.0], first['delete'])
        self.assertEqual(0, first['failed'])
        # The failed iteration counts as failed, not in the times.
        self.assertEqual([6.0], second['boot'])
        self.assertEqual([2.5], second['delete'])
        self.assertEqual(1, second['failed'])

    def test_nested_and_failed_actions(self):
        iteration = _iteration(3.0, 2.0)
        iteration['atomic_actions'] = [
            _action('outer', 0.0, 10.0, children=[
                _action('nova.boot_server', 1.0, 4.0)]),
            _action('nova.delete_server', 5.0, 1.0, failed=True)]
        workload = _workload(1, [iteration])
        self.assertEqual([4.0], rally_report.atomic_durations(
            workload, rally_report.BOOT))
        self.assertEqual([], rally_report.atomic_durations(
            workload, rally_report.DELETE))

    def test_image_given_by_id_or_plain(self):
        workload = _workload(4, [_iteration(1.0, 1.0)])
        args = workload['scenario'][rally_report.SCENARIO]
        args['image'] = {'id': 'abc'}
        args['flavor'] = 'tiny'
        found, = rally_report.workloads(_report(workload))
        self.assertEqual(('abc', 'tiny'), (found['image'], found['flavor']))

    def test_empty_report(self):
        self.assertEqual([], rally_report.workloads({}))
        self.assertEqual([], rally_report.workloads({'tasks': []}))


def _raw(image='busybox', runs=((1, [(1.0, 0.5), (3.0, 1.5)]),)):
    return {'image': image, 'alias': 'nova-lxd-' + image, 'runs': [
        {'concurrency': c, 'iterations': [
            {'member': 'lxd1', 'create_start': cs, 'delete': d,
             'error': None if cs is not None else 'launch failed'}
            for cs, d in iterations]}
        for c, iterations in runs]}


class RowsTest(testtools.TestCase):

    def test_ratios_against_raw_of_the_same_image_and_concurrency(self):
        found = rally_report.workloads(_report(
            _workload(1, [_iteration(4.0, 2.0), _iteration(8.0, 4.0)]),
            _workload(2, [_iteration(10.0, 6.0)])))
        raw = rally_report.raw_runs(_raw(runs=(
            (1, [(1.0, 0.5), (3.0, 1.5)]),
            (2, [(5.0, 2.0), (None, None)]))))
        one, two = rally_report.rows(found, raw)
        self.assertEqual((6.0, 7.6), _rounded(one['boot']))
        self.assertEqual((3.0, 3.8), _rounded(one['delete']))
        self.assertEqual((2.0, 2.8), _rounded(one['raw_create_start']))
        self.assertEqual((1.0, 1.4), _rounded(one['raw_delete']))
        self.assertAlmostEqual(3.0, one['boot_ratio'])
        self.assertAlmostEqual(3.0, one['delete_ratio'])
        self.assertAlmostEqual(3.0, one['total_ratio'])
        self.assertEqual((0, 0), (one['failed'], one['raw_failed']))
        self.assertEqual((5.0, 5.0), two['raw_create_start'])
        self.assertEqual(2.0, two['boot_ratio'])
        self.assertEqual(3.0, two['delete_ratio'])
        self.assertAlmostEqual(16.0 / 7.0, two['total_ratio'])
        self.assertEqual(1, two['raw_failed'])
        self.assertFalse(rally_report.complete([one, two]))
        self.assertTrue(rally_report.complete([one]))

    def test_no_raw_figures(self):
        found = rally_report.workloads(_report(
            _workload(1, [_iteration(4.0, 2.0)], image='debian-12')))
        row, = rally_report.rows(found, rally_report.raw_runs(_raw()))
        self.assertEqual((None, None), row['raw_create_start'])
        self.assertIsNone(row['boot_ratio'])
        self.assertIsNone(row['total_ratio'])
        self.assertIsNone(row['raw_failed'])
        self.assertFalse(rally_report.complete([row]))
        lines = rally_report.format_rows([row])
        self.assertIn('debian-12 (flavor rally-busybox)', lines[0])
        self.assertIn('n/a', lines[2])

    def test_nothing_passed(self):
        found = rally_report.workloads(_report(
            _workload(1, [_iteration(4.0, None, error=['x'])])))
        row, = rally_report.rows(found, rally_report.raw_runs(_raw()))
        self.assertEqual((None, None), row['boot'])
        self.assertIsNone(row['boot_ratio'])
        self.assertEqual(1, row['failed'])

    def test_format(self):
        found = rally_report.workloads(_report(
            _workload(1, [_iteration(4.0, 2.0), _iteration(8.0, 4.0)]),
            _workload(2, [_iteration(10.0, 6.0)])))
        lines = rally_report.format_rows(
            rally_report.rows(found, rally_report.raw_runs(_raw())))
        self.assertEqual(4, len(lines))
        self.assertIn('nova.boot_server', lines[1])
        self.assertEqual(
            '  1      6.00 /   7.60 s   3.00 /   3.80 s   2.00 /   2.80 s'
            '   1.00 /   1.40 s  3.00  3.00  3.00 0 of 2, 0', lines[2])
        self.assertTrue(lines[3].endswith('n/a   n/a   n/a 0 of 1, -'))


class MainTest(testtools.TestCase):

    def test_files_in_table_and_json_out(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        paths = {}
        for name, content in (
                ('busybox.json', _report(
                    _workload(1, [_iteration(4.0, 2.0)]))),
                ('raw.json', _raw())):
            paths[name] = os.path.join(tmp, name)
            with open(paths[name], 'w') as f:
                json.dump(content, f)
        out = os.path.join(tmp, 'rows.json')
        stdout = self.useFixture(fixtures.StringStream('stdout'))
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', stdout.stream))
        self.assertEqual(0, rally_report.main(
            ['--rally', paths['busybox.json'], '--raw', paths['raw.json'],
             '--json', out]))
        with open(out) as f:
            row, = json.load(f)
        self.assertEqual(2.0, row['boot_ratio'])
        stdout.stream.seek(0)
        self.assertIn('busybox (flavor rally-busybox)', stdout.stream.read())

    def test_no_workload(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(tmp, 'empty.json')
        with open(path, 'w') as f:
            json.dump({'tasks': []}, f)
        self.assertRaises(SystemExit, rally_report.main, ['--rally', path])
