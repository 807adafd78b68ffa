"""Hostile Glance images booted through Nova's API end in ERROR, cheaply.

The images come from tools/hostile_images.py (what tools/hostile-images
uploads to a cloud). Nova's API, conductor, scheduler and both compute
services run in this process: its memory is nova-compute's. Each boot must
end in ERROR within BOOT_LIMIT seconds with a fault naming the problem,
grow the process's peak memory by less than RSS_LIMIT, be tried on one
member only (no reschedule: the damage is not repeated elsewhere), and
leave nothing in LXD.
"""

import os
import time

import fixtures

from nova_lxd import driver
from tests.functional import base
from tools import hostile_images

BOOT_LIMIT = 30
RSS_LIMIT = 100 * 1024 * 1024
WAIT = 300


def _status_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise AssertionError('no %s in /proc/self/status' % field)


class HostileImagesTest(base.ServersTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.spawns = []
        real_spawn = driver.LXDDriver.spawn

        def spawn(drv, context, instance, *args, **kwargs):
            self.spawns.append(instance.node)
            return real_spawn(drv, context, instance, *args, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.driver.LXDDriver.spawn', spawn))

    def path(self, name):
        return os.path.join(self.tmp, name)

    def boot_refused(self, image, flavor_id=None):
        """Boot ``image``; measure and check the refusal. Returns the fault."""
        image_id = self.glance.create(None, {
            'name': image.name, 'status': 'active', 'disk_format': 'raw',
            'container_format': 'bare',
            'size': os.path.getsize(image.path)},
            data=open(image.path, 'rb'))['id']
        containers = self.container_names()
        images = self.bed.image_fingerprints()
        # The peak resident size from now on (Linux: "5" resets VmHWM).
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        before = _status_kib('VmRSS')
        start = time.monotonic()
        server = self.api.post_server({'server': self._build_server(
            image_uuid=image_id, flavor_id=flavor_id or self.flavor_id,
            networks='none')})
        server = self.api.get_server(server['id'])
        while server['status'] not in ('ERROR', 'ACTIVE'):
            self.assertLess(time.monotonic() - start, WAIT, server)
            time.sleep(0.2)
            server = self.api.get_server(server['id'])
        elapsed = time.monotonic() - start
        grown = (_status_kib('VmHWM') - before) * 1024
        fault = server.get('fault', {}).get('message', '')
        print('%s (%s): %s in %.1f s, peak RSS +%.1f MB, %d spawn(s); '
              'fault: %s' % (image.name, image.what, server['status'],
                             elapsed, grown / 1e6, len(self.spawns),
                             fault[:300]))
        self.assertEqual('ERROR', server['status'])
        self.assertIn(image.fault, fault)
        self.assertLess(len(fault), 1000)
        self.assertLess(elapsed, BOOT_LIMIT)
        self.assertLess(grown, RSS_LIMIT)
        self.assertEqual(1, len(self.spawns), self.spawns)
        self.assertEqual(containers, self.container_names())
        self.assertEqual(images, self.bed.image_fingerprints())
        return fault

    def test_alias_bomb(self):
        fault = self.boot_refused(hostile_images.alias_bomb(
            self.path('bomb.tar.gz')))
        self.assertIn('metadata.yaml', fault)

    def test_deep_yaml(self):
        self.boot_refused(hostile_images.deep_yaml(
            self.path('deep.tar.gz')))

    def test_many_members(self):
        self.boot_refused(hostile_images.many_members(
            self.path('many.tar.xz')))

    def test_long_gnu_name(self):
        self.boot_refused(hostile_images.long_name(
            self.path('long.tar.xz')))

    def test_long_pax_header(self):
        self.boot_refused(hostile_images.long_name(
            self.path('pax.tar.xz'), pax=True))

    def test_sparse_member(self):
        self.boot_refused(hostile_images.sparse_member(
            self.path('sparse.tar.gz')))

    def test_qcow2_named_tar(self):
        self.boot_refused(hostile_images.qcow2_as_tar(
            self.path('disk.tar.gz')))

    # What an image expands to: the flavor's root disk (1 GiB here) and
    # the operator's cap.

    def test_zeros_bomb(self):
        fault = self.boot_refused(hostile_images.zeros_bomb(
            self.path('zeros.tar.xz'), expanded=2 * hostile_images.GiB))
        self.assertIn("it expands to more than the flavor's root disk (1 "
                      "GiB): its files add up to at least 2147483", fault)

    def test_squashfs_bomb(self):
        fault = self.boot_refused(hostile_images.squashfs_bomb(
            self.path('bomb.sqfs'),
            expanded=hostile_images.GiB + hostile_images.MiB))
        self.assertIn("it expands to more than the flavor's root disk (1 "
                      "GiB): its files add up to at least 10747904", fault)

    def test_operator_cap(self):
        self.flags(image_max_expanded_gb=1, group='lxd')
        big_disk = self._create_flavor(name='big-disk', vcpu=1,
                                       memory_mb=256, disk=20, ephemeral=0)
        fault = self.boot_refused(hostile_images.zeros_bomb(
            self.path('zeros.tar.xz'), expanded=2 * hostile_images.GiB),
            flavor_id=big_disk)
        self.assertIn('it expands to more than [lxd] image_max_expanded_gb '
                      '(1 GiB)', fault)
