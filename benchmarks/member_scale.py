"""Many members, one nova-compute: the driver's periodic costs at M members.

One service for every member of the cluster (``[lxd] members = *``) runs
Nova's periodic tasks for all of them: how do they grow with the member
count? Timed as ``benchmarks.periodic_scale`` times them (its ``measure``:
update_available_resource = get_available_nodes, then per node
get_available_resource + update_provider_tree, the member-status cache
expired as between two 60 s runs; the power sync = get_num_instances +
get_info of every instance; list_instance_uuids; get_available_nodes),
every HTTP request of the driver's LXD session counted and timed.

1. Real members: the test bed's members, each with --per-member empty
   stopped containers made in LXD with the driver's own body (in an LXD
   project of the benchmark's own, deleted at the end); the driver
   managing the first K of them (``[lxd] members`` = that list; all of
   them as ``*``) for each K of --members that the test bed has. Each
   member daemon's RSS. Every HTTPS GET of the driver is recorded with
   LXD's answer.
2. Simulated members: ``benchmarks.lxd_fake``, an HTTPS fake answering
   with those recorded answers replicated for N members (--simulate),
   --per-member containers on each. The fake answers at once: the time
   against it is the driver's own (plus the fake's own answer time), so
   the projection for a real cluster is that time plus, per request,
   LXD's latency measured on the test bed in the same run minus the
   fake's.

3. With --nova: Nova's own periodic task (the compute manager's
   update_available_resource: resource tracker, database, Placement) in
   Nova's in-process services (as benchmarks.api_boot: SQLite, Placement
   in-process) for the test bed's members and for a fake cluster of each
   --simulate size (without containers), with the driver's part of it:
   what Nova itself adds per node.

Where one service for all members stops being sensible is printed: the
member count at which update_available_resource of all nodes (the
driver's part projected, plus Nova's own per node when measured) takes
Nova's 60 s periodic interval.

PASS: LXD requests per node per task (per service for the listings; the
member status apart) the same at every K and N, and
update_available_resource under 1 s per node, measured on the test bed
and projected at every N.

Run from the repository root: python -m benchmarks.member_scale
[--members 2 4 8] [--simulate 8 50 100] [--per-member 3] [--runs 5]
[--nova]
"""

# First: Nova's eventlet patching, quiet (like tools/demo).
from tools import demo_main

import argparse
import collections
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from unittest import mock

import fixtures
import requests

import nova.conf
from nova import context as nova_context
from nova import objects

from nova_lxd import container
from nova_lxd import extra_specs

from benchmarks import lxd_fake
from benchmarks import periodic_scale
from benchmarks import verdict

CONF = nova.conf.CONF
LIMIT_PER_NODE_S = 1.0
PERIODIC_S = 60         # Nova's periodic update_available_resource
POWER_SYNC_S = 600      # [DEFAULT] sync_power_state_interval
FAKE_ADDRESS = '127.0.21.250'
UAR = 'update_available_resource'
LISTING = ('GET', '/1.0/instances')
DRIVER_TASKS = (UAR, 'power sync (get_info x N)', 'list_instance_uuids',
                'get_available_nodes', 'update_provider_tree')


class BenchBed(demo_main.ProjectBed):
    project = 'nova-lxd-bench-members'


class TimedRequests(periodic_scale.Requests):
    """periodic_scale's request counter, also timing each kind of request.

    A kind: method and path, whatever the member (``target=``).
    """

    def __init__(self, session):
        super().__init__(session)
        self.took = collections.defaultdict(list)
        counted = session.request

        def timed(method, url, *args, **kwargs):
            start = time.perf_counter()
            try:
                return counted(method, url, *args, **kwargs)
            finally:
                self.took[self.made[-1]].append(time.perf_counter() - start)
        session.request = timed

    def latency(self):
        """{kind: median seconds of one request}."""
        return {kind: statistics.median(took)
                for kind, took in self.took.items()}


def recording(recorder):
    """Every HTTPS GET of any requests session, to ``recorder``."""
    request = requests.Session.request

    def recorded(session, method, url, *args, **kwargs):
        response = request(session, method, url, *args, **kwargs)
        recorder.record(method, response.url, response)   # with params
        return response
    return mock.patch.object(requests.Session, 'request', recorded)


def load():
    return '%.1f' % os.getloadavg()[0]


def make_certificate(folder, name):
    """A self-signed certificate and key for a fake (the driver pins it)."""
    cert, key = (os.path.join(folder, name + '.crt'),
                 os.path.join(folder, name + '.key'))
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec',
                    '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
                    '-subj', '/CN=nova-lxd-bench-fake', '-days', '1',
                    '-keyout', key, '-out', cert],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


class FakeCluster:
    """benchmarks.lxd_fake in a process of its own, for N members."""

    def __init__(self, spec, count, folder, bed):
        self.spec_file = os.path.join(folder, 'spec-%d.json' % count)
        with open(self.spec_file, 'w') as f:
            json.dump(spec, f)
        cert, key = make_certificate(folder, 'fake-%d' % count)
        self.stderr = open(os.path.join(folder, 'fake-%d.err' % count),
                           'w+')
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'benchmarks.lxd_fake', self.spec_file,
             str(count), cert, key, FAKE_ADDRESS],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True)
        line = self.process.stdout.readline()
        if not line.startswith('listening on '):
            self.close()
            raise RuntimeError('the fake did not start: %s' % self.errors())
        # What driver_for reads of a test bed, pointed at the fake.
        self.bed = types.SimpleNamespace(
            endpoint='https://%s:%s' % (FAKE_ADDRESS, line.split()[-1]),
            client_cert=bed.client_cert, client_key=bed.client_key,
            server_cert=cert, pool=bed.pool, project=bed.project)

    def errors(self):
        self.stderr.seek(0)
        return self.stderr.read()

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class NovaBed(demo_main.ProjectBed):
    project = 'nova-lxd-bench-members-nova'


class NovaPeriodic(demo_main.NovaLXD):
    """Nova's own periodic update_available_resource, all nodes of a service.

    Nova's in-process services (as benchmarks.api_boot: SQLite, Placement
    in-process): compute-1 for every test-bed member, then one more
    compute per fake cluster of ``fakes``. Each timed as the compute
    manager's periodic task runs it (the resource tracker's database and
    Placement work included), with the driver's part of it.
    """

    project_bed = NovaBed
    runs = 3
    fakes = {}          # members -> FakeCluster (already listening)
    results = {}        # label -> (nodes, seconds, of which the driver's)

    def _time(self, compute):
        ctx = nova_context.get_admin_context()
        driver = compute.manager.driver
        spent = [0.0]
        for name in ('get_available_resource', 'update_provider_tree'):
            call = getattr(driver, name)

            def timed(*args, _call=call, **kwargs):
                start = time.perf_counter()
                try:
                    return _call(*args, **kwargs)
                finally:
                    spent[0] += time.perf_counter() - start
            setattr(driver, name, timed)
        took, driver_took = [], []
        for _ in range(self.runs):
            driver._online = (0, {})    # a minute since the last run
            spent[0] = 0.0
            start = time.perf_counter()
            compute.manager.update_available_resource(ctx)
            took.append(time.perf_counter() - start)
            driver_took.append(spent[0])
        return (len(driver.get_available_nodes()), statistics.median(took),
                statistics.median(driver_took))

    def test_periodic(self):
        NovaPeriodic.results = {'test bed': self._time(self.compute)}
        for count, fake in sorted(self.fakes.items()):
            # A host of its own (node identity file), the fake's cluster.
            self.flags(state_path=self.useFixture(
                fixtures.TempDir()).path)
            self.flags(endpoint=fake.bed.endpoint,
                       server_cert=fake.bed.server_cert,
                       project=fake.bed.project, members=['*'],
                       group='lxd')
            start = time.monotonic()
            compute = self.start_service('compute', host='fake-%d' % count)
            print('  Nova: compute for %d simulated members started in '
                  '%.0f s (load %s)' % (count, time.monotonic() - start,
                                        load()), flush=True)
            NovaPeriodic.results[count] = self._time(compute)
            compute.stop()


def timed_tasks(driver, timer, instances, runs):
    """periodic_scale.measure of this driver: {task: (seconds, made)}."""
    nodes = driver.get_available_nodes()
    return nodes, periodic_scale.measure(driver, timer, instances, nodes,
                                         runs)


def latency_at_members(latency_at, count):
    """{kind: LXD's latency of one request} for a cluster of ``count``.

    ``latency_at``: {K: {kind: median seconds}} measured with K members.
    The instance listing grows with the members holding instances (LXD
    asks each of them): fitted on a line over K and taken at ``count``;
    the other requests ask one member: their median over every K.
    """
    kinds = {kind for found in latency_at.values() for kind in found}
    found = {}
    for kind in kinds:
        seen = {k: at[kind] for k, at in latency_at.items() if kind in at}
        if kind == LISTING and len(seen) > 1:
            slope, intercept = statistics.linear_regression(
                list(seen), list(seen.values()))
            found[kind] = max(intercept + slope * count, max(seen.values()))
        else:
            found[kind] = statistics.median(seen.values())
    return found


def projected(took, made, real, fake):
    """``took`` against the fake, with LXD's latency instead of the fake's."""
    return took + sum(real.get(kind, fake[kind]) - fake[kind]
                      for kind in made)


def cells(results, nodes_of, task, projection=None):
    """Table cells of a task: total s, per node s, requests/node+status."""
    found = []
    for count in sorted(results):
        took, made = results[count][task]
        per, status = periodic_scale.split(made, task, nodes_of[count])
        if projection is not None:
            took = projection[count][task]
        per_node = took / len(nodes_of[count])
        found.append('%7.3f %6.4f %3g+%d' % (took, per_node, per, status))
    return found


def table(title, results, nodes_of, label, projection=None):
    print('\n' + title)
    print('  %-27s %s' % (label, ''.join('%23d' % c for c in sorted(
        results))))
    print('  %-27s %s' % ('(total s, per node s, req/node+status)', ''))
    for task in DRIVER_TASKS:
        print('  %-27s %s' % (task, ''.join(
            '%23s' % c for c in cells(results, nodes_of, task,
                                      projection))))


def report(real, real_nodes, rss, latency_at, simulated, sim_nodes,
           sim_projection, fake_latency, unrecorded, nova, args):
    """Print the tables and the verdict; whether the goals are met."""
    table('Real members (test bed; median of %d runs, load %s):'
          % (args.runs, real['load']), real['results'], real_nodes,
          'managed members')
    print('  member daemons\' RSS MB: %s (total %.0f)' % (
        ', '.join('%s %.0f' % (m, r) for m, r in rss.items()),
        sum(rss.values())))
    print('  LXD latency of one request (test bed, median, ms):')
    kinds = sorted({kind for at in latency_at.values() for kind in at})
    for kind in kinds:
        print('  %-50s %s' % (' '.join(kind), ''.join(
            '%10.1f' % (latency_at[k].get(kind, 0) * 1000)
            for k in sorted(latency_at))))
    if simulated:
        print('  %-50s %s' % ('projection\'s: at members', ''.join(
            '%10d' % n for n in sorted(sim_nodes))))
        for kind in kinds:
            print('  %-50s %s' % (' '.join(kind), ''.join(
                '%10.1f' % (latency_at_members(latency_at, n)[kind] * 1000)
                for n in sorted(sim_nodes))))
    if simulated:
        table('Simulated members (fake LXD, recorded answers; median of %d '
              'runs, load %s):' % (args.runs, simulated['load']),
              simulated['results'], sim_nodes, 'members')
        table('Projected with the test bed\'s LXD latency per request:',
              simulated['results'], sim_nodes, 'members', sim_projection)
        print('  fake\'s own answer per request (median): %s' % ', '.join(
            '%s %s %.1f ms' % (method, path, took * 1000)
            for (method, path), took in sorted(fake_latency.items())))
    for task in (UAR, 'power sync (get_info x N)'):
        largest = max(real['results'])
        made = collections.Counter(real['results'][largest][task][1])
        print('  requests of one %s, %d members: %s' % (
            task, largest, ', '.join('%d %s %s' % (count, method, path)
                                     for (method, path), count in
                                     sorted(made.items()))))
    if unrecorded:
        print('  the fake was asked what was not recorded: %s'
              % '; '.join(unrecorded))

    runs = [(real['results'], real_nodes, None)]
    if simulated:
        runs.append((simulated['results'], sim_nodes, sim_projection))
    counts, slow = {}, []
    for results, nodes_of, projection in runs:
        for count, tasks in results.items():
            for task in DRIVER_TASKS:
                counts.setdefault(task, set()).add(periodic_scale.split(
                    tasks[task][1], task, nodes_of[count]))
            took = (projection or results)[count][UAR]
            if projection is None:
                took = took[0]
            if took / len(nodes_of[count]) >= LIMIT_PER_NODE_S:
                slow.append(count)
    growing = [t for t, seen in counts.items() if len(seen) > 1]

    # Where one service for all members stops being sensible.
    if simulated:
        largest = max(sim_projection)
        per_node = sim_projection[largest][UAR] / len(sim_nodes[largest])
        basis = 'projected at %d members' % largest
        sync = sim_projection[largest]['power sync (get_info x N)']
    else:
        largest = max(real['results'])
        per_node = real['results'][largest][UAR][0] / len(
            real_nodes[largest])
        basis = 'measured at %d members' % largest
        sync = real['results'][largest]['power sync (get_info x N)'][0]
    own = None
    if nova:
        print('\nNova\'s periodic update_available_resource (compute '
              'manager, resource tracker, SQLite, Placement in-process; '
              'median of %d runs, load %s):' % (args.runs, nova['load']))
        print('  %-22s %8s %10s %12s %14s %16s' % (
            'cluster', 'nodes', 'total s', 'per node s', 'driver\'s s',
            'Nova\'s per node'))
        for label, (nodes, took, driver_took) in nova['results'].items():
            print('  %-22s %8d %10.3f %12.4f %14.3f %16.4f' % (
                label if label == 'test bed' else '%d simulated' % label,
                nodes, took, took / nodes, driver_took,
                (took - driver_took) / nodes))
        nodes, took, driver_took = (nova['results'].get(largest) or
                                    nova['results']['test bed'])
        own = (took - driver_took) / nodes, nodes
    if own is None:
        print('  update_available_resource: the driver\'s part %.3f s per '
              'node (%s): for all nodes it reaches Nova\'s %d s periodic '
              'interval at about %d members; Nova\'s own work per node '
              '(database, Placement) comes on top (--nova measures it).'
              % (per_node, basis, PERIODIC_S, PERIODIC_S / per_node))
    else:
        print('  update_available_resource: the driver\'s part %.3f s per '
              'node (%s) + Nova\'s own %.3f s per node (measured in-process '
              'with %d nodes) = %.3f s per node: all nodes take Nova\'s %d '
              's periodic interval at about %d members, half of it at about '
              '%d.' % (per_node, basis, own[0], own[1], per_node + own[0],
                       PERIODIC_S, PERIODIC_S / (per_node + own[0]),
                       PERIODIC_S / 2 / (per_node + own[0])))
    print('  power sync: %.3f s (%s; one listing per service, which LXD '
          'answers by asking every member holding instances), against its '
          '%d s interval.' % (sync, basis, POWER_SYNC_S))
    passed = not (growing or slow or unrecorded)
    print('  requests per node growing with members: %s; '
          'update_available_resource over %.0f s per node at: %s; %s' % (
              ', '.join(growing) or 'none', LIMIT_PER_NODE_S,
              ', '.join(map(str, slow)) or 'none',
              'PASS' if passed else 'FAIL'))
    return passed


def nova_periodic(args, recorder, counts, folder, bed):
    """NovaPeriodic on the test bed and a fake of each --simulate size."""
    NovaPeriodic.runs = args.runs
    NovaPeriodic.fakes = {}
    nova_bed = NovaBed()
    nova_bed.ensure_project()
    CONF.reset()    # driver_for's overrides and parsed arguments: Nova's now
    try:
        # No containers: Nova refuses to start a new service whose
        # driver lists instances (the resource tracker reads Nova's).
        for n in counts:
            NovaPeriodic.fakes[n] = FakeCluster(recorder.spec([]), n, folder,
                                                bed)
        error = demo_main.run_case(NovaPeriodic('test_periodic'))
    finally:
        for fake in NovaPeriodic.fakes.values():
            fake.close()
        nova_bed.delete_project()
    if error:
        raise RuntimeError('Nova\'s periodic task did not run:\n%s' % error)
    return {'results': dict(NovaPeriodic.results), 'load': load()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--members', type=int, nargs='+', default=[2, 4, 8],
                        help='real members managed, in turn (those the test '
                             'bed has; all of them as "*")')
    parser.add_argument('--simulate', type=int, nargs='*',
                        default=[8, 50, 100],
                        help='members of the fake cluster, in turn')
    parser.add_argument('--per-member', type=int, default=3,
                        help='containers on each member')
    parser.add_argument('--runs', type=int, default=5,
                        help='timed runs of each task')
    parser.add_argument('--nova', action='store_true',
                        help='also time Nova\'s own periodic task (its '
                             'in-process services) on the test bed and '
                             'each simulated cluster')
    parser.add_argument('--save-recording', metavar='FILE',
                        help='write the recorded answers (JSON) there')
    args = parser.parse_args()
    logging.getLogger('urllib3.connectionpool').setLevel(logging.ERROR)
    bed = BenchBed()
    everyone = bed.members
    counts = sorted({k for k in args.members if k <= len(everyone)} or
                    {len(everyone)})
    bed.ensure_project()
    folder = tempfile.TemporaryDirectory(prefix='nova-lxd-bench-members-')
    recorder = lxd_fake.Recorder()
    ctx = nova_context.get_admin_context()
    flavor = objects.Flavor(
        id=1, name='tiny', flavorid='1', vcpus=1, memory_mb=128, root_gb=1,
        ephemeral_gb=0, swap=0, extra_specs={})
    specs = extra_specs.lxd_specs({})
    try:
        # The test bed's members, --per-member containers on each.
        raw = bed.client()
        on = {}
        for i, member in enumerate(everyone):
            on[member] = periodic_scale.fake_instances(
                ctx, member, flavor, args.per_member,
                first_id=i * args.per_member + 1)
        periodic_scale.driver_for(bed, folder.name)     # CONF, as nova
        gates = container.gates(CONF.lxd)      # the driver's own id map

        def fill(members):
            start = time.monotonic()
            for member in members:
                bodies = []
                for instance in on[member]:
                    body = container.instance_body(
                        instance, flavor, specs, None, bed.pool, gates=gates)
                    body['source'] = {'type': 'none'}   # as periodic_scale
                    bodies.append(body)
                errors = periodic_scale.fill(raw, member, bodies)
                if errors:
                    raise RuntimeError('LXD refused a container: %s'
                                       % errors[0])
            print('  %d containers on %s (made in %.0f s, load %s)' % (
                sum(len(on[m]) for m in members), ' '.join(members),
                time.monotonic() - start, load()), flush=True)

        # The first K members, with containers on those K only (LXD asks
        # each member holding some for its listing).
        real = {'results': {}}
        real_nodes, latency_at = {}, {}
        filled = 0
        with recording(recorder):
            for k in counts:
                fill(everyone[filled:k])
                filled = k
                managed = everyone[:k] if k < len(everyone) else ['*']
                driver = periodic_scale.driver_for(bed, folder.name, managed)
                timer = TimedRequests(driver.lxd.session)
                instances = [i for m in everyone[:k] for i in on[m]]
                real_nodes[k], real['results'][k] = timed_tasks(
                    driver, timer, instances, args.runs)
                latency_at[k] = timer.latency()
                print('  %d members: update_available_resource %.3f s '
                      '(load %s)' % (k, real['results'][k][UAR][0], load()),
                      flush=True)
        real['load'] = load()
        rss = {m: periodic_scale.rss_mb(bed.daemon_pid(m)) for m in everyone}
        if args.save_recording:
            with open(args.save_recording, 'w') as f:
                json.dump(recorder.spec([]), f, indent=1, sort_keys=True)

        # The fake cluster of N members.
        simulated, sim_nodes, projection = {'results': {}}, {}, {}
        fake_latency, unrecorded = collections.defaultdict(list), []
        for n in sorted(args.simulate):
            instances = []
            for i, member in enumerate(lxd_fake.member_names(n)):
                instances += periodic_scale.fake_instances(
                    ctx, member, flavor, args.per_member,
                    first_id=i * args.per_member + 1)
            fake = FakeCluster(recorder.spec(
                (i.name, i.uuid, i.node) for i in instances), n,
                folder.name, bed)
            try:
                driver = periodic_scale.driver_for(fake.bed, folder.name)
                timer = TimedRequests(driver.lxd.session)
                sim_nodes[n], simulated['results'][n] = timed_tasks(
                    driver, timer, instances, args.runs)
                assert len(driver.list_instance_uuids()) == len(instances)
            finally:
                fake.close()
                unrecorded += [line for line in fake.errors().splitlines()
                               if line.startswith('unrecorded')]
            here = timer.latency()
            for kind, took in timer.took.items():
                fake_latency[kind].extend(took)
            real_latency = latency_at_members(latency_at, n)
            projection[n] = {
                task: projected(took, made, real_latency, here)
                for task, (took, made) in simulated['results'][n].items()}
            print('  %d simulated members: update_available_resource '
                  '%.3f s, projected %.3f s (load %s)' % (
                      n, simulated['results'][n][UAR][0],
                      projection[n][UAR], load()), flush=True)
        simulated['load'] = load()
        nova = None
        if args.nova:
            nova = nova_periodic(args, recorder, sorted(args.simulate),
                                 folder.name, bed)
        passed = report(
            real, real_nodes, rss, latency_at,
            simulated if args.simulate else None, sim_nodes, projection,
            {k: statistics.median(v) for k, v in fake_latency.items()},
            unrecorded, nova, args)
    finally:
        periodic_scale.empty(bed.client())
        bed.delete_project()
        folder.cleanup()
    return verdict.exit_status(passed)


if __name__ == '__main__':
    sys.exit(main())
