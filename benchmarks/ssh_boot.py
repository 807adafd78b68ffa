"""Boot to SSH on tools/cloud: a Debian 12 server vs the same container raw.

On the cloud of ``tools/cloud up`` (its openrc sourced, the test bed's
``tools/lxd-testbed env`` evaluated), on the test bed's first member,
alternately:

- Nova: ``openstack server create --image debian-12 --key-name ...
  --user-data ... --nic port-id=... --wait``, the unmodified CLI, timed
  from its start until ``ssh debian@<address> true`` with the key works
  (SSH is tried every 0.2 s from the host while the CLI runs);
- Nova's API from a warm client: the same server POSTed with openstacksdk
  (its token and catalog fetched beforehand, as Rally's client has them),
  timed from the POST until the same SSH works: Nova without the CLI's
  own start-up (0.8-2.5 s of Python imports and Keystone here);
- raw LXD: ``lxc launch`` of the test bed's own copy of the same image
  (``nova-lxd-debian-12``) on the same member and pool, with the config
  Nova's warm-up container got from the driver (limits, cloud-init's
  keys: the same key, user data and network config), its nic on cloud-net
  (a veth whose host end is a port of the cloud's switch, as os-vif plugs
  Nova's), timed from ``lxc launch``'s start until the same SSH works.

Both get their address by DHCP from Neutron's dnsmasq, each from a Neutron
port made beforehand (made once, reused: its address is known before the
boot, so SSH is tried from the first moment). Nova's path has the
security group's firewall, the raw one the plain switch. One warm-up of
each (Glance's image imported into the cloud's LXD project), then N of
each; each container is deleted before the next. Prints p50 of both and
their ratio. PASS: Nova's p50 through the CLI under 10 s and within 1.3
times raw LXD's (the API figure is printed beside it).

Run from the repository root, as root, with the cloud's venv:
    . /var/lib/nova-lxd-cloud/openrc; eval "$(tools/lxd-testbed env)"
    .cloud-venv/bin/python -m benchmarks.ssh_boot [-n 5]
"""

import argparse
import base64
import contextlib
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import openstack as sdk
import yaml

IMAGE = 'debian-12'                 # tools/cloud's upload
RAW_IMAGE = 'nova-lxd-debian-12'    # the test bed's import of the same file
NETWORK = 'cloud-net'
LXD_PROJECT = 'nova-lxd-cloud'      # the cloud's instances
HUB_BRIDGE = 'brnlc'                # tools/cloud's switch of cloud-net
RAW_TAP = 'tapsshbench'
GOAL_S = 10.0
LIMIT = 1.3
SSH_TIMEOUT = 300
USER_DATA = '#cloud-config\nruncmd:\n  - [touch, /var/tmp/hello]\n'
PREFIX = 'ssh-boot-%d' % os.getpid()


def run(*cmd, **kwargs):
    kwargs.setdefault('timeout', 300)
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          **kwargs).stdout


def openstack(*args):
    return run('openstack', *args).strip()


class Bench:

    def __init__(self, tmp):
        self.tmp = tmp
        self.key = os.path.join(tmp, 'id')
        self.cleanups = []
        bed = os.environ['NOVA_LXD_TESTBED_DIR']
        self.member = os.environ['LXD_TESTBED_MEMBERS'].split()[0]
        self.lxd_env = dict(
            os.environ, LXD_CONF=os.path.join(bed, 'lxc-client'),
            LXD_DIR=os.environ['LXD_TESTBED_LXD_DIR_%s' % self.member])
        state = os.environ.get('NOVA_LXD_CLOUD_DIR', '/var/lib/nova-lxd-cloud')
        self.ovsdb = 'unix:%s' % os.path.join(state, 'ovs', 'db.sock')

    def lxc(self, *args, **kwargs):
        return run('lxc', *args, env=self.lxd_env, **kwargs)

    def ovs(self, *args):
        return run('ovs-vsctl', '--db=%s' % self.ovsdb, '--timeout=20', *args)

    def setup(self):
        run('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', PREFIX,
            '-f', self.key)
        with open(os.path.join(self.tmp, 'hello.yaml'), 'w') as f:
            f.write(USER_DATA)
        self.made('keypair', PREFIX)
        openstack('keypair', 'create', '--public-key', self.key + '.pub',
                  PREFIX)
        self.made('flavor', PREFIX)
        openstack('flavor', 'create', '--vcpus', '1', '--ram', '512',
                  '--disk', '2', PREFIX)
        self.made('security group', PREFIX)
        openstack('security', 'group', 'create', PREFIX)
        openstack('security', 'group', 'rule', 'create', '--ingress',
                  '--protocol', 'tcp', '--dst-port', '22', PREFIX)
        self.ports = {}
        for side in ('nova', 'raw'):
            name = '%s-%s' % (PREFIX, side)
            self.made('port', name)
            out = openstack('port', 'create', '--network', NETWORK,
                            '--security-group', PREFIX, name, '-f', 'yaml',
                            '-c', 'id', '-c', 'mac_address', '-c',
                            'fixed_ips')
            port = yaml.safe_load(out)
            self.ports[side] = (port['id'], port['mac_address'],
                                port['fixed_ips'][0]['ip_address'])
        # A warm client: token and catalog fetched now.
        self.cloud = sdk.connect()
        self.flavor_id = self.cloud.compute.find_flavor(PREFIX).id
        self.image_id = self.cloud.image.find_image(IMAGE).id

    def made(self, kind, name):
        self.cleanups.append((kind, name))

    def cleanup(self):
        for kind, name in reversed(self.cleanups):
            with contextlib.suppress(subprocess.SubprocessError):
                if kind == 'container':
                    self.lxc('delete', '--force', name)
                elif kind == 'ovs-port':
                    self.ovs('--if-exists', 'del-port', HUB_BRIDGE, name)
                elif kind == 'server':
                    openstack('server', 'delete', '--wait', name)
                else:
                    openstack(*kind.split(), 'delete', name)

    def timed(self, cmd, address, start=None, stdin=None, **kwargs):
        """(start -> SSH works, start -> cmd returned) of ``cmd``.

        SSH with the key is tried every 0.2 s while ``cmd`` runs and after.
        ``start``: when the clock started (default: now); ``stdin``: text
        for the command's standard input.
        """
        start = start or time.monotonic()
        process = (Call(cmd) if callable(cmd) else
                   subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True,
                                    **kwargs))
        if process.stdin:
            process.stdin.write(stdin or '')
            process.stdin.close()
        # When it returned, from a thread of its own: an SSH try that
        # waits for its connect timeout would delay noticing it by 1 s.
        ended = []
        watcher = threading.Thread(
            target=lambda: ended.append((process.wait(), time.monotonic())),
            daemon=True)
        watcher.start()
        ssh = returned = None
        while ssh is None or returned is None:
            if returned is None and not watcher.is_alive():
                returned = ended[0][1] - start
                if process.returncode:
                    raise RuntimeError('%s failed: %s' % (
                        process.args, process.stderr.read()))
            if ssh is None and self.ssh_works(address):
                ssh = time.monotonic() - start
            if time.monotonic() - start > SSH_TIMEOUT:
                process.kill()
                what = ('no return' if returned is None else
                        'no SSH at %s (the command returned after %.1f s)'
                        % (address, returned))
                raise RuntimeError('%s: %s after %d s' % (
                    process.args, what, SSH_TIMEOUT))
            time.sleep(0.2)
        return ssh, returned

    def ssh_works(self, address):
        # Port 22 first, briefly: ssh's connect timeout (1 s at least)
        # would blur the moment SSH began to answer.
        try:
            socket.create_connection((address, 22), timeout=0.2).close()
        except OSError:
            return False
        try:
            subprocess.run(
                ['ssh', '-i', self.key, '-o', 'BatchMode=yes',
                 '-o', 'StrictHostKeyChecking=no',
                 '-o', 'UserKnownHostsFile=/dev/null',
                 '-o', 'ConnectTimeout=1', '-o', 'LogLevel=ERROR',
                 'debian@%s' % address, 'true'],
                check=True, capture_output=True, timeout=10)
            return True
        except subprocess.SubprocessError:
            return False

    def nova(self, name):
        port, _mac, address = self.ports['nova']
        self.made('server', name)
        took = self.timed(
            ['openstack', 'server', 'create', '--flavor', PREFIX,
             '--image', IMAGE, '--key-name', PREFIX, '--user-data',
             os.path.join(self.tmp, 'hello.yaml'), '--nic',
             'port-id=%s' % port, '--availability-zone',
             'nova:%s' % self.member, '--wait', name], address)
        container = openstack('server', 'show', name, '-f', 'value', '-c',
                              'OS-EXT-SRV-ATTR:instance_name')
        config = yaml.safe_load(self.lxc('config', 'show', '--project',
                                         LXD_PROJECT, container))
        openstack('server', 'delete', '--wait', name)
        self.cleanups.remove(('server', name))
        return took, config

    def nova_api(self, name):
        """The same server through Nova's API, from the warm client."""
        port, _mac, address = self.ports['nova']
        user_data = base64.b64encode(USER_DATA.encode()).decode()

        def create():
            server = self.cloud.compute.create_server(
                name=name, flavor_id=self.flavor_id, image_id=self.image_id,
                key_name=PREFIX, user_data=user_data,
                networks=[{'port': port}],
                availability_zone='nova:%s' % self.member)
            self.cloud.compute.wait_for_server(server, interval=0.2)

        self.made('server', name)
        took = self.timed(create, address)
        openstack('server', 'delete', '--wait', name)
        self.cleanups.remove(('server', name))
        return took

    def raw_config(self, nova_config, nova_mac):
        """The driver's config of Nova's container, for the raw one."""
        _port, mac, _address = self.ports['raw']
        config = {k: v.replace(nova_mac, mac)
                  for k, v in nova_config['config'].items()
                  if not k.startswith(('volatile.', 'image.'))}
        devices = {'root': nova_config['devices']['root'],
                   'eth0': {'type': 'nic', 'nictype': 'p2p', 'name': 'eth0',
                            'host_name': RAW_TAP, 'hwaddr': mac}}
        return yaml.safe_dump({'config': config, 'devices': devices})

    def raw(self, name, config):
        self.made('ovs-port', RAW_TAP)
        self.made('container', name)
        # As os-vif does for Nova's: the switch's port first; LXD's veth
        # then appears under it.
        start = time.monotonic()
        self.ovs('--may-exist', 'add-port', HUB_BRIDGE, RAW_TAP)
        took = self.timed(
            ['lxc', 'launch', RAW_IMAGE, name, '--no-profiles', '--target',
             self.member], self.ports['raw'][2], start=start, stdin=config,
            env=self.lxd_env)
        self.lxc('delete', '--force', name)
        self.ovs('--if-exists', 'del-port', HUB_BRIDGE, RAW_TAP)
        self.cleanups[-2:] = []
        return took


class Call:
    """A function run in a thread, polled like a subprocess.Popen."""

    stdin = None

    def __init__(self, function):
        self.function, self.args = function, function.__qualname__
        self.returncode = self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.function()
        except Exception as e:      # reported by poll's caller
            self.error = e

    def poll(self):
        if self.thread.is_alive():
            return None
        self.returncode = 1 if self.error else 0
        self.stderr = io.StringIO(str(self.error or ''))
        return self.returncode

    def wait(self):
        self.thread.join()
        return self.poll()

    def kill(self):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=5, help='runs of each')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(tmp)
        try:
            bench.setup()
            nova_mac = bench.ports['nova'][1]
            _, config = bench.nova('%s-warm-up' % PREFIX)
            config = bench.raw_config(config, nova_mac)
            bench.raw('%s-raw-warm-up' % PREFIX, config)
            nova, api, raw = [], [], []
            for i in range(args.n):
                nova.append(bench.nova('%s-%d' % (PREFIX, i))[0])
                api.append(bench.nova_api('%s-api-%d' % (PREFIX, i)))
                raw.append(bench.raw('%s-raw-%d' % (PREFIX, i), config))
        finally:
            bench.cleanup()
    print('Debian 12 boot -> SSH with the key works, %d of each, '
          'alternately, on %s (1 vCPU, 512 MB, 2 GB):' % (
              args.n, bench.member))
    for label, values in (
            ('Nova: server create --wait -> SSH', [t[0] for t in nova]),
            ('Nova: server create --wait returned', [t[1] for t in nova]),
            ('Nova API: POST -> SSH', [t[0] for t in api]),
            ('Nova API: POST -> ACTIVE seen', [t[1] for t in api]),
            ('raw LXD: lxc launch -> SSH', [t[0] for t in raw]),
            ('raw LXD: lxc launch returned', [t[1] for t in raw])):
        print('  %-38s p50 %6.2f s  (min %.2f, max %.2f)' % (
            label, statistics.median(values), min(values), max(values)))
    nova_p50 = statistics.median(t[0] for t in nova)
    ratio = nova_p50 / statistics.median(t[0] for t in raw)
    api_ratio = (statistics.median(t[0] for t in api) /
                 statistics.median(t[0] for t in raw))
    verdict = 'PASS' if nova_p50 < GOAL_S and ratio <= LIMIT else 'FAIL'
    print('  Nova API / raw LXD (p50) %.2f' % api_ratio)
    print('  Nova p50 %.2f s against %.0f s; Nova / raw LXD (p50) %.2f '
          'against %.1f: %s' % (nova_p50, GOAL_S, ratio, LIMIT, verdict))
    return 0 if verdict == 'PASS' else 1


if __name__ == '__main__':
    sys.exit(main())
