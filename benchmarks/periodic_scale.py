"""Hundreds of containers on a member: the driver's periodic costs at N.

Member lxd1 is filled with N containers (default N = 10, 100, 500) made
directly in LXD, in an LXD project of the benchmark's own, with the body
the driver itself writes for a 1 vCPU / 128 MB server (Nova's identity
keys, limits, root disk), so that the driver counts them as its
instances. They are empty (``source: none``: no image unpacked) and
stopped; listing and status, which is what is measured, never look
inside. At each N the driver (as nova-compute starts it: both test-bed
members, HTTPS) is timed over what Nova's periodic tasks call:

- update_available_resource: get_available_nodes, then for each node
  get_available_resource and update_provider_tree (the member-status
  cache has expired, as between two 60 s runs);
- power sync: get_num_instances, then get_info of every instance (what
  ComputeManager._sync_power_states calls);
- list_instance_uuids, get_available_nodes, update_provider_tree alone.

Every HTTP request of the driver's LXD session is counted. Raw LXD, in
the same run with the same session: ``GET /1.0/instances?recursion=1``
(what the listings rest on) and the member's resources + pool resources
(what a node's resource read rests on); each task's ratio is against
the raw requests it needs. RSS: this process (the driver as nova-compute
holds it, without Nova's services) after the tasks at N, against N = 0.
PASS at the largest N: every task < 1 s, LXD requests per task per node
<= 2 (and the same at every N; the cluster's member status, one request
per service, is counted apart) and RSS growth < 30 MB.

Run from the repository root: python -m benchmarks.periodic_scale
[-N 10 100 500] [--runs 5]
"""

# First: Nova's eventlet patching, quiet (like tools/demo).
from tools import demo_main

import argparse
import collections
import dataclasses
import gc
import logging
import statistics
import sys
import tempfile
import time

import eventlet
import psutil

from nova.compute import power_state
from nova.compute import provider_tree
from nova.compute import vm_states
import nova.conf
from nova import context as nova_context
from nova import objects
from nova.tests.unit import fake_instance
from oslo_utils import uuidutils

from nova_lxd import container
from nova_lxd import driver as lxd_driver
from nova_lxd import extra_specs

from benchmarks import verdict

CONF = nova.conf.CONF
LIMIT_S = 1.0
LIMIT_REQUESTS_PER_NODE = 2
LIMIT_RSS_MB = 30
CREATORS = 8        # containers created at once
MEMBERS_PATH = '/1.0/cluster/members'


class BenchBed(demo_main.ProjectBed):
    project = 'nova-lxd-bench-scale'


def driver_for(bed, state_path, members=('*',)):
    """An LXDDriver as nova-compute starts it ([lxd] members: all)."""
    objects.register_all()
    CONF([], project='nova', default_config_files=[])
    CONF.set_override('state_path', state_path)
    for name, value in (('endpoint', bed.endpoint),
                        ('members', list(members)),
                        ('client_cert', bed.client_cert),
                        ('client_key', bed.client_key),
                        ('server_cert', bed.server_cert),
                        ('storage_pool', bed.pool),
                        ('allow_dir_pool', True),
                        ('project', bed.project)):
        CONF.set_override(name, value, group='lxd')
    driver = lxd_driver.LXDDriver(None)
    driver.init_host(host='bench')
    return driver


class Requests:
    """Every request of a requests.Session, counted (method, path)."""

    def __init__(self, session):
        self.made = []
        request = session.request

        def counted(method, url, *args, **kwargs):
            path = '/' + url.split('://', 1)[-1].split('/', 1)[-1]
            self.made.append((method.upper(), path.split('?')[0]))
            return request(method, url, *args, **kwargs)
        session.request = counted

    def during(self, call):
        """(seconds, requests made) of call()."""
        del self.made[:]
        start = time.perf_counter()
        call()
        return time.perf_counter() - start, list(self.made)


def fake_instances(ctx, member, flavor, count, first_id=1):
    return [fake_instance.fake_instance_obj(
        ctx, id=first_id + i, uuid=uuidutils.generate_uuid(), node=member,
        host='bench', flavor=flavor, vm_state=vm_states.STOPPED,
        project_id='bench-project', system_metadata={},
        expected_attrs=['system_metadata']) for i in range(count)]


def fill(lxd, member, bodies):
    """Create the containers of ``bodies`` on member, CREATORS at once.

    The errors LXD gives (after the first, no more is tried).
    """
    pool, errors = eventlet.GreenPool(CREATORS), []

    def create(body):
        if errors:
            return
        try:
            lxd.instances.create(body, target=member, wait=True)
        except Exception as e:
            errors.append('%s: %s' % (body['name'], e))
    for body in bodies:
        pool.spawn(create, body)
    pool.waitall()
    return errors


def empty(lxd):
    pool = eventlet.GreenPool(CREATORS)
    for found in lxd.instances.all():
        pool.spawn(found.delete, wait=True)
    pool.waitall()


def rss_mb(pid=None):
    gc.collect()
    return psutil.Process(pid).memory_info().rss / 2 ** 20


def measure(driver, requests, instances, nodes, runs):
    """{task: (median seconds, requests of one run)} at this N."""
    tree = provider_tree.ProviderTree()
    for name, node_uuid in driver._nodes.items():
        tree.new_root(name, node_uuid)

    def update_available_resource():
        driver._online = (0, {})    # a minute since the last run
        for node in driver.get_available_nodes(refresh=True):
            driver.get_available_resource(node)
            driver.update_provider_tree(tree, node)

    def power_sync():
        driver._statuses = (0, {})  # ten minutes since the last sync
        driver.get_num_instances()
        for instance in instances:
            driver.get_info(instance)

    def provider_trees():
        for node in nodes:
            driver.update_provider_tree(tree, node)

    pylxd = driver.lxd.pylxd
    pool = pylxd.api.storage_pools[driver.lxd.conf.storage_pool]

    def raw_listing():
        pylxd.api.instances.get(params={'recursion': 1}).json()

    def raw_resources():
        for node in nodes:
            pylxd.api.resources.get(params={'target': node}).json()
            pool.resources.get(params={'target': node}).json()

    tasks = {
        'update_available_resource': update_available_resource,
        'power sync (get_info x N)': power_sync,
        'list_instance_uuids': driver.list_instance_uuids,
        'get_available_nodes': driver.get_available_nodes,
        'update_provider_tree': provider_trees,
        'raw LXD: instance listing': raw_listing,
        'raw LXD: resources + pool': raw_resources,
    }
    update_available_resource()     # as Nova: a read before the tree
    found = {}
    for task, call in tasks.items():
        timed = [requests.during(call) for _ in range(runs)]
        found[task] = (statistics.median(t for t, _ in timed), timed[-1][1])
    return found


def split(made, task, nodes):
    """(requests of one run per node or per service, member-status ones).

    Per node for the tasks Nova calls node by node, per service for the
    others; the member status (once per service) apart.
    """
    status = sum(1 for _, path in made if path == MEMBERS_PATH)
    return (len(made) - status) / (len(nodes) if task in PER_NODE else 1), \
        status


# Tasks that Nova runs once per node (the others: once per service).
PER_NODE = ('update_available_resource', 'update_provider_tree',
            'raw LXD: resources + pool')
RATIOS = {
    'update_available_resource': 'raw LXD: resources + pool',
    'power sync (get_info x N)': 'raw LXD: instance listing',
    'list_instance_uuids': 'raw LXD: instance listing',
}


def report(results, rss, daemon_rss, refused, member, nodes, args):
    """Print the table; whether the goals are met."""
    largest = max(results)
    print('\nThe driver\'s periodic calls with N stopped containers on %s '
          '(service of %d nodes: %s; median of %d runs; seconds, LXD '
          'requests per node (per service for the listings) + member-status '
          'requests of the run):'
          % (member, len(nodes), ' '.join(nodes), args.runs))
    print('  %-28s %s' % ('N', ''.join('%22d' % n for n in sorted(results))))
    counts = {}
    for task in results[largest]:
        cells = []
        for n in sorted(results):
            took, made = results[n][task]
            requests_of, status = split(made, task, nodes)
            counts.setdefault(task, set()).add((requests_of, status))
            cells.append('%9.3f s %3g+%d' % (took, requests_of, status))
        print('  %-28s %s' % (task, ''.join('%22s' % c for c in cells)))
    for task, reference in RATIOS.items():
        print('  %-28s %s' % (task + ' / raw', ''.join(
            '%22.2f' % (results[n][task][0] / results[n][reference][0])
            for n in sorted(results))))
    print('  %-28s %s' % ('RSS growth (this process) MB', ''.join(
        '%22.1f' % (rss[n] - rss[0]) for n in sorted(results))))
    print('  %-28s %s' % ('LXD daemon of %s RSS MB' % member, ''.join(
        '%22.1f' % daemon_rss[n] for n in sorted(results))))
    for task in ('update_available_resource', 'power sync (get_info x N)'):
        made = collections.Counter(results[largest][task][1])
        print('  requests of one %s at N=%d: %s' % (task, largest, ', '.join(
            '%d %s %s' % (count, method, path)
            for (method, path), count in sorted(made.items()))))
    slow = [t for t, (took, _) in results[largest].items()
            if took >= LIMIT_S and not t.startswith('raw')]
    many = [t for t, (_, made) in results[largest].items()
            if split(made, t, nodes)[0] > LIMIT_REQUESTS_PER_NODE]
    growing = [t for t, seen in counts.items() if len(seen) > 1]
    grown = rss[largest] - rss[0]
    passed = (not (slow or many or growing or refused) and
              grown < LIMIT_RSS_MB)
    if refused:
        print('  N=%d not reached: LXD refused %s' % (max(args.N), refused))
    print('  at N=%d: over %.0f s: %s; over %d requests per node: %s; '
          'requests growing with N: %s; RSS +%.1f MB (limit %d): %s' % (
              largest, LIMIT_S, ', '.join(slow) or 'none',
              LIMIT_REQUESTS_PER_NODE, ', '.join(many) or 'none',
              ', '.join(growing) or 'none', grown, LIMIT_RSS_MB,
              'PASS' if passed else 'FAIL'))
    return passed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-N', type=int, nargs='+', default=[10, 100, 500],
                        help='containers on the member, in turn')
    parser.add_argument('--runs', type=int, default=5,
                        help='timed runs of each task at each N')
    parser.add_argument('--shared-idmap', action='store_true',
                        help='containers as with [lxd] isolated_idmap = '
                             'False (one id range for all)')
    args = parser.parse_args()
    # The benchmark's own CREATORS requests at once on one socket.
    logging.getLogger('urllib3.connectionpool').setLevel(logging.ERROR)
    bed = BenchBed()
    bed.ensure_project()
    member = bed.members[0]
    state_path = tempfile.TemporaryDirectory(prefix='nova-lxd-bench-')
    results, rss, daemon_rss, refused = {}, {}, {}, None
    try:
        ctx = nova_context.get_admin_context()
        driver = driver_for(bed, state_path.name)
        nodes = driver.get_available_nodes()
        raw = bed.client()      # the benchmark's own view, not counted
        requests = Requests(driver.lxd.session)
        flavor = objects.Flavor(
            id=1, name='tiny', flavorid='1', vcpus=1, memory_mb=128,
            root_gb=1, ephemeral_gb=0, swap=0, extra_specs={})
        specs = extra_specs.lxd_specs({})
        # The driver's own: [lxd] isolated_idmap (default True) gives each
        # container 65536 of root's subordinate ids; --shared-idmap: one
        # range for all, as with isolated_idmap = False.
        gates = container.gates(CONF.lxd)
        if args.shared_idmap:
            gates = dataclasses.replace(gates, isolated_idmap=False)
        instances = fake_instances(ctx, member, flavor, max(args.N))

        def body(instance):
            found = container.instance_body(
                instance, flavor, specs, None, bed.pool, gates=gates)
            found['source'] = {'type': 'none'}
            return found

        measure(driver, requests, [], nodes, 1)
        rss[0] = rss_mb()
        made = 0
        for n in sorted(args.N):
            start = time.monotonic()
            errors = fill(raw, member, [body(i) for i in instances[made:n]])
            # (pylxd's instances.all() keeps "?project=" in the names)
            present = {url.split('?')[0].rsplit('/', 1)[-1] for url in
                       raw.api.instances.get().json()['metadata']}
            existing = [i for i in instances if i.name in present]
            n = len(existing)
            print('  %d containers on %s (%d made in %.0f s)' % (
                n, member, n - made, time.monotonic() - start), flush=True)
            made = n
            if errors:
                refused = errors[0]
                print('  LXD refused more: %s' % refused, flush=True)
            uuids = driver.list_instance_uuids()
            assert len(uuids) == n, 'the driver counts %d, not %d' % (
                len(uuids), n)
            state = driver.get_info(existing[-1]).state
            assert state == power_state.SHUTDOWN, state
            results[n] = measure(driver, requests, existing, nodes,
                                 args.runs)
            rss[n] = rss_mb()
            daemon_rss[n] = rss_mb(bed.daemon_pid(member))
            if errors:
                break
        passed = report(results, rss, daemon_rss, refused, member,
                        nodes, args)
    finally:
        empty(bed.client())
        bed.delete_project()
        state_path.cleanup()

    return verdict.exit_status(passed)


if __name__ == '__main__':
    sys.exit(main())
