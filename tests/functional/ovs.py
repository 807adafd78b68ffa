"""A private Open vSwitch for one test, and the host's view of its ports.

ovsdb-server and ovs-vswitchd (Debian's openvswitch-switch) run with the
userspace (netdev) datapath, so no kernel module is needed, and with their
database, sockets, pid and log files in a folder this fixture owns. os-vif
is pointed at that database; at cleanup both daemons exit with
``--cleanup`` (their bridges' tap devices go too) and the folder is
removed. Nothing here reaches beyond the test's own bridges.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

import fixtures
import os_vif
from vif_plug_ovs.ovsdb import impl_idl
from vif_plug_ovs import privsep as vif_plug_privsep

SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema'
# The tap device of the userspace (netdev) datapath.
NETDEV_DATAPATH = 'ovs-netdev'
# Nova's names for the host side of a port (nova.network.model), and the
# container's end of a native port's veth pair while it is not running.
PORT_DEVICES = ('tap', 'qbr', 'qvb', 'qvo', 'nlx')


def run(*args, env=None):
    return subprocess.run(args, check=True, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {}))).stdout


def link(name):
    """`ip -j link show` of a device, None when there is none."""
    found = subprocess.run(['ip', '-j', '-d', 'link', 'show', 'dev', name],
                           capture_output=True, text=True)
    return json.loads(found.stdout)[0] if found.returncode == 0 else None


def port_devices(port_id):
    """The host devices named after a Neutron port (tapXXX, qbrXXX...)."""
    return sorted(n for n in (p + port_id[:11] for p in PORT_DEVICES)
                  if link(n))


class OpenVSwitch(fixtures.Fixture):

    def __init__(self, test):
        super().__init__()
        self.test = test

    def _setUp(self):
        if not shutil.which('ovs-vswitchd') or not os.path.exists(SCHEMA):
            raise self.test.failureException(
                'Open vSwitch is not installed: apt-get install '
                'openvswitch-switch (tools/run-tests does it)')
        if link(NETDEV_DATAPATH):
            # Its tap device is one per host: a second userspace datapath
            # cannot add ports ("Failed to add interfaces").
            raise self.test.failureException(
                'another Open vSwitch with the userspace datapath runs on '
                'this host (device %s exists): stop it, or run these tests '
                'when it is gone' % NETDEV_DATAPATH)
        self.dir = tempfile.mkdtemp(prefix='nova-lxd-ovs-')
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.db = 'unix:%s/db.sock' % self.dir
        env = {k: self.dir for k in ('OVS_RUNDIR', 'OVS_DBDIR', 'OVS_LOGDIR',
                                     'OVS_SYSCONFDIR')}
        path = lambda name: os.path.join(self.dir, name)  # noqa: E731

        run('ovsdb-tool', 'create', path('conf.db'), SCHEMA)
        self._daemon('ovsdb-server', path('conf.db'),
                     '--remote=punix:' + path('db.sock'), env=env)
        self.vsctl('--no-wait', 'init')
        self._daemon('ovs-vswitchd', self.db, env=env, cleanup=True)

        # os-vif's ovs plugin on this database. Its native OVSDB connection
        # is kept per process (ovsdbapp): make one for this test, stop it
        # at cleanup.
        os_vif.initialize()     # registers [os_vif_ovs]
        self.test.flags(ovsdb_connection=self.db, group='os_vif_ovs')
        self.useFixture(fixtures.MonkeyPatch('os_vif._EXT_MANAGER', None))
        os_vif.initialize()     # plugins on this database
        self.useFixture(fixtures.MonkeyPatch(
            'vif_plug_ovs.ovsdb.impl_idl.NeutronOvsdbIdl._ovsdb_connection',
            None))
        self.addCleanup(self._stop_connection)
        # Tests run as root: os-vif's privileged calls run in-process.
        self.useFixture(fixtures.MockPatchObject(
            vif_plug_privsep.vif_plug, 'client_mode', False))

    def _daemon(self, name, *args, env, cleanup=False):
        ctl = os.path.join(self.dir, name + '.ctl')
        run(name, *args, '--detach', '--no-chdir',
            '--pidfile=%s/%s.pid' % (self.dir, name), '--unixctl=' + ctl,
            '--log-file=%s/%s.log' % (self.dir, name), env=env)
        self.addCleanup(self._stop, name, ctl, cleanup)

    def _stop(self, name, ctl, cleanup):
        with open(os.path.join(self.dir, name + '.pid')) as f:
            pid = int(f.read())
        # --cleanup: ovs-vswitchd removes its datapath and bridge devices.
        run('ovs-appctl', '-t', ctl, 'exit',
            *(['--cleanup'] if cleanup else []))
        for _ in range(100):
            if not os.path.exists('/proc/%d' % pid) or open(
                    '/proc/%d/stat' % pid).read().split()[2] == 'Z':
                break
            time.sleep(0.1)
        else:
            raise RuntimeError('%s (pid %d) did not exit' % (name, pid))

    def _stop_connection(self):
        connection = impl_idl.NeutronOvsdbIdl._ovsdb_connection
        if connection is not None:
            connection.stop()

    def vsctl(self, *args):
        return run('ovs-vsctl', '--db=' + self.db, '--timeout=30',
                   *args).strip()

    def add_bridge(self, name):
        """An OVS bridge of the netdev datapath, deleted at cleanup."""
        self.vsctl('add-br', name, '--', 'set', 'Bridge', name,
                   'datapath_type=netdev')
        self.addCleanup(self.vsctl, '--if-exists', 'del-br', name)

    def ports(self, bridge):
        return set(self.vsctl('list-ports', bridge).split())

    def interface(self, name, column):
        """A column of an OVS Interface, as ovs-vsctl prints it."""
        return self.vsctl('get', 'Interface', name, column)

    def external_ids(self, name):
        return dict(json.loads(self.vsctl(
            '--format=json', '--columns=external_ids', 'list', 'Interface',
            name))['data'][0][0][1])
