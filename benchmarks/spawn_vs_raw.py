"""The driver's spawn against raw pylxd: create+start of the same container.

On one member, alternately: LXDDriver.spawn of a Nova instance (its image
already in LXD's cache) and pylxd's instances.create + start of the same
container (same image fingerprint, root disk and limits, profiles []).
Only create+start is timed; each container is deleted before the next.
The driver is the one of Nova's in-process compute service (as in
tools/demo: database, Glance and Neutron fixtures, which the metadata
and the image cache's checks ask). PASS when the driver's median is
within 1.15 times raw pylxd's.
Run from the repository root: python -m benchmarks.spawn_vs_raw [-n 15]
"""

# First: Nova's eventlet patching, quiet (like tools/demo).
from tools import demo_main

import argparse
import statistics
import sys
import time

from oslo_utils import uuidutils

from nova import context as nova_context
from nova import objects
from nova.tests.unit import fake_instance

from nova_lxd import image_format

from benchmarks import verdict

LIMIT = 1.15


class BenchBed(demo_main.ProjectBed):
    project = 'nova-lxd-bench-spawn'


class SpawnVsRaw(demo_main.NovaLXD):

    project_bed = BenchBed
    runs = 15
    results = None

    def test_spawn(self):
        driver = self.compute.manager.driver
        ctx = nova_context.get_admin_context()
        member = self.bed.members[0]
        # The same pylxd client (HTTPS session, project) the driver uses.
        raw = driver.lxd.pylxd
        image_meta = objects.ImageMeta.from_dict({
            'id': self.image_id, 'name': 'busybox', 'disk_format': 'raw',
            'container_format': 'bare', 'properties': {}})
        flavor = objects.Flavor(
            id=1, name='tiny', flavorid='1', vcpus=1, memory_mb=128,
            root_gb=1, ephemeral_gb=0, swap=0, extra_specs={})

        def spawn(i):
            # Booted from the Glance image (image_ref): the driver refuses
            # boot from volume.
            instance = fake_instance.fake_instance_obj(
                ctx, id=i + 1, uuid=uuidutils.generate_uuid(), node=member,
                host='compute-1', flavor=flavor, image_ref=self.image_id,
                config_drive='', launched_at=None,
                hostname='bench-%d' % i, system_metadata={}, metadata={},
                expected_attrs=['system_metadata', 'metadata'])
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
                                     'pool': self.bed.pool,
                                     'size': '1GiB'}}},
                target=member, wait=True)
            container.start(wait=True)
            took = time.monotonic() - start
            container.stop(force=True, wait=True)
            container.delete(wait=True)
            return took

        spawn(0)        # warm-up, not counted: imports the image
        fingerprint = raw.images.get_by_alias(
            image_format.alias(self.image_id)).fingerprint
        create(0)       # warm-up, not counted
        timed = {spawn: [], create: []}
        for i in range(1, self.runs + 1):
            for how in (spawn, create):
                timed[how].append(how(i))
        SpawnVsRaw.results = member, timed[spawn], timed[create]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=15, help='runs of each')
    args = parser.parse_args()
    SpawnVsRaw.runs = args.n
    bed = BenchBed()
    bed.ensure_project()
    try:
        error = demo_main.run_case(SpawnVsRaw('test_spawn'))
    finally:
        bed.delete_project()
    if error:
        sys.exit('spawn_vs_raw FAILED to run:\n%s' % error)
    member, driver_runs, raw_runs = SpawnVsRaw.results
    ratio = statistics.median(driver_runs) / statistics.median(raw_runs)
    print('create+start of a busybox container on %s over HTTPS, LXD '
          'project %s, %d runs each (after 1 warm-up each):'
          % (member, bed.project, args.n))
    for label, runs in (('driver (LXDDriver.spawn)', driver_runs),
                        ('raw pylxd create+start', raw_runs)):
        print('  %-25s median %.3f s  (min %.3f, max %.3f)' % (
            label, statistics.median(runs), min(runs), max(runs)))
    passed = ratio <= LIMIT
    result = 'PASS' if passed else 'FAIL'
    print('  ratio driver/raw          %.3f  %s (limit %.2f)' % (
        ratio, result, LIMIT))
    return verdict.exit_status(passed)


if __name__ == '__main__':
    sys.exit(main())
