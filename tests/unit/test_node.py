import datetime

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


class UptimeTextTest(testtools.TestCase):

    NOW = datetime.datetime(2026, 11, 30, 8, 5, 9)

    def test_like_procps_uptime(self):
        load = (0.2, 1.5, 12.125)
        for seconds, up in ((59, '0 min'), (61.9, '1 min'),
                            (2 * 3600 + 5 * 60, ' 2:05'),
                            (86400 + 11 * 3600, '1 day, 11:00'),
                            (3 * 86400 + 60, '3 days, 1 min')):
            self.assertEqual(
                ' 08:05:09 up %s,  load average: 0.20, 1.50, 12.12' % up,
                node.uptime_text(self.NOW, seconds, load))
