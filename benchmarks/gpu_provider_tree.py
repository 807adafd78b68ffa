"""Time update_provider_tree of the driver on an unchanged GPU member.

The case: one member with 8 H200 cards (10de:2335, constructed from the
real ids), each split by the operator into 7 MIG 1g.18gb slices. Nova calls
get_available_resource, then update_provider_tree, every periodic run (60 s
by default) for every node; with nothing changed, update_provider_tree must
stay well under 20 ms and ask LXD nothing: it reuses the resources read
that get_available_resource just made. Timed: LXDDriver.update_provider_tree
(node inventory, cards from LXD resources + NVML facts, provider specs,
ProviderTree) on a tree that already holds the result; LXD is a fake that
counts requests.

    python benchmarks/gpu_provider_tree.py [--runs 200]
"""

import argparse
import os
import statistics
import sys
import time

from oslo_utils import uuidutils

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from nova.compute import provider_tree  # noqa: E402

from nova_lxd import driver  # noqa: E402
from nova_lxd.gpu import devices  # noqa: E402
from nova_lxd.gpu import discovery  # noqa: E402
from nova_lxd.gpu import nvml  # noqa: E402
from nova_lxd.gpu import options  # noqa: E402

from benchmarks import verdict  # noqa: E402

LIMIT_MS = 20.0
MEMBER = 'gpu-node-01'
CARDS, SLICES = 8, 7
H200_MIB = 143771


def resources():
    cards = []
    for i in range(CARDS):
        cards.append({
            'driver': 'nvidia', 'driver_version': '550.127.05',
            'drm': {'id': i + 1, 'card_name': 'card%d' % (i + 1),
                    'render_name': 'renderD%d' % (128 + i)},
            'numa_node': i // 4,
            'nvidia': {'architecture': '9.0', 'brand': 'Nvidia',
                       'cuda_version': '12.4', 'model': 'NVIDIA H200',
                       'nvrm_version': '550.127.05',
                       'uuid': 'GPU-%08x-0000-0000-0000-000000000000' % i},
            'pci_address': '0000:%02x:00.0' % (0x18 + 0x10 * i),
            'product': 'GH100 [H200 SXM 141GB]', 'product_id': '2335',
            'vendor': 'NVIDIA Corporation', 'vendor_id': '10de'})
    return {'cpu': {'total': 224, 'architecture': 'x86_64'},
            'memory': {'total': 2 * 2 ** 40},
            'gpu': {'cards': cards, 'total': CARDS}}


def nvml_facts(res):
    facts = {}
    for i, card in enumerate(res['gpu']['cards']):
        pci = card['pci_address']
        facts[pci] = discovery.NvmlFacts(
            pci_address=pci, uuid=card['nvidia']['uuid'], name='NVIDIA H200',
            memory_mib=H200_MIB, compute_capability='9.0', mig_enabled=True,
            mig_devices=tuple(
                discovery.MigDevice(
                    uuid='MIG-%08x-%04x-0000-0000-000000000000' % (i, j),
                    profile='1g.18gb', parent_pci=pci, memory_mib=16384)
                for j in range(SLICES)))
    return facts


class CountingLXD:
    """The LXD calls a resource update makes, counted."""

    server_version = '5.0.2'

    def __init__(self, res, member=MEMBER):
        self.res, self.member, self.requests = res, member, []

    def members(self):
        self.requests.append('members')
        return {self.member: 'Online'}

    def resources(self, member):
        self.requests.append('resources')
        return self.res

    def pool_resources(self, member):
        self.requests.append('pool_resources')
        return {'space': {'total': 500 * 2 ** 30, 'used': 0}}


def gpu_driver(res, facts, config):
    nvml.collect = lambda: facts
    lxd_driver = driver.LXDDriver(None)
    lxd_driver.lxd = CountingLXD(res)
    lxd_driver._nodes = {MEMBER: uuidutils.generate_uuid()}
    lxd_driver.gpus = devices.GPUs(lxd_driver.lxd, config, MEMBER)
    return lxd_driver


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=200)
    args = parser.parse_args(argv)

    res, config = resources(), options.parse(modes=['10de:2335=mig'])
    lxd_driver = gpu_driver(res, nvml_facts(res), config)
    tree = provider_tree.ProviderTree()
    tree.new_root(MEMBER, lxd_driver._nodes[MEMBER])
    # The first report.
    lxd_driver.get_available_resource(MEMBER)
    lxd_driver.update_provider_tree(tree, MEMBER)
    (name,) = tree.get_provider_uuids(MEMBER)[1:]
    inv = tree.data(name).inventory
    assert inv['CUSTOM_MIG_1G_18GB']['total'] == CARDS * SLICES, inv

    lxd = lxd_driver.lxd
    timings, requests = [], 0
    for _ in range(args.runs):
        lxd_driver.get_available_resource(MEMBER)     # Nova's read
        lxd.requests.clear()
        start = time.perf_counter()
        lxd_driver.update_provider_tree(tree, MEMBER)
        timings.append((time.perf_counter() - start) * 1000)
        requests += len(lxd.requests)
    median = statistics.median(timings)
    print('GPU update_provider_tree, %d cards x %d MIG slices, unchanged: '
          'median %.3f ms, p95 %.3f ms over %d runs (limit %.0f ms)'
          % (CARDS, SLICES, median,
             sorted(timings)[int(len(timings) * 0.95) - 1], args.runs,
             LIMIT_MS))
    print('LXD requests made by update_provider_tree: %d in %d runs '
          '(get_available_resource before it: 1 resources + 1 storage pool '
          'read)' % (requests, args.runs))
    ok = median < LIMIT_MS and requests == 0
    print('PASS' if ok else 'FAIL')
    return verdict.exit_status(ok)


if __name__ == '__main__':
    sys.exit(main())
