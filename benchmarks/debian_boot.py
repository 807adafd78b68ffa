"""A real guest's boot: Debian 12 server create -> cloud-init done.

Nova's in-process services as in tools/demo (one compute, HTTPS, an LXD
project of its own), the test bed's Debian image (tools/build-debian-image)
in Glance, on one member and the test bed's btrfs pool when it has one
(``--quota-pool``; else its dir pool). Alternately:

- Nova: POST /servers (key, user data) -> ACTIVE -> cloud-init done;
- raw LXD: pylxd create + start of the same image on the same member and
  pool, with the same limits and the same cloud-init keys (what the
  driver writes for such a server) -> cloud-init done.

"cloud-init done" is ``cloud-init status --wait`` through LXD exec,
started as soon as the container runs, the same way for both. One
warm-up of each (the image imported into the project and unpacked into
the pool), then N of each; each server is deleted before the next.
Prints p50 of both and their ratio; PASS when Nova's p50 is within 1.3
times raw LXD's.

Create -> SSH answers, on tools/cloud's network: benchmarks/ssh_boot.py.

Run from the repository root: python -m benchmarks.debian_boot [-n 5]
"""

# First: Nova's eventlet patching, quiet (like tools/demo).
from tools import demo_main

import argparse
import base64
import os
import statistics
import subprocess
import sys
import time

import nova.conf
from nova import objects
from oslo_utils import uuidutils

from nova_lxd import cloud_init
from nova_lxd import container

from benchmarks import verdict

LIMIT = 1.3
KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3ke0ESY7ZzzHKUeWm2BcNtDZ3yW'
       'hK7VIdIiZEZzLLf bench@nova-lxd')
USER_DATA = b'#!/bin/sh\necho booted > /root/bench\n'
FLAVOR = ('debian', 1, 512, 2)      # name, vCPUs, MB, root GB


class BenchBed(demo_main.ProjectBed):
    project = 'nova-lxd-bench-debian'


class DebianBoot(demo_main.NovaLXD):

    project_bed = BenchBed
    quota_pool = bool(os.environ.get('LXD_TESTBED_QUOTA_POOL'))
    runs = 5
    results = None

    def use_https(self, members=None):
        # One member: Nova's servers land where the raw ones do.
        super().use_https(members=[self.bed.members[0]])

    def setUp(self):
        super().setUp()
        self.member = self.bed.members[0]
        self.pool = self.bed.quota_pool if self.quota_pool else self.bed.pool
        name, vcpu, mb, disk = FLAVOR
        self.flavor = self._create_flavor(name=name, vcpu=vcpu, memory_mb=mb,
                                          disk=disk, ephemeral=0)
        path = self.bed.debian_image()
        with open(path, 'rb') as data:
            self.debian = self.glance.create(None, {
                'name': 'debian-12', 'status': 'active', 'disk_format': 'raw',
                'container_format': 'bare', 'size': os.path.getsize(path),
                'properties': {'os_distro': 'debian'}}, data=data)['id']
        self.api.post_keypair({'keypair': {'name': 'k', 'public_key': KEY}})

    def ready(self, name, start):
        """Seconds from ``start`` until the container's cloud-init is done."""
        env = dict(os.environ, LXD_DIR=self.bed.lxd_dirs[self.member],
                   LXD_CONF=os.path.join(os.environ['NOVA_LXD_TESTBED_DIR'],
                                         'lxc-client'))
        done = subprocess.run(
            ['lxc', 'exec', '--project', self.bed.project, name, '--',
             'cloud-init', 'status', '--wait'],
            env=env, capture_output=True, text=True, timeout=300)
        took = time.monotonic() - start
        if 'status: done' not in done.stdout:
            self.fail('%s: cloud-init %s %s' % (name, done.stdout,
                                                done.stderr))
        return took

    def nova(self, name):
        """(POST -> ACTIVE, POST -> cloud-init done) of one server."""
        start = time.monotonic()
        server = self.api.post_server({'server': {
            'name': name, 'imageRef': self.debian, 'flavorRef': self.flavor,
            'networks': 'none', 'key_name': 'k',
            'user_data': base64.b64encode(USER_DATA).decode()}})
        while server['id'] not in self.active_at:
            if server['id'] in self.failed or (
                    time.monotonic() - start > demo_main.BOOT_TIMEOUT):
                self.fail('%s did not become ACTIVE' % name)
            time.sleep(0.01)
        active = self.active_at[server['id']] - start
        server = self.api.get_server(server['id'])
        done = self.ready(server['OS-EXT-SRV-ATTR:instance_name'], start)
        self._delete_server(server)
        return active, done

    def raw(self, name, fingerprint):
        """create + start + cloud-init done of the same container, raw."""
        name_, vcpu, mb, disk = FLAVOR
        flavor = objects.Flavor(name=name_, vcpus=vcpu, memory_mb=mb,
                                root_gb=disk, extra_specs={})
        config = container.limits(flavor, container.flavor_specs(flavor),
                                  container.gates(nova.conf.CONF.lxd))
        config.update(cloud_init.lxd_keys(
            {'uuid': uuidutils.generate_uuid(), 'hostname': name,
             'public_keys': {'k': KEY}},
            raw_user_data=USER_DATA, server_version='5.0'))
        lxd = self.bed.client()
        start = time.monotonic()
        made = lxd.instances.create({
            'name': name, 'type': 'container', 'profiles': [],
            'source': {'type': 'image', 'fingerprint': fingerprint},
            'config': config,
            'devices': {'root': {'type': 'disk', 'path': '/',
                                 'pool': self.pool,
                                 'size': '%dGiB' % FLAVOR[3]}}},
            wait=True, target=self.member)
        made.start(wait=True)
        started = time.monotonic() - start
        done = self.ready(name, start)
        made.stop(force=True, wait=True)
        made.delete(wait=True)
        self.raw_runs.append((started, done))

    def test_boot(self):
        self.raw_runs = []
        self.nova('warm-up')
        (image,) = self.bed.client().images.all()
        self.raw('raw-warm-up', image.fingerprint)
        self.raw_runs = []
        nova, active = [], []
        for i in range(self.runs):
            took_active, took = self.nova('nova-%d' % i)
            active.append(took_active)
            nova.append(took)
            self.raw('raw-%d' % i, image.fingerprint)
        DebianBoot.results = (nova, active, [r[1] for r in self.raw_runs],
                              [r[0] for r in self.raw_runs])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=5, help='runs of each')
    args = parser.parse_args()
    DebianBoot.runs = args.n
    bed = BenchBed()
    bed.ensure_project()
    try:
        error = demo_main.run_case(DebianBoot('test_boot'))
    finally:
        bed.delete_project()
    if error:
        sys.exit('debian_boot FAILED to run:\n%s' % error)
    nova, active, raw, started = DebianBoot.results
    print('Debian 12 (cloud-init) server -> cloud-init done, %d of each, '
          'alternately, on %s, pool %s (flavor %d vCPU/%d MB/%d GB):' % (
              args.n, bed.members[0], DebianBoot.quota_pool and
              bed.quota_pool or bed.pool, *FLAVOR[1:]))
    for label, values in (('Nova: POST -> ACTIVE', active),
                          ('Nova: POST -> cloud-init done', nova),
                          ('raw LXD: create -> started', started),
                          ('raw LXD: create -> cloud-init done', raw)):
        print('  %-36s p50 %6.2f s  (min %.2f, max %.2f)' % (
            label, statistics.median(values), min(values), max(values)))
    ratio = statistics.median(nova) / statistics.median(raw)
    passed = ratio <= LIMIT
    result = 'PASS' if passed else 'FAIL'
    print('  Nova / raw LXD (p50): %.2f against %.1f: %s' % (
        ratio, LIMIT, result))
    return verdict.exit_status(passed)


if __name__ == '__main__':
    sys.exit(main())
