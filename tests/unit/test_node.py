import testtools

from oslo_serialization import jsonutils

from nova_lxd import node
from tests.unit import data


class NodeTest(testtools.TestCase):

    def test_capacity_from_recorded_lxd_resources(self):
        capacity = node.member_capacity(data.RESOURCES,
                                        data.POOL_RESOURCES)
        self.assertEqual((data.VCPUS, data.MEMORY_MB, data.DISK_GB,
                          'x86_64'),
                         (capacity['vcpus'], capacity['memory_mb'],
                          capacity['disk_gb'], capacity['arch']))

    def test_cpu_info(self):
        capacity = node.member_capacity(data.RESOURCES,
                                        data.POOL_RESOURCES)
        res = node.available_resource('lxd2', 'u', data.RESOURCES,
                                      capacity, 5000002)
        cpu_info = jsonutils.loads(res['cpu_info'])
        self.assertEqual('AuthenticAMD', cpu_info['vendor'])
        self.assertEqual({'sockets': 1, 'cores': 2, 'threads': 1},
                         cpu_info['topology'])

    def test_hypervisor_version_is_an_integer(self):
        self.assertEqual(5000002, node.hypervisor_version('5.0.2'))
        self.assertEqual(5021003, node.hypervisor_version('5.21.3'))

    def test_inventory_skips_empty_classes(self):
        inv = node.node_inventory(
            {'vcpus': 4, 'memory_mb': 1024, 'disk_gb': 0},
            {'VCPU': 16.0, 'MEMORY_MB': 1.5, 'DISK_GB': 1.0},
            {'VCPU': 0, 'MEMORY_MB': 512, 'DISK_GB': 0})
        self.assertEqual({'VCPU', 'MEMORY_MB'}, set(inv))
        self.assertEqual(16.0, inv['VCPU']['allocation_ratio'])
        self.assertEqual(512, inv['MEMORY_MB']['reserved'])
