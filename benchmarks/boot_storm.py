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
  Nova put there in the same round, same image, limits and root disk;
  timed from the first request until all run;
- Nova: N servers POSTed at once, timed from the first POST until the
  last is ACTIVE (Nova's instance.create.end).

Nova goes first in odd rounds, raw LXD in even ones (LXD slows down as
it runs). Each round's containers/servers are deleted before the next.
Throughput is servers per second; PASS when Nova's is at least 0.8 of
raw LXD's (the median of the rounds).
Each storm also counts the CPU seconds it used, the machine's and this
process's (Nova's services): when every core is busy, the throughput
ratio is at most their ratio. ``--split-cores`` gives the test bed's LXD
daemons the last core and Nova's services the others, as on a cloud,
where Nova does not run on the LXD members.
Run from the repository root: python -m benchmarks.boot_storm [-n 20]
[--rounds 1]
"""

# First: Nova's eventlet patching, quiet (like tools/demo).
from tools import demo_main

import argparse
import collections
import contextlib
import os
import sys
import time

import eventlet

from nova_lxd import image_format

from benchmarks import cpu
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

    def raw_storm(self, fingerprint, spread):
        """(seconds until all run, CPU used): create + start at once.

        At most ``at_once`` at a time; ``spread``: {member: containers}.
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

        start, clock = time.monotonic(), cpu.CPUClock()
        for i, member in enumerate(collections.Counter(spread).elements()):
            pool.spawn(launch, i, member)
        pool.waitall()
        took, used = time.monotonic() - start, clock.used()
        for container in containers:
            pool.spawn(_delete, container)
        pool.waitall()
        if errors:
            self.fail('raw LXD failed %d of %d: %s' % (
                len(errors), self.servers, errors[0]))
        return took, used

    def nova_storm(self):
        """(seconds until all ACTIVE, CPU used, {member: servers})."""
        pool = eventlet.GreenPool(self.servers)

        def post(i):
            return self.api.post_server({'server': {
                'name': 'storm-%d' % i, 'imageRef': self.image_id,
                'flavorRef': self.flavors['tiny'], 'networks': 'none'}})['id']

        # All POSTs at once, as many clients would send them.
        start, clock = time.monotonic(), cpu.CPUClock()
        uuids = list(pool.imap(post, range(self.servers)))
        while not all(u in self.active_at for u in uuids):
            failed = self.failed.intersection(uuids)
            if failed or time.monotonic() - start > TIMEOUT:
                self.fail('servers not ACTIVE after %.0f s: %d failed' % (
                    time.monotonic() - start, len(failed)))
            time.sleep(0.05)
        took, used = max(self.active_at[u] for u in uuids) - start, \
            clock.used()
        servers = [self.api.get_server(u) for u in uuids]
        where = collections.Counter(
            s['OS-EXT-SRV-ATTR:hypervisor_hostname'] for s in servers)
        for server in servers:
            self.api.delete_server(server['id'])
        self.wait_gone(uuids)
        return took, used, dict(where)

    def wait_gone(self, uuids):
        """Until Nova lists none of ``uuids``.

        A storm's deletes queue behind each other longer than Nova's test
        helper waits for one.
        """
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = [s for s in self.api.get_servers() if s['id'] in uuids]
            if not left:
                return
            if any(s['status'] == 'ERROR' for s in left) or \
                    time.monotonic() > deadline:
                self.fail('%d servers not deleted: %s' % (
                    len(left), ', '.join(sorted({s['status'] for s in left}))))
            time.sleep(0.5)

    def test_storm(self):
        server, _ = self.boot('warm-up', 'tiny')
        self._delete_server(server)
        fingerprint = self.compute.manager.driver.lxd.pylxd.images \
            .get_by_alias(image_format.alias(self.image_id)).fingerprint
        raw, nova = [], []
        for n in range(self.rounds):
            # LXD slows down run after run (its database grows): who goes
            # first alternates. Raw LXD's containers go where Nova's went
            # (the scheduler weighs servers asked for at once against the
            # same view of the members, so most go to one).
            if n % 2 == 0:
                nova.append(self.nova_storm())
                raw.append(self.raw_storm(fingerprint, nova[-1][2]))
            else:
                raw.append(self.raw_storm(fingerprint, nova[-1][2]))
                nova.append(self.nova_storm())
        BootStorm.results = raw, nova


@contextlib.contextmanager
def split_cores(bed):
    """LXD's daemons on the last core, this process on the others.

    As when Nova's services run on other hosts; undone after. Threads
    made later (LXD's, Nova's) inherit their maker's cores.
    """
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        sys.exit('--split-cores needs 2 cores or more')

    def pin(cpus):
        for member in bed.members:
            pid = bed.daemon_pid(member)
            for task in os.listdir('/proc/%d/task' % pid):
                os.sched_setaffinity(int(task), cpus)

    pin(cores[-1:])
    os.sched_setaffinity(0, cores[:-1])
    try:
        yield
    finally:
        pin(cores)
        os.sched_setaffinity(0, cores)


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
    parser.add_argument('--split-cores', action='store_true',
                        help='LXD\'s daemons on the last core, Nova\'s '
                             'services on the others (as on a cloud, where '
                             'they run elsewhere)')
    args = parser.parse_args()
    BootStorm.servers, BootStorm.rounds = args.n, args.rounds
    BootStorm.shared_idmap = args.shared_idmap
    BootStorm.at_once = args.raw_at_once
    bed = BenchBed()
    bed.ensure_project()
    try:
        with (split_cores(bed) if args.split_cores
              else contextlib.nullcontext()):
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
    cores = os.cpu_count()
    for (raw_s, raw_cpu), (nova_s, nova_cpu, spread) in zip(raw, nova):
        ratio = raw_s / nova_s
        ratios.append(ratio)
        print('  raw LXD create+start all %6.2f s (%.2f/s)   Nova POST -> '
              'all ACTIVE %6.2f s (%.2f/s, %s)   throughput Nova/raw %.2f'
              % (raw_s, args.n / raw_s, nova_s, args.n / nova_s, ' '.join(
                  '%s %d' % kv for kv in sorted(spread.items())), ratio))
        for name, took, (own, machine) in (('raw', raw_s, raw_cpu),
                                           ('Nova', nova_s, nova_cpu)):
            print('    %-4s CPU: machine %5.1f s of %5.1f (%2.0f%%), this '
                  'process %5.1f s, the rest %5.1f s' % (
                      name, machine, cores * took,
                      100 * machine / (cores * took), own, machine - own))
        # With every core busy, throughput follows CPU seconds per server.
        print('    CPU seconds raw/Nova: %.2f the machine\'s, %.2f without '
              'this process (LXD and the containers)' % (
                  raw_cpu[1] / nova_cpu[1],
                  (raw_cpu[1] - raw_cpu[0]) / (nova_cpu[1] - nova_cpu[0])))
    return verdict.throughput(ratios, LIMIT)


if __name__ == '__main__':
    sys.exit(main())
