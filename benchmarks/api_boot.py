"""Boot time through Nova's API: server create POST to ACTIVE.

Nova's in-process services as in tools/demo (one compute for both test-bed
members, HTTPS, an LXD project of its own). One server is booted and
deleted first (image imported, services warm); then N servers are booted
one after another, each timed from its POST to Nova's announcement that
it is ACTIVE. PASS when the median is at most 0.8 s. The driver's own
share (LXDDriver.spawn) is shown beside it. Root disks on the test bed's
btrfs pool when it has one (``lxd-testbed up --quota-pool``; LXD then
snapshots the image's volume), else (or with ``--dir-pool``) on its dir
pool (LXD unpacks the image for each container). ``--steps``: when each step
of a boot began and ended (API, conductor, scheduler, Placement,
compute, the driver's LXD requests), median seconds after the POST.
Run from the repository root: python -m benchmarks.api_boot [-n 15]
[--steps] [--dir-pool]
"""

# First: Nova's eventlet patching, quiet (like tools/demo).
from tools import demo_main

import argparse
import collections
import functools
import os
import statistics
import sys
import time

from nova.api.openstack.compute import servers as api_servers
from nova.compute import manager as compute_manager
from nova.conductor import manager as conductor_manager
from nova.scheduler.client import report
from nova.scheduler import manager as scheduler_manager

from nova_lxd import driver as lxd_driver
from nova_lxd.lxd import client

from benchmarks import verdict

LIMIT = 0.8
# (class, method, step) timed by --steps, in the order a boot calls them.
STEPS = (
    (api_servers.ServersController, 'create', 'API: create'),
    (conductor_manager.ComputeTaskManager, 'schedule_and_build_instances',
     'conductor: schedule and build'),
    (scheduler_manager.SchedulerManager, 'select_destinations',
     'scheduler: select destinations'),
    (report.SchedulerReportClient, 'get_allocation_candidates',
     'Placement: allocation candidates'),
    (report.SchedulerReportClient, 'claim_resources', 'Placement: claim'),
    (compute_manager.ComputeManager, '_build_and_run_instance',
     'compute: build and run'),
    (lxd_driver.LXDDriver, 'spawn', 'driver: spawn'),
    (lxd_driver.LXDDriver, 'get_info', 'driver: get_info'),
)

# What an LXD request path names after these, shown as one step.
NAMED = {'instances': '<instance>', 'operations': '<operation>',
         'aliases': '<alias>'}


class Steps(object):
    """When each STEPS method and each LXD request of a boot began, ended.

    Installed for the rest of the process (the benchmark's own).
    """

    def __init__(self):
        self.boots, self.seen = [], []
        for cls, method, step in STEPS:
            setattr(cls, method, self._timed(getattr(cls, method), step))
        client.LXD._request = self._timed(
            client.LXD._request, None,
            lambda lxd, method, node, **kw: 'LXD: %s %s' % (
                method.upper(), node._api_endpoint.split('/1.0', 1)[-1]))

    def _timed(self, func, step, name=None):
        @functools.wraps(func)
        def timed(*args, **kwargs):
            label = step or name(*args, **kwargs)
            self.seen.append((time.monotonic(), label + ' >'))
            try:
                return func(*args, **kwargs)
            finally:
                self.seen.append((time.monotonic(), label + ' <'))
        return timed

    def boot_started(self):
        del self.seen[:]
        self.start = time.monotonic()

    def boot_ended(self, seconds):
        self.boots.append([(t - self.start, s) for t, s in self.seen] +
                          [(seconds, 'ACTIVE')])

    def report(self):
        print('Steps of a boot (median seconds after the POST, %d boots):'
              % len(self.boots))
        for seconds, step in timeline(self.boots):
            print('  %7.3f  %s' % (seconds, step))


def timeline(boots):
    """[(median seconds, step)] of boots of [(seconds, step)], in order.

    LXD requests are one step whatever they name; a step's second
    begin or end in a boot is 'step (2)'.
    """
    at = collections.defaultdict(list)
    for boot in boots:
        times = collections.Counter()
        for seconds, step in boot:
            step = _generic(step)
            times[step] += 1
            if times[step] > 1:
                step += ' (%d)' % times[step]
            at[step].append(seconds)
    return sorted((statistics.median(values), step)
                  for step, values in at.items())


def _generic(step):
    """An LXD request's step without its instance, operation or alias."""
    if not step.startswith('LXD: '):
        return step
    step, mark = step[:-2], step[-2:]
    parts = step.split('/')
    for i, part in enumerate(parts[:-1]):
        if part in NAMED:
            parts[i + 1] = NAMED[part]
    return '/'.join(parts) + mark


class BenchBed(demo_main.ProjectBed):
    project = 'nova-lxd-bench-api'


class APIBoot(demo_main.NovaLXD):

    project_bed = BenchBed
    runs = 15
    steps = None
    results = None

    def setUp(self):
        # Room for every server at once on the two-core test bed.
        self.flags(cpu_allocation_ratio=16.0)
        self.flags(instances=-1, cores=-1, ram=-1, group='quota')
        super().setUp()
        driver = self.compute.manager.driver
        spawn, self.spawns = driver.spawn, []

        def timed_spawn(*args, **kwargs):
            start = time.monotonic()
            try:
                return spawn(*args, **kwargs)
            finally:
                self.spawns.append(time.monotonic() - start)
        driver.spawn = timed_spawn

    def boot(self, name, flavor):
        if self.steps:
            self.steps.boot_started()
        server, seconds = super().boot(name, flavor)
        if self.steps:
            self.steps.boot_ended(seconds)
        return server, seconds

    def test_boot(self):
        server, _ = self.boot('warm-up', 'tiny')
        self._delete_server(server)
        del self.spawns[:]
        if self.steps:
            del self.steps.boots[:]
        servers, took = [], []
        for i in range(self.runs):
            server, seconds = self.boot('bench-%d' % i, 'tiny')
            servers.append(server)
            took.append(seconds)
        for server in servers:
            self.api.delete_server(server['id'])
        for server in servers:
            self._wait_until_deleted(server)
        APIBoot.results = took, list(self.spawns)


def percentile(values, p):
    return statistics.quantiles(values, n=100, method='inclusive')[p - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=15, help='servers to boot')
    parser.add_argument('--dir-pool', action='store_true',
                        help="the test bed's dir pool even when it has a "
                             'btrfs one')
    parser.add_argument('--steps', action='store_true',
                        help='time each step of the boots')
    args = parser.parse_args()
    APIBoot.runs = args.n
    APIBoot.quota_pool = (bool(os.environ.get('LXD_TESTBED_QUOTA_POOL'))
                          and not args.dir_pool)
    APIBoot.steps = Steps() if args.steps else None
    bed = BenchBed()
    bed.ensure_project()
    try:
        error = demo_main.run_case(APIBoot('test_boot'))
    finally:
        bed.delete_project()
    if error:
        sys.exit('api_boot FAILED to run:\n%s' % error)
    took, spawns = APIBoot.results
    print('Server create POST -> ACTIVE through Nova\'s API, %d servers one '
          'after another (flavor 1 vCPU/128 MB), image cached, services '
          'warm, pool %s:' % (args.n, os.environ['LXD_TESTBED_QUOTA_POOL']
                              if APIBoot.quota_pool else 'dir'))
    for label, values in (('POST -> ACTIVE', took),
                          ('of which LXDDriver.spawn', spawns)):
        print('  %-25s p50 %.3f s  p90 %.3f s  (min %.3f, max %.3f)' % (
            label, percentile(values, 50), percentile(values, 90),
            min(values), max(values)))
    if args.steps:
        APIBoot.steps.report()
    p50 = percentile(took, 50)
    passed = p50 <= LIMIT
    result = 'PASS' if passed else 'FAIL'
    print('  p50 %.3f s against %.1f s: %s' % (p50, LIMIT, result))
    return verdict.exit_status(passed)


if __name__ == '__main__':
    sys.exit(main())
