"""A boot storm on tools/cloud: N servers at once, against raw LXD.

On the cloud of ``tools/cloud up`` (its openrc sourced, the test bed's
env): N busybox servers without a network (``-n``, default 16: what the
two-core test cloud holds at Nova's CPU allocation ratio of 4), POSTed
at once from a warm openstacksdk client (a thread each), timed from the
first POST until the last is seen ACTIVE (one server listing every
0.2 s), then deleted; against N containers of the test bed's copy of the
image, created and started with ``lxc`` 10 at once (Nova's
max_concurrent_builds), with the flavor's limits on the cloud's pool and
their own id ranges as the driver gives them (benchmarks/rally_raw.py),
as many on each member as Nova put there, timed until all run. One
server and one raw container per member first (LXD copies the image),
not counted. Nova goes first in odd rounds, raw LXD in even ones. The
project's instance and core quotas are raised to N for the run and put
back. Each storm's CPU seconds (the machine's) are counted: on this
cloud every service shares the cores with LXD. PASS: Nova's throughput
at least 0.8 of raw LXD's (median of the rounds).

Run from the repository root, as root, with the cloud's venv:
    . /var/lib/nova-lxd-cloud/openrc; eval "$(tools/lxd-testbed env)"
    .cloud-venv/bin/python -m benchmarks.cloud_storm [-n 16] [--rounds 2]
"""

import argparse
import collections
import concurrent.futures
import configparser
import json
import os
import sys
import time

from benchmarks import boot_trace
from benchmarks import cpu
from benchmarks import rally_raw
from benchmarks import verdict

LIMIT = 0.8
TIMEOUT = 600
PREFIX = 'cloud-storm-%d' % os.getpid()
RAW_PROJECT = 'nova-lxd-bench-cloud-storm'


class Storm(object):

    def __init__(self, servers, at_once):
        self.servers, self.at_once = servers, at_once
        self.trace = boot_trace.Trace()     # the flavor and image
        self.cloud = self.trace.cloud
        self.members = os.environ['LXD_TESTBED_MEMBERS'].split()
        self.alias = os.environ['LXD_TESTBED_IMAGE']
        # lxc (rally_raw) talks to the first member's daemon.
        os.environ.setdefault('LXD_DIR', os.environ[
            'LXD_TESTBED_LXD_DIR_' + self.members[0]])
        os.environ.setdefault('LXD_CONF', os.path.join(
            os.environ['NOVA_LXD_TESTBED_DIR'], 'lxc-client'))

    # -- Nova -------------------------------------------------------------

    def post(self, name, member=None):
        """POST a server; on ``member`` when given (its compute host)."""
        where = {'availability_zone': 'nova:' + member} if member else {}
        return self.cloud.compute.create_server(
            name=name, flavor_id=self.trace.flavor.id,
            image_id=self.trace.image.id, networks='none', **where)

    def nova_storm(self, tag):
        """(seconds until all ACTIVE, CPU used, {member: servers})."""
        names = ['%s-%s-%d' % (PREFIX, tag, i) for i in range(self.servers)]
        start, clock = time.monotonic(), cpu.CPUClock()
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            posts = [pool.submit(self.post, name) for name in names]
        servers = [p.result() for p in posts if not p.exception()]
        try:
            failed = [p.exception() for p in posts if p.exception()]
            if failed:
                raise RuntimeError('%d of %d POSTs failed: %s' % (
                    len(failed), len(names), failed[0]))
            last, spread = self.wait_active(servers, start)
            took, used = last - start, clock.used()
        finally:
            self.delete(servers)
        return took, used, spread

    def wait_active(self, servers, start):
        """(when the last was seen ACTIVE, {member: servers})."""
        ids = {s.id for s in servers}
        active, spread = {}, collections.Counter()
        while len(active) < len(ids):
            if time.monotonic() - start > TIMEOUT:
                raise RuntimeError('%d servers not ACTIVE after %d s' % (
                    len(ids) - len(active), TIMEOUT))
            for server in self.cloud.compute.servers(details=True,
                                                     name='^' + PREFIX):
                if server.id not in ids or server.id in active:
                    continue
                if server.status == 'ERROR':
                    raise RuntimeError('%s went to ERROR: %s' % (
                        server.name, server.fault))
                if server.status == 'ACTIVE':
                    active[server.id] = time.monotonic()
                    spread[server.hypervisor_hostname] += 1
            time.sleep(0.2)
        return max(active.values()), spread

    def delete(self, servers):
        for server in servers:
            self.cloud.compute.delete_server(server)
        for server in servers:
            self.cloud.compute.wait_for_delete(server, interval=0.5,
                                               wait=TIMEOUT)

    # -- raw LXD ----------------------------------------------------------

    def raw_storm(self, tag, spread):
        """(seconds until all run, CPU used): ``spread`` {member: count}."""
        plan = [('%s-raw-%s-%d' % (PREFIX, tag, i), member)
                for i, member in enumerate(spread.elements())]
        locks = rally_raw.range_locks(self.config, self.members)
        start, clock = time.monotonic(), cpu.CPUClock()
        with concurrent.futures.ThreadPoolExecutor(self.at_once) as pool:
            launches = [pool.submit(rally_raw.launch, self.alias,
                                    RAW_PROJECT, self.config, name, member,
                                    locks[member])
                        for name, member in plan]
        took, used = time.monotonic() - start, clock.used()
        with concurrent.futures.ThreadPoolExecutor(self.at_once) as pool:
            for name, _ in plan:
                pool.submit(rally_raw.lxc, 'delete', '--force', '--project',
                            RAW_PROJECT, name)
        failed = [f.exception() for f in launches if f.exception()]
        if failed:
            raise RuntimeError('raw LXD failed %d of %d: %s %s' % (
                len(failed), len(plan), failed[0],
                getattr(failed[0], 'stderr', '')))
        return took, used

    # -- the run ----------------------------------------------------------

    def run(self, rounds, pool):
        """[(raw seconds, raw CPU, Nova seconds, Nova CPU, spread)]."""
        flavor = self.trace.flavor
        self.config = json.dumps(rally_raw.body(
            flavor.vcpus, flavor.ram, flavor.disk, pool))
        for member in self.members:
            server = self.post('%s-warm-up-%s' % (PREFIX, member), member)
            try:
                self.cloud.compute.wait_for_server(server, interval=0.5,
                                                   wait=TIMEOUT)
            finally:
                self.delete([server])
            self.raw_storm('warm-up', collections.Counter([member]))
        results = []
        for n in range(rounds):
            if n % 2 == 0:
                nova = self.nova_storm(n)
                raw = self.raw_storm(n, nova[2])
            else:
                raw = self.raw_storm(n, results[-1][4])
                nova = self.nova_storm(n)
            results.append(raw + nova)
        return results


def cloud_pool():
    """The cloud's storage pool: [lxd] storage_pool of its nova.conf."""
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(os.path.join(os.environ.get(
        'NOVA_LXD_CLOUD_DIR', '/var/lib/nova-lxd-cloud'), 'etc', 'nova.conf'))
    return conf['lxd']['storage_pool']


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=16, help='servers at once')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--raw-at-once', type=int, default=10)
    args = parser.parse_args()
    storm = Storm(args.n, args.raw_at_once)
    project = storm.cloud.current_project_id
    found = storm.cloud.get_compute_quotas(project)
    quotas = {k: found[k] for k in ('instances', 'cores')}
    rally_raw.ensure_project(RAW_PROJECT)
    try:
        storm.cloud.set_compute_quotas(project, **{
            k: v if v < 0 else max(v, args.n) for k, v in quotas.items()})
        storm.trace.setup()
        results = storm.run(args.rounds, cloud_pool())
    finally:
        storm.trace.cleanup()
        storm.cloud.set_compute_quotas(project, **quotas)
        rally_raw.delete_project(RAW_PROJECT)
    print('Boot storm on tools/cloud: %d busybox servers at once, no '
          'network (raw LXD %d requests at once), %d round(s), %d CPUs:' % (
              args.n, args.raw_at_once, args.rounds, os.cpu_count()))
    ratios = []
    for raw_s, raw_cpu, nova_s, nova_cpu, spread in results:
        ratios.append(raw_s / nova_s)
        print('  raw LXD create+start all %6.2f s (%.2f/s, CPU %5.1f s)   '
              'Nova POST -> all ACTIVE %6.2f s (%.2f/s, CPU %5.1f s, %s)   '
              'throughput Nova/raw %.2f' % (
                  raw_s, args.n / raw_s, raw_cpu[1], nova_s, args.n / nova_s,
                  nova_cpu[1], ' '.join('%s %d' % kv
                                        for kv in sorted(spread.items())),
                  ratios[-1]))
    return verdict.throughput(ratios, LIMIT)


if __name__ == '__main__':
    sys.exit(main())
