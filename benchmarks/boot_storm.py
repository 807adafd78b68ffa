"""A boot storm: N servers at once through Nova's API against raw LXD.

Nova's in-process services as in tools/demo (one compute for both
test-bed members, HTTPS, an LXD project of its own, Nova's defaults:
[DEFAULT] max_concurrent_builds = 10). After one boot and delete (image
imported, services warm):

- raw LXD: N containers created and started with pylxd (the driver's
  HTTPS session), 10 at once (``--raw-at-once``; as many as Nova's
  max_concurrent_builds lets the compute build: 20 at once made LXD 5.0
  fail 3 creates on the loaded 2-core test machine, "Failed to begin
  transaction: context deadline exceeded"), as many on each member as
  Nova put there in the previous round (half each in the first), same
  image, limits and root disk; timed from the first request until all
  run;
- Nova: N servers POSTed at once, timed from the first POST until the
  last is ACTIVE (Nova's instance.create.end).

Each round's containers/servers are deleted before the next. Throughput
is servers per second; PASS when Nova's is at least 0.8 of raw LXD's.
Run from the repository root: python -m benchmarks.boot_storm [-n 20]
[--rounds 1]
"""

# First: Nova's eventlet patching, quiet (like tools/demo).
from tools import demo_main

import argparse
import collections
import sys
import time

import eventlet

from nova_lxd import image_format

from benchmarks import verdict

LIMIT = 0.8
TIMEOUT = 600


class BenchBed(demo_main.ProjectBed):
    project = 'nova-lxd-bench-storm'


class BootStorm(demo_main.NovaLXD):

    project_bed = BenchBed
    servers = 20
    rounds = 1
    at_once = 10
    shared_idmap = False
    results = None

    def setUp(self):
        # Room for every server at once on the two-core test bed.
        self.flags(cpu_allocation_ratio=16.0)
        self.flags(instances=-1, cores=-1, ram=-1, group='quota')
        if self.shared_idmap:
            self.flags(isolated_idmap=False, group='lxd')
        super().setUp()

    def raw_storm(self, fingerprint, members):
        """(seconds until all run, LXD's errors): create + start at once.

        At most ``at_once`` at a time.
        """
        raw = self.compute.manager.driver.lxd.pylxd
        pool = eventlet.GreenPool(self.at_once)
        containers, errors = [], []

        def launch(i, member):
            try:
                containers.append(create(i, member))
            except Exception as e:
                errors.append(str(e))

        def create(i, member):
            container = raw.instances.create({
                'name': 'storm-raw-%d' % i, 'type': 'container',
                'source': {'type': 'image', 'fingerprint': fingerprint},
                'profiles': [],
                'config': {'limits.cpu': '1', 'limits.memory': '128MiB'},
                'devices': {'root': {'type': 'disk', 'path': '/',
                                     'pool': self.bed.pool,
                                     'size': '1GiB'}}},
                target=member, wait=True)
            container.start(wait=True)
            return container

        start = time.monotonic()
        for i, member in enumerate(members):
            pool.spawn(launch, i, member)
        pool.waitall()
        took = time.monotonic() - start
        for container in containers:
            pool.spawn(_delete, container)
        pool.waitall()
        return took, errors

    def nova_storm(self):
        """(seconds until all ACTIVE, {member: servers})."""
        pool = eventlet.GreenPool(self.servers)

        def post(i):
            return self.api.post_server({'server': {
                'name': 'storm-%d' % i, 'imageRef': self.image_id,
                'flavorRef': self.flavors['tiny'], 'networks': 'none'}})['id']

        # All POSTs at once, as many clients would send them.
        start = time.monotonic()
        uuids = list(pool.imap(post, range(self.servers)))
        while not all(u in self.active_at for u in uuids):
            failed = self.failed.intersection(uuids)
            if failed or time.monotonic() - start > TIMEOUT:
                self.fail('servers not ACTIVE after %.0f s: %d failed' % (
                    time.monotonic() - start, len(failed)))
            time.sleep(0.05)
        took = max(self.active_at[u] for u in uuids) - start
        servers = [self.api.get_server(u) for u in uuids]
        where = collections.Counter(
            s['OS-EXT-SRV-ATTR:hypervisor_hostname'] for s in servers)
        for server in servers:
            self.api.delete_server(server['id'])
        for server in servers:
            self._wait_until_deleted(server)
        return took, where

    def test_storm(self):
        server, _ = self.boot('warm-up', 'tiny')
        self._delete_server(server)
        fingerprint = self.compute.manager.driver.lxd.pylxd.images \
            .get_by_alias(image_format.alias(self.image_id)).fingerprint
        members = self.bed.members
        spread = collections.Counter({m: self.servers // len(members)
                                      for m in members})
        spread[members[0]] += self.servers - sum(spread.values())
        raw, nova = [], []
        for _ in range(self.rounds):
            took, errors = self.raw_storm(fingerprint,
                                          list(spread.elements()))
            if errors:
                self.fail('raw LXD failed %d of %d: %s' % (
                    len(errors), self.servers, errors[0]))
            raw.append(took)
            took, spread = self.nova_storm()
            nova.append((took, dict(spread)))
        BootStorm.results = raw, nova


def _delete(container):
    container.sync()
    if container.status != 'Stopped':
        container.stop(force=True, wait=True)
    container.delete(wait=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=20, help='servers at once')
    parser.add_argument('--rounds', type=int, default=1)
    parser.add_argument('--raw-at-once', type=int, default=10,
                        help='raw LXD requests at once (default: as many '
                             'as Nova\'s max_concurrent_builds)')
    parser.add_argument('--shared-idmap', action='store_true',
                        help='Nova\'s servers as with [lxd] isolated_idmap '
                             '= False (one id range for all, as the raw '
                             'containers have)')
    args = parser.parse_args()
    BootStorm.servers, BootStorm.rounds = args.n, args.rounds
    BootStorm.shared_idmap = args.shared_idmap
    BootStorm.at_once = args.raw_at_once
    bed = BenchBed()
    bed.ensure_project()
    try:
        error = demo_main.run_case(BootStorm('test_storm'))
    finally:
        bed.delete_project()
    if error:
        sys.exit('boot_storm FAILED to run:\n%s' % error)
    raw, nova = BootStorm.results
    print('Boot storm: %d servers at once (busybox, 1 vCPU/128 MB, image '
          'cached; raw LXD %d requests at once), %d round(s):' % (
              args.n, args.raw_at_once, args.rounds))
    ratios = []
    for raw_s, (nova_s, spread) in zip(raw, nova):
        ratio = raw_s / nova_s
        ratios.append(ratio)
        print('  raw LXD create+start all %6.2f s (%.2f/s)   Nova POST -> '
              'all ACTIVE %6.2f s (%.2f/s, %s)   throughput Nova/raw %.2f'
              % (raw_s, args.n / raw_s, nova_s, args.n / nova_s, ' '.join(
                  '%s %d' % kv for kv in sorted(spread.items())), ratio))
    ratio = sorted(ratios)[len(ratios) // 2]
    passed = ratio >= LIMIT
    print('  throughput ratio %.2f against %.1f: %s' % (
        ratio, LIMIT, 'PASS' if passed else 'FAIL'))
    return verdict.exit_status(passed)


if __name__ == '__main__':
    sys.exit(main())
