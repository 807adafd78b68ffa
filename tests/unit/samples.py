"""LXD answers recorded from the test bed (LXD 5.0.2, Debian 12 VM)."""

import json
import os

_HERE = os.path.join(os.path.dirname(__file__), 'fixtures')


def load(name):
    with open(os.path.join(_HERE, name)) as f:
        return json.load(f)


# GET /1.0/resources?target=lxd2: 2 threads, 24 GiB.
RESOURCES = load('lxd-5.0.2-resources-2cpu-vm.json')
# GET /1.0/storage-pools/testbed/resources?target=lxd2 (dir driver):
# 270553174016 bytes, i.e. 251.97 GiB.
POOL_RESOURCES = load('lxd-5.0.2-storage-pool-dir-resources.json')

VCPUS = 2
MEMORY_MB = 24576
DISK_GB = 251
