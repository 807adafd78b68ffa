"""What LXD and NVML said, recorded; and data constructed like it.

The files here are recorded answers: of the LXD test bed (LXD 5.0.2,
Debian 12 VM) and, under gpu/, of real GPU hosts (README there). Cases no
public recording covers (datacenter NVIDIA hosts, MIG facts, AMD, Intel)
are constructed here from the real device ids; each builder says so.
"""

import json
import os
import re

from nova_lxd.gpu import discovery

HERE = os.path.dirname(__file__)
GPU_DIR = os.path.join(HERE, 'gpu')


def load(name):
    """A recorded file of gpu/: JSON as data, anything else as text."""
    with open(os.path.join(GPU_DIR, name)) as f:
        if name.endswith('.json'):
            return json.load(f)
        return f.read()


def _lxd(name):
    with open(os.path.join(HERE, name)) as f:
        return json.load(f)


# GET /1.0/resources?target=lxd2 of the test bed: 2 threads, 24 GiB.
RESOURCES = _lxd('lxd-5.0.2-resources-2cpu-vm.json')
# GET /1.0/storage-pools/testbed/resources?target=lxd2 (dir driver):
# 270553174016 bytes, i.e. 251.97 GiB.
POOL_RESOURCES = _lxd('lxd-5.0.2-storage-pool-dir-resources.json')

VCPUS = 2
MEMORY_MB = 24576
DISK_GB = 251

# -- GPUs ------------------------------------------------------------


# Real: ASPEED BMC + RTX 2080 Ti (0000:03:00.0) + GTX 1080 Ti (0000:82:00.0)
ASPEED_RTX = 'lxd-resources-gpu-aspeed-rtx2080ti-gtx1080ti.json'
# Real: virtio + GT 730 (0000:07:00.0), the third card cut off.
VIRTIO_GT730 = 'lxd-resources-gpu-PARTIAL-virtio-gt730.json'
AMD = 'constructed-lxd-resources-gpu-amd-mi300x-mi210.json'
INTEL = 'constructed-lxd-resources-gpu-intel-max1550.json'

# Real PCI ids; product names as pci.ids spells them.
H200 = ('2335', 'GH100 [H200 SXM 141GB]', 'NVIDIA H200', '9.0', 143771)
H100 = ('2330', 'GH100 [H100 SXM5 80GB]', 'NVIDIA H100 80GB HBM3', '9.0',
        81559)
A100_SXM4_80 = ('20b2', 'GA100 [A100 SXM4 80GB]', 'NVIDIA A100-SXM4-80GB',
                '8.0', 81920)
A100_PCIE_80 = ('20b5', 'GA100 [A100 PCIe 80GB]', 'NVIDIA A100 80GB PCIe',
                '8.0', 81920)


def nvidia_card(pci, model=H200, index=0, numa=0):
    """An LXD card of an NVIDIA datacenter GPU (constructed)."""
    product_id, product, name, capability, _memory = model
    return {
        'driver': 'nvidia', 'driver_version': '550.127.05',
        'drm': {'id': index + 1, 'card_name': 'card%d' % (index + 1),
                'card_device': '226:%d' % (index + 1),
                'render_name': 'renderD%d' % (128 + index),
                'render_device': '226:%d' % (128 + index)},
        'numa_node': numa,
        'nvidia': {'architecture': capability, 'brand': 'Nvidia',
                   'card_name': 'nvidia%d' % index,
                   'card_device': '195:%d' % index,
                   'cuda_version': '12.4', 'model': name,
                   'nvrm_version': '550.127.05',
                   'uuid': 'GPU-%08x-1111-2222-3333-444444444444' % index},
        'pci_address': pci, 'product': product, 'product_id': product_id,
        'vendor': 'NVIDIA Corporation', 'vendor_id': '10de'}


def pci_of(index):
    return '0000:%02x:00.0' % (0x18 + 0x10 * index)


def nvidia_host(count, model=H200):
    """GET /1.0/resources of an n-GPU NVIDIA host (constructed)."""
    cards = [nvidia_card(pci_of(i), model, i, numa=i * 2 // count)
             for i in range(count)]
    return {'cpu': {}, 'gpu': {'cards': cards, 'total': count}}


def nvidia_smi_l(text):
    """Parse ``nvidia-smi -L``: [(name, uuid, [(profile, mig uuid)])]."""
    gpus = []
    for line in text.splitlines():
        gpu = re.match(r'GPU \d+: (.+) \(UUID: (GPU-[0-9a-f-]+)\)', line)
        mig = re.match(r'\s+MIG (\S+)\s+Device\s+\d+: \(UUID: (MIG-[0-9a-f-]+)'
                       r'\)', line)
        if gpu:
            gpus.append((gpu.group(1), gpu.group(2), []))
        elif mig:
            gpus[-1][2].append((mig.group(1), mig.group(2)))
    return gpus


def facts(pci, model=H200, slices=(), health=(), mig=None, uuid=None):
    """NvmlFacts of one card (constructed). ``slices``: [(profile, uuid)]."""
    _id, _product, name, capability, memory = model
    if mig is None:
        mig = bool(slices)
    return discovery.NvmlFacts(
        pci_address=pci, uuid=uuid, name=name, memory_mib=memory,
        compute_capability=capability, mig_enabled=mig,
        mig_devices=tuple(discovery.MigDevice(u, p, pci)
                          for p, u in slices),
        health=tuple(health))


def h200_slices(card_index, profile='1g.18gb', count=7):
    return [(profile, 'MIG-%08x-%04x-0000-0000-000000000000'
             % (card_index, j)) for j in range(count)]
