"""Boot time through Nova's API: server create POST to ACTIVE.

Nova's in-process services as in tools/demo (one compute for both test-bed
members, HTTPS, an LXD project of its own). One server is booted and
deleted first (image imported, services warm); then N servers are booted
one after another, each timed from its POST to Nova's announcement that
it is ACTIVE. PASS when the median is at most 1.5 s. The driver's own
share (LXDDriver.spawn) is shown beside it.
Run from the repository root: python -m benchmarks.api_boot [-n 15]
"""

# First: Nova's eventlet patching, quiet (like tools/demo).
from tools import demo_main

import argparse
import statistics
import sys
import time

from benchmarks import verdict

LIMIT = 1.5


class BenchBed(demo_main.ProjectBed):
    project = 'nova-lxd-bench-api'


class APIBoot(demo_main.NovaLXD):

    project_bed = BenchBed
    runs = 15
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

    def test_boot(self):
        server, _ = self.boot('warm-up', 'tiny')
        self._delete_server(server)
        del self.spawns[:]
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
    args = parser.parse_args()
    APIBoot.runs = args.n
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
          'warm:' % args.n)
    for label, values in (('POST -> ACTIVE', took),
                          ('of which LXDDriver.spawn', spawns)):
        print('  %-25s p50 %.3f s  p90 %.3f s  (min %.3f, max %.3f)' % (
            label, percentile(values, 50), percentile(values, 90),
            min(values), max(values)))
    p50 = percentile(took, 50)
    passed = p50 <= LIMIT
    result = 'PASS' if passed else 'FAIL'
    print('  p50 %.3f s against %.1f s: %s' % (p50, LIMIT, result))
    return verdict.exit_status(passed)


if __name__ == '__main__':
    sys.exit(main())
