"""Rally's boot-and-delete against raw LXD: p50/p90 and their ratios.

Reads the JSON reports of ``rally task report --json`` (one or more tasks
of ``benchmarks/rally/boot-and-delete-server.yaml``) and the JSON that
``benchmarks/rally_raw.py`` wrote of raw LXD create+start and delete of
the same image in the same run, and prints, per image and concurrency,
p50 and p90 of Rally's atomic actions ``nova.boot_server`` and
``nova.delete_server``, raw LXD's create+start and delete, and the
ratios of the p50s (Nova / raw LXD).

Percentiles as Rally's own tables compute them (linear between the two
nearest ranks), over the iterations that did not fail; failed ones are
counted. Pure: no OpenStack, no LXD. Exit status 1 when an iteration
failed or raw LXD's figures are missing.

Used by ``benchmarks/rally/run``; by hand:
    python benchmarks/rally_report.py --rally busybox.json \\
        --raw raw-busybox.json
"""

import argparse
import json
import math
import sys

BOOT = 'nova.boot_server'
DELETE = 'nova.delete_server'
SCENARIO = 'NovaServers.boot_and_delete_server'


def percentile(values, fraction):
    """The ``fraction`` (0..1) percentile of ``values``, None if empty.

    Linear between the nearest ranks: rank (n - 1) * fraction of the
    sorted values, as Rally's report tables compute their median and
    90%ile.
    """
    points = sorted(values)
    if not points:
        return None
    rank = (len(points) - 1) * fraction
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return points[low]
    return points[low] * (high - rank) + points[high] * (rank - low)


def _named(actions, name):
    """Every atomic action called ``name`` in ``actions``, nested too."""
    for action in actions:
        if action.get('name') == name:
            yield action
        yield from _named(action.get('children') or [], name)


def atomic_durations(workload, name):
    """Seconds of atomic action ``name`` in each iteration that passed.

    An iteration with an error, or where that action failed or did not
    finish, is left out (``failed_iterations`` counts them).
    """
    durations = []
    for iteration in workload.get('data') or []:
        if iteration.get('error'):
            continue
        for action in _named(iteration.get('atomic_actions') or [], name):
            if action.get('failed') or action.get('finished_at') is None:
                continue
            durations.append(action['finished_at'] - action['started_at'])
    return durations


def failed_iterations(workload):
    return sum(1 for i in workload.get('data') or [] if i.get('error'))


def _resource_name(arg):
    """An image or flavor argument of a Rally scenario: its name."""
    if isinstance(arg, dict):
        return arg.get('name') or arg.get('id') or arg.get('regex')
    return arg


def workloads(report, scenario=SCENARIO):
    """One dict per workload of ``scenario`` in a Rally JSON report.

    Keys: image, flavor, concurrency, times, boot and delete (seconds of
    each passed iteration's nova.boot_server and nova.delete_server),
    failed (iterations with an error), started (the workload's start,
    seconds since the epoch, or None).
    """
    found = []
    for task in report.get('tasks') or []:
        for subtask in task.get('subtasks') or []:
            for workload in subtask.get('workloads') or []:
                args = (workload.get('scenario') or {}).get(scenario)
                if args is None:
                    continue
                runner = workload.get('runner') or {}
                runner_type, runner_args = next(iter(runner.items()),
                                                (None, {}))
                found.append({
                    'image': _resource_name(args.get('image')),
                    'flavor': _resource_name(args.get('flavor')),
                    'runner': runner_type,
                    'concurrency': runner_args.get('concurrency', 1),
                    'times': runner_args.get(
                        'times', workload.get('total_iteration_count')),
                    'boot': atomic_durations(workload, BOOT),
                    'delete': atomic_durations(workload, DELETE),
                    'failed': failed_iterations(workload),
                    'started': workload.get('start_time'),
                })
    return found


def raw_runs(raw):
    """One dict per concurrency of a ``benchmarks/rally_raw.py`` JSON.

    Keys: image, concurrency, times, create_start and delete (seconds of
    each passed iteration), failed.
    """
    found = []
    for run in raw.get('runs') or []:
        passed = [i for i in run.get('iterations') or []
                  if not i.get('error')]
        found.append({
            'image': raw.get('image'),
            'concurrency': run['concurrency'],
            'times': len(run.get('iterations') or []),
            'create_start': [i['create_start'] for i in passed],
            'delete': [i['delete'] for i in passed],
            'failed': len(run.get('iterations') or []) - len(passed),
        })
    return found


def _ratio(numerator, denominator):
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def rows(rally_workloads, raw):
    """Rally's workloads joined with raw LXD's of the same image and run.

    One dict per workload, in their order, with raw LXD's run of the same
    image and concurrency.
    Keys: image, flavor, concurrency, times, failed, raw_failed, and
    (p50, p90) pairs boot, delete, raw_create_start, raw_delete (None when
    nothing passed or nothing raw was measured), and the p50 ratios
    boot_ratio, delete_ratio, total_ratio (boot + delete against create +
    start + delete).
    """
    by_key = {(r['image'], r['concurrency']): r for r in raw}
    result = []
    for w in rally_workloads:
        r = by_key.get((w['image'], w['concurrency']))
        row = {
            'image': w['image'], 'flavor': w['flavor'],
            'concurrency': w['concurrency'], 'times': w['times'],
            'failed': w['failed'],
            'raw_failed': r['failed'] if r else None,
            'boot': (percentile(w['boot'], 0.5),
                     percentile(w['boot'], 0.9)),
            'delete': (percentile(w['delete'], 0.5),
                       percentile(w['delete'], 0.9)),
            'raw_create_start': (None, None),
            'raw_delete': (None, None),
        }
        if r:
            row['raw_create_start'] = (percentile(r['create_start'], 0.5),
                                       percentile(r['create_start'], 0.9))
            row['raw_delete'] = (percentile(r['delete'], 0.5),
                                 percentile(r['delete'], 0.9))
        row['boot_ratio'] = _ratio(row['boot'][0],
                                   row['raw_create_start'][0])
        row['delete_ratio'] = _ratio(row['delete'][0], row['raw_delete'][0])
        nova_total = (None if None in (row['boot'][0], row['delete'][0])
                      else row['boot'][0] + row['delete'][0])
        raw_total = (None if None in (row['raw_create_start'][0],
                                      row['raw_delete'][0])
                     else row['raw_create_start'][0] + row['raw_delete'][0])
        row['total_ratio'] = _ratio(nova_total, raw_total)
        result.append(row)
    return result


def _pair(pair):
    p50, p90 = pair
    if p50 is None:
        return '%15s' % 'n/a'
    return '%6.2f / %6.2f s' % (p50, p90)


def _times(value):
    return '%5s' % ('n/a' if value is None else '%.2f' % value)


def format_rows(table):
    """The lines ``benchmarks/rally/run`` prints."""
    lines = []
    image = None
    for row in table:
        if row['image'] != image:
            image = row['image']
            lines.append('%s (flavor %s): p50 / p90; ratio = Nova p50 / '
                         'raw LXD p50' % (image, row['flavor']))
            lines.append('  %-4s %-17s %-17s %-17s %-17s %-5s %-5s %-5s %s'
                         % ('conc', 'nova.boot_server', 'nova.delete_server',
                            'raw create+start', 'raw delete', 'boot',
                            'del', 'total', 'failed (Nova, raw)'))
        raw_failed = '-' if row['raw_failed'] is None else row['raw_failed']
        lines.append('  %-4d %s %s %s %s %s %s %s %s of %s, %s' % (
            row['concurrency'], _pair(row['boot']), _pair(row['delete']),
            _pair(row['raw_create_start']), _pair(row['raw_delete']),
            _times(row['boot_ratio']), _times(row['delete_ratio']),
            _times(row['total_ratio']), row['failed'], row['times'],
            raw_failed))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rally', nargs='+', required=True,
                        help="Rally's JSON reports")
    parser.add_argument('--raw', nargs='*', default=[],
                        help="benchmarks/rally_raw.py's JSON files")
    parser.add_argument('--json', help='also write the rows to this file')
    args = parser.parse_args(argv)
    found, raw = [], []
    for path in args.rally:
        with open(path) as f:
            found.extend(workloads(json.load(f)))
    for path in args.raw:
        with open(path) as f:
            raw.extend(raw_runs(json.load(f)))
    if not found:
        sys.exit('no %s workload in %s' % (SCENARIO, ' '.join(args.rally)))
    table = rows(found, raw)
    print('\n'.join(format_rows(table)))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(table, f, indent=1)
    return 0 if complete(table) else 1


def complete(table):
    """True when every iteration passed, Nova's and raw LXD's."""
    return bool(table) and all(
        row['failed'] == 0 and row['raw_failed'] == 0 for row in table)


if __name__ == '__main__':
    sys.exit(main())
