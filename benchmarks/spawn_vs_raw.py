"""The driver's spawn against raw pylxd: create+start of the same container.

On one member, alternately: LXDDriver.spawn of a fake Nova instance (its
image already in LXD's cache) and pylxd's instances.create + start of the
same container (same image fingerprint, root disk and limits, profiles
[]). Only create+start is timed; each container is deleted before the
next. PASS when the driver's median is within 1.15 times raw pylxd's.
Run from the repository root: python -m benchmarks.spawn_vs_raw [-n 15]
"""

# First: Nova's eventlet patching, quiet (like tools/demo).
from tools import demo_main

import argparse
import logging
import statistics
import sys
import tempfile
import time

from oslo_utils import uuidutils

import nova.conf
from nova import context as nova_context
from nova import objects
from nova.tests.unit import fake_instance

from nova_lxd import driver as lxd_driver
from nova_lxd import image_format

CONF = nova.conf.CONF
LIMIT = 1.15


class BenchBed(demo_main.ProjectBed):
    project = 'nova-lxd-bench-spawn'


def driver_for(bed, member, state_path):
    """An LXDDriver as nova-compute would start it, for one member."""
    objects.register_all()
    CONF([], project='nova', default_config_files=[])
    CONF.set_override('state_path', state_path)
    for name, value in (('endpoint', bed.endpoint), ('members', [member]),
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


def cache_image(lxd, tarball):
    """The busybox image, aliased as a Glance image's: cached in LXD.

    What the driver's image cache finds after a first boot.
    """
    image_id = uuidutils.generate_uuid()
    with open(tarball, 'rb') as data:
        image = lxd.images.create(data.read(), wait=True)
    image.add_alias(image_format.alias(image_id), 'Glance image busybox')
    return image_id, image.fingerprint


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=15, help='runs of each')
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    bed = BenchBed()
    bed.ensure_project()
    member = bed.members[0]
    state_path = tempfile.TemporaryDirectory(prefix='nova-lxd-bench-')
    try:
        ctx = nova_context.get_admin_context()
        driver = driver_for(bed, member, state_path.name)
        # The same pylxd client (HTTPS session, project) the driver uses.
        raw = driver.lxd.pylxd
        image_id, fingerprint = cache_image(raw, bed.image_tarball())
        image_meta = objects.ImageMeta.from_dict({
            'id': image_id, 'name': 'busybox', 'disk_format': 'raw',
            'container_format': 'bare', 'properties': {}})
        flavor = objects.Flavor(
            id=1, name='tiny', flavorid='1', vcpus=1, memory_mb=128,
            root_gb=1, ephemeral_gb=0, swap=0, extra_specs={})

        def spawn(i):
            # Booted from the Glance image (image_ref): the driver refuses
            # boot from volume.
            instance = fake_instance.fake_instance_obj(
                ctx, id=i, uuid=uuidutils.generate_uuid(), node=member,
                flavor=flavor, image_ref=image_id, config_drive='',
                launched_at=None, system_metadata={},
                expected_attrs=['system_metadata'])
            start = time.monotonic()
            driver.spawn(ctx, instance, image_meta, [], None, {}, [])
            took = time.monotonic() - start
            driver.destroy(ctx, instance, [])
            return took

        def create(i):
            start = time.monotonic()
            container = raw.instances.create({
                'name': 'bench-raw-%d' % i, 'type': 'container',
                'source': {'type': 'image', 'fingerprint': fingerprint},
                'profiles': [],
                'config': {'limits.cpu': '1', 'limits.memory': '128MiB'},
                'devices': {'root': {'type': 'disk', 'path': '/',
                                     'pool': bed.pool, 'size': '1GiB'}}},
                target=member, wait=True)
            container.start(wait=True)
            took = time.monotonic() - start
            container.stop(force=True, wait=True)
            container.delete(wait=True)
            return took

        spawn(0), create(0)     # warm-up, not counted
        timed = {spawn: [], create: []}
        for i in range(1, args.n + 1):
            for how in (spawn, create):
                timed[how].append(how(i))
    finally:
        bed.delete_project()
        state_path.cleanup()
    driver_s, raw_s = (statistics.median(timed[how])
                       for how in (spawn, create))
    ratio = driver_s / raw_s
    print('create+start of a busybox container on %s over HTTPS, LXD '
          'project %s, %d runs each (after 1 warm-up each):'
          % (member, bed.project, args.n))
    for label, how in (('driver (LXDDriver.spawn)', spawn),
                       ('raw pylxd create+start', create)):
        print('  %-25s median %.3f s  (min %.3f, max %.3f)' % (
            label, statistics.median(timed[how]), min(timed[how]),
            max(timed[how])))
    verdict = 'PASS' if ratio <= LIMIT else 'FAIL'
    print('  ratio driver/raw          %.3f  %s (limit %.2f)' % (
        ratio, verdict, LIMIT))
    return 0 if verdict == 'PASS' else 1


if __name__ == '__main__':
    sys.exit(main())
