"""The LXD test bed of tools/lxd-testbed, as tests, demo and benchmarks see it.

They use only what ``tools/lxd-testbed env`` exported. Without it they
fail (never skip): tools/run-tests brings the test bed up first.
"""

import io
import os
import signal
import subprocess
import tarfile
import time

from oslo_utils import timeutils
from oslo_utils import units
import psutil
from pylxd import client as pylxd_client
from pylxd import exceptions as pylxd_exc
import testtools

from nova_lxd import constants
from nova_lxd import image_format


def _require(name):
    value = os.environ.get(name)
    if not value:
        raise testtools.TestCase.failureException(
            '%s is not set: the LXD test bed is not up. Run '
            '"tools/lxd-testbed up && eval $(tools/lxd-testbed env)" as '
            'root, or tools/run-tests.' % name)
    return value


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CGROUP_ROOT = '/sys/fs/cgroup'


def _lxc_cgroups(pid):
    """The top ``lxc.monitor.*``/``lxc.payload.*`` cgroups of a process."""
    try:
        with open('/proc/%d/cgroup' % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    tops = (line.split(':', 2)[2].split('/')[1:2] for line in lines)
    return {top[0] for top in tops
            if top and top[0].startswith(('lxc.monitor.', 'lxc.payload.'))}


def _remove_cgroup(name):
    """Remove the empty cgroup ``name`` (top level) in every hierarchy."""
    # os.scandir and os.walk: Nova's test fixtures forbid os.listdir and
    # os.path.isdir under /sys.
    hierarchies = [e.path for e in os.scandir(CGROUP_ROOT) if e.is_dir()]
    for hierarchy in [CGROUP_ROOT] + hierarchies:
        top = os.path.join(hierarchy, name)
        for path, _dirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(path)
            except OSError:
                pass    # still in use: not ours to force


def _wait_gone(processes, timeout=30):
    """Until each process has exited (a zombie has: it holds nothing)."""
    deadline = time.monotonic() + timeout
    for process in processes:
        while True:
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            if time.monotonic() > deadline:
                raise RuntimeError('process %d did not exit' % process.pid)
            time.sleep(0.1)


def delete_container(container):
    """Stop hard if needed, then delete: a test's container cleanup."""
    container.sync()
    if container.status != 'Stopped':
        container.stop(force=True, wait=True)
    container.delete(wait=True)


class Testbed(object):

    def __init__(self):
        self.endpoint = _require('LXD_TESTBED_ENDPOINT')
        self.client_cert = _require('LXD_TESTBED_CLIENT_CERT')
        self.client_key = _require('LXD_TESTBED_CLIENT_KEY')
        self.server_cert = _require('LXD_TESTBED_SERVER_CERT')
        self.members = _require('LXD_TESTBED_MEMBERS').split()
        self.image = _require('LXD_TESTBED_IMAGE')
        self.pool = _require('LXD_TESTBED_POOL')
        self.lxd_dirs = {m: _require('LXD_TESTBED_LXD_DIR_%s' % m)
                         for m in self.members}

    def image_tarball(self):
        """The test bed's own busybox image, an LXD unified tarball."""
        return os.path.join(_require('NOVA_LXD_TESTBED_DIR'), 'image',
                            self.image + '.tar.gz')

    def debian_image(self, form='unified'):
        """The test bed's Debian 12 image (tools/build-debian-image).

        ``form``: 'unified' (metadata.yaml + rootfs/, the same bytes as
        the test bed's own image ``nova-lxd-debian-12``, so the driver
        finds it in LXD) or 'rootfs' (a root file system tarball).
        """
        name = {'unified': 'LXD_TESTBED_DEBIAN_TARBALL',
                'rootfs': 'LXD_TESTBED_DEBIAN_ROOTFS'}[form]
        if not os.environ.get(name):
            raise testtools.TestCase.failureException(
                '%s is not set: the test bed has no Debian image. Run '
                '"tools/lxd-testbed up && eval $(tools/lxd-testbed env)" as '
                'root (without NOVA_LXD_TESTBED_DEBIAN=0), or '
                'tools/run-tests.' % name)
        return os.environ[name]

    def marked_image(self, marker):
        """The busybox unified tarball plus /etc/nova-lxd-marker.

        A fingerprint of its own, so the driver really imports it (and the
        test bed's own image stays untouched).
        """
        out = io.BytesIO()
        with tarfile.open(self.image_tarball()) as src, tarfile.open(
                fileobj=out, mode='w:gz') as dst:
            for member in src.getmembers():
                dst.addfile(member, src.extractfile(member)
                            if member.isfile() else None)
            data = marker.encode()
            info = tarfile.TarInfo('rootfs/etc/nova-lxd-marker')
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
        out.seek(0)
        return out

    def socket(self, member):
        return os.path.join(self.lxd_dirs[member], 'unix.socket')

    def client(self, member=None, project=None):
        """A plain pylxd client on a member's socket.

        The tests' own view of LXD, independent of the driver's code.
        """
        return pylxd_client.Client(
            endpoint=self.socket(member or self.members[0]), project=project)

    def image_fingerprints(self):
        return {i.fingerprint for i in self.client().images.all()}

    def remove_imported_images(self):
        """Delete the LXD images the driver imported from Glance.

        And its aliases on images it found already there (de-duplicated),
        and what snapshots published.
        """
        api = self.client().api
        for image in api.images.get(params={'recursion': 1}).json()[
                'metadata']:
            if image_format.ours(image) or image_format.snapshot_orphan(
                    image, timeutils.utcnow(with_timezone=True), 0):
                api.images[image['fingerprint']].delete()
                continue
            for alias in image.get('aliases') or ():
                if alias['name'].startswith(constants.GLANCE_IMAGE_PREFIX):
                    api.images.aliases[alias['name']].delete()

    def remove_nova_containers(self, attempts=20):
        """Delete every container carrying a Nova (or rescue) identity.

        A build still running when a test failed may hold a container
        busy for a moment: try again.
        """
        keys = (constants.INSTANCE_UUID_KEY, constants.RESCUE_OF_KEY)
        for attempt in range(attempts):
            try:
                for container in self.client().instances.all():
                    if any(k in container.config for k in keys):
                        delete_container(container)
                return
            except pylxd_exc.LXDAPIException:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)

    def expected_capacity(self, member):
        """VCPU, MEMORY_MB and DISK_GB that LXD reports for a member."""
        api = self.client(member).api
        res = api.resources.get(params={'target': member}).json()['metadata']
        pool = api.storage_pools[self.pool].resources.get(
            params={'target': member}).json()['metadata']
        return {'VCPU': res['cpu']['total'],
                'MEMORY_MB': res['memory']['total'] // units.Mi,
                'DISK_GB': pool['space']['total'] // units.Gi}

    @property
    def quota_pool(self):
        """The pool that enforces sizes (btrfs), from ``up --quota-pool``."""
        value = os.environ.get('LXD_TESTBED_QUOTA_POOL')
        if not value:
            raise testtools.TestCase.failureException(
                'LXD_TESTBED_QUOTA_POOL is not set: the test bed has no '
                'size-enforcing pool. Run "tools/lxd-testbed up --quota-pool '
                '&& eval $(tools/lxd-testbed env)" as root, or '
                'tools/run-tests.')
        return value

    def pools(self):
        return [self.pool] + ([os.environ['LXD_TESTBED_QUOTA_POOL']]
                              if os.environ.get('LXD_TESTBED_QUOTA_POOL')
                              else [])

    def nova_volumes(self):
        """(pool, member, name) of every ephemeral volume of the driver."""
        api = self.client().api
        found = []
        for pool in self.pools():
            for volume in api.storage_pools[pool].volumes.get(
                    params={'recursion': 1}).json()['metadata']:
                if (volume['type'] == 'custom' and volume['name'].startswith(
                        constants.EPHEMERAL_VOLUME_PREFIX)):
                    found.append((pool, volume.get('location'),
                                  volume['name']))
        return found

    def remove_nova_volumes(self):
        """Delete the driver's ephemeral volumes (after the containers)."""
        api = self.client().api
        for pool, member, name in self.nova_volumes():
            params = {'target': member} if member else {}
            api.storage_pools[pool].volumes.custom[name].delete(
                params=params)

    def exec(self, container, *command):
        """Run a command in a container: (exit status, stdout, stderr)."""
        return self.exec_in('default', container, *command)

    def exec_in(self, project, container, *command):
        """``exec`` in a container of an LXD project."""
        env = dict(os.environ, LXD_DIR=self.lxd_dirs[self.members[0]],
                   LXD_CONF=os.path.join(_require('NOVA_LXD_TESTBED_DIR'),
                                         'lxc-client'))
        done = subprocess.run(['lxc', 'exec', '--project', project,
                               container, '--'] + list(command), env=env,
                              capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout, done.stderr

    # -- failures: a member's daemon or host lost, and back ---------------

    def daemon_pid(self, member):
        """The pid of the member's LXD daemon (tools/lxd-testbed's file)."""
        with open(self.lxd_dirs[member] + '.pid') as f:
            return int(f.read().split()[0])

    def dead_daemons(self):
        """The members whose LXD daemon no longer runs."""
        dead = []
        for member in self.members:
            try:
                alive = (psutil.Process(self.daemon_pid(member)).status()
                         != psutil.STATUS_ZOMBIE)
            except (OSError, ValueError, psutil.NoSuchProcess):
                alive = False
            if not alive:
                dead.append(member)
        return dead

    def check_daemons(self):
        """At a test's end: no member's daemon died under it.

        One that did is started again (the next tests have their cluster)
        and the test fails with the end of the daemon's output, where LXD
        says why it stopped (a Go panic goes there).
        """
        dead = self.dead_daemons()
        if not dead:
            return
        tails = []
        for member in dead:
            try:
                with open(self.lxd_dirs[member] + '.out',
                          errors='replace') as f:
                    tails.append('---- %s.out\n%s' % (
                        member, ''.join(f.readlines()[-30:])))
            except OSError as e:
                tails.append('---- %s: no output (%s)' % (member, e))
        self.revive()
        raise testtools.TestCase.failureException(
            'the LXD daemon of %s died during this test (started again); '
            'the end of its output:\n%s' % (', '.join(dead),
                                            '\n'.join(tails)))

    def kill_daemon(self, member):
        """SIGKILL the member's LXD daemon; its containers keep running."""
        pid = self.daemon_pid(member)
        os.kill(pid, signal.SIGKILL)
        _wait_gone([psutil.Process(pid)])

    def kill_member(self, member):
        """The member's host is lost: its daemon and containers die.

        Each container's ``[lxc monitor]`` and what runs under it get
        SIGKILL, as a power cut would; LXD finds them stopped when its
        daemon is back.
        """
        self.kill_daemon(member)
        folder = os.path.join(self.lxd_dirs[member], 'containers') + ' '
        for process in psutil.process_iter(['cmdline']):
            cmdline = ' '.join(process.info['cmdline'] or ())
            if not cmdline.startswith('[lxc monitor] ' + folder):
                continue
            try:
                doomed = process.children(recursive=True) + [process]
            except psutil.NoSuchProcess:
                continue
            groups = set()
            for each in doomed:
                groups.update(_lxc_cgroups(each.pid))
                try:
                    each.kill()
                except psutil.NoSuchProcess:
                    pass    # ended by itself, e.g. when its parent died
            _wait_gone(doomed)
            # A killed monitor cannot remove its container's cgroups.
            for group in groups:
                _remove_cgroup(group)

    def member_status(self, member, via=None):
        """LXD's word for a member (Online, Offline...), asked of ``via``."""
        via = via or next(m for m in self.members if m != member)
        return self.client(via).api.cluster.members[member].get().json()[
            'metadata']['status']

    def wait_member(self, member, status, timeout=120):
        deadline = time.monotonic() + timeout
        while self.member_status(member) != status:
            if time.monotonic() > deadline:
                raise testtools.TestCase.failureException(
                    'LXD member %s not %s after %ds' % (
                        member, status, timeout))
            time.sleep(1)

    def revive(self):
        """Start what is not running (tools/lxd-testbed up) and wait."""
        deadline = time.monotonic() + 180
        while True:
            done = subprocess.run(
                [os.path.join(REPO, 'tools', 'lxd-testbed'), 'up'],
                capture_output=True, text=True, timeout=600)
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise testtools.TestCase.failureException(
                    'tools/lxd-testbed up failed:\n' + done.stderr[-2000:])
            time.sleep(3)
        for member in self.members:
            self.wait_member(member, 'Online')
