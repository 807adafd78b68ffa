"""GPUs of many members in real Placement: allocation candidates time.

Placement in-process (Nova's functional fixture, SQLite), as the
functional tests run it. 50 members (``--members``) of 8 GPUs each, in
three kinds: whole H100 cards (PGPU, 8 per member), time-sliced L40S
cards (``shared:4``: 32 CUSTOM_SHARED_GPU), and H200 cards in MIG mode
with 7 1g.18gb slices each (56 CUSTOM_MIG_1G_18GB); every member also
has 224 vCPUs, 2 TiB of memory and 500 GiB of disk. Each member's
providers are what LXDDriver.update_provider_tree makes of its LXD
resources (LXD a fake answering with the shapes of GET /1.0/resources),
written to Placement by Nova's own SchedulerReportClient, as the
resource tracker does.

Timed: GET /allocation_candidates as Nova's scheduler asks it (microversion
1.39, limit 1000 = [scheduler] max_placement_results) for a 1 vCPU /
1 GB / 10 GB server with PGPU=1 (+ the card model's trait), PGPU=8, one
MIG slice (+ the compute-capability trait) and one shared slot; and, as
the reference, the same server without a GPU. Prints the median time and
the candidate count of each; ratio: against the reference query. PASS:
every GPU query's median < 100 ms and its candidates at most one per
member of its kind (no combinatorial growth).

Run from the repository root: python -m benchmarks.placement_gpus
[--members 50] [--runs 20]
"""

# First: Nova's eventlet patching, quiet (like tools/demo).
from tools import demo_main

import argparse
import statistics
import sys
import time

from oslo_utils import uuidutils

from nova import context as nova_context
from nova.scheduler.client import report
from nova import test
from nova.tests.functional import fixtures as func_fixtures

from nova_lxd import driver
from nova_lxd.gpu import devices
from nova_lxd.gpu import discovery
from nova_lxd.gpu import nvml
from nova_lxd.gpu import options

from benchmarks import gpu_provider_tree
from benchmarks import verdict

LIMIT_MS = 100.0
CARDS, SLICES = 8, 7
# kind: (product id, product, model name, memory MiB, capability, mode)
KINDS = {
    'whole': ('2330', 'GH100 [H100 SXM5 80GB]', 'NVIDIA H100 80GB HBM3',
              81559, '9.0', 'whole'),
    'shared': ('26b9', 'AD102GL [L40S]', 'NVIDIA L40S', 46068, '8.9',
               'shared:4'),
    'mig': ('2335', 'GH100 [H200 SXM 141GB]', 'NVIDIA H200', 143771, '9.0',
            'mig'),
}
SERVER = 'VCPU:1,MEMORY_MB:1024,DISK_GB:10'
QUERIES = (
    # (label, kind or None, extra resources, required traits)
    ('no GPU (reference)', None, '', ''),
    ('PGPU=1 + model trait', 'whole', 'PGPU:1', 'CUSTOM_GPU_10DE_2330'),
    ('PGPU=8', 'whole', 'PGPU:8', ''),
    ('MIG 1g.18gb slice + CC trait', 'mig', 'CUSTOM_MIG_1G_18GB:1',
     'CUSTOM_GPU_CUDA_COMPUTE_CAPABILITY_V9_0'),
    ('shared slot', 'shared', 'CUSTOM_SHARED_GPU:1', ''),
)


def member_resources(kind):
    product_id, product, name, memory, capability, _ = KINDS[kind]
    res = gpu_provider_tree.resources()
    for card in res['gpu']['cards']:
        card.update(product_id=product_id, product=product)
        card['nvidia']['model'] = name
    facts = {}
    for i, card in enumerate(res['gpu']['cards']):
        pci = card['pci_address']
        migs = tuple(
            discovery.MigDevice(
                uuid='MIG-%08x-%04x-0000-0000-000000000000' % (i, j),
                profile='1g.18gb', parent_pci=pci, memory_mib=16384)
            for j in range(SLICES)) if kind == 'mig' else ()
        facts[pci] = discovery.NvmlFacts(
            pci_address=pci, uuid=card['nvidia']['uuid'], name=name,
            memory_mib=memory, compute_capability=capability,
            mig_enabled=kind == 'mig', mig_devices=migs)
    return res, facts


class Candidates(test.TestCase):

    members = 50
    runs = 20
    results = None

    def kinds(self):
        """The kind of each member: whole, shared, mig in turn."""
        order = list(KINDS)
        return {'gpu-%03d' % i: order[i % len(order)]
                for i in range(self.members)}

    def test_candidates(self):
        placement = self.useFixture(func_fixtures.PlacementFixture())
        client = report.SchedulerReportClient()
        ctx = nova_context.get_admin_context()
        config = options.parse(modes=['10de:%s=%s' % (k[0], k[5])
                                      for k in KINDS.values()])
        start = time.monotonic()
        kinds = self.kinds()
        for member, kind in kinds.items():
            res, facts = member_resources(kind)
            nvml.collect = lambda facts=facts: facts
            lxd = gpu_provider_tree.CountingLXD(res, member)
            member_driver = driver.LXDDriver(None)
            member_driver.lxd = lxd
            member_driver._nodes = {member: uuidutils.generate_uuid()}
            member_driver.gpus = devices.GPUs(lxd, config, member)
            tree = client.get_provider_tree_and_ensure_root(
                ctx, member_driver._nodes[member], name=member)
            member_driver.get_available_resource(member)
            member_driver.update_provider_tree(tree, member)
            client.update_from_provider_tree(ctx, tree)
        written = time.monotonic() - start
        providers = placement.api.get(
            '/resource_providers', version='1.14').body['resource_providers']
        timed = {}
        for label, kind, gpu, traits in QUERIES:
            resources = SERVER + (',' + gpu if gpu else '')
            url = '/allocation_candidates?resources=%s&limit=1000' % resources
            if traits:
                url += '&required=' + traits
            took, found = [], None
            for _ in range(self.runs):
                begin = time.perf_counter()
                response = placement.api.get(url, version='1.39')
                took.append((time.perf_counter() - begin) * 1000)
                found = response.body['allocation_requests']
            expected = sum(1 for k in kinds.values()
                           if kind is None or k == kind)
            timed[label] = (took, len(found), expected)
        Candidates.results = len(providers), written, timed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--members', type=int, default=50)
    parser.add_argument('--runs', type=int, default=20)
    args = parser.parse_args()
    Candidates.members, Candidates.runs = args.members, args.runs
    error = demo_main.run_case(Candidates('test_candidates'))
    if error:
        sys.exit('placement_gpus FAILED to run:\n%s' % error)
    providers, written, timed = Candidates.results
    print('GET /allocation_candidates (1.39, limit 1000), %d members x %d '
          'GPUs (whole H100, shared:4 L40S, MIG 7x1g.18gb H200 in turn), '
          '%d providers in Placement (written in %.1f s); server %s; '
          '%d runs each:' % (args.members, CARDS, providers, written,
                             SERVER, args.runs))
    reference = statistics.median(timed[QUERIES[0][0]][0])
    passed = True
    for label, kind, _, _ in QUERIES:
        took, count, expected = timed[label]
        median = statistics.median(took)
        ok = count == expected and (kind is None or median < LIMIT_MS)
        passed &= ok
        print('  %-30s median %7.1f ms  p90 %7.1f ms  candidates %4d '
              '(members of its kind %d)  ratio %.2f  %s' % (
                  label, median,
                  statistics.quantiles(took, n=10)[-1] if len(took) > 1
                  else median, count, expected, median / reference,
                  'PASS' if ok else 'FAIL'))
    print('  GPU queries under %.0f ms, one candidate per member of their '
          'kind: %s' % (LIMIT_MS, 'PASS' if passed else 'FAIL'))
    return verdict.exit_status(passed)


if __name__ == '__main__':
    sys.exit(main())
