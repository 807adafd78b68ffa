"""Neutron ports wired by os-vif into real containers, through Nova's API.

Nova's Neutron fixture gives the ports; their bindings point at an Open
vSwitch bridge of the test's own private Open vSwitch (tests/functional/
ovs.py). Each test checks the host side (the tap device, the per-port
Linux bridge of hybrid plug, the OVS port with Neutron's external-ids) and
the interface inside the container, through LXD exec.
"""

import copy
import time
import uuid

from nova.tests.fixtures import neutron as neutron_fixture
from pylxd import exceptions as pylxd_exc

from tests.functional import base
from tests.functional import ovs

MTU = 1450      # the Neutron fixture's network_1


class Ports(object):
    """Mixin: Neutron ports bound to a bridge of the test's Open vSwitch."""

    def setUp(self):
        super().setUp()
        self.ovs = self.useFixture(ovs.OpenVSwitch(self))
        self.bridge = 'nlx-' + uuid.uuid4().hex[:8]
        self.ovs.add_bridge(self.bridge)
        # Nova's own default is 300 s; the fixture sets 0 (no wait).
        self.flags(vif_plugging_timeout=60)

    def port(self, hybrid=False, status='ACTIVE'):
        """A Neutron port bound as ML2/OVS (hybrid or native) binds it."""
        port = copy.deepcopy(neutron_fixture.NeutronFixture.port_1)
        port_id = str(uuid.uuid4())
        n = len(self.neutron._ports)
        port.update({
            'id': port_id, 'status': status,
            'mac_address': 'fa:16:3e:00:00:%02x' % n,
            'fixed_ips': [dict(port['fixed_ips'][0],
                               ip_address='192.168.1.%d' % (100 + n))],
            'binding:vif_details': {
                'port_filter': True, 'ovs_hybrid_plug': hybrid,
                'bridge_name': self.bridge, 'datapath_type': 'netdev'},
        })
        self.neutron._ports[port_id] = port
        # A failed test may leave its server: its host devices go anyway.
        self.addCleanup(self.remove_host_devices, port_id)
        return port

    @staticmethod
    def remove_host_devices(port_id):
        for name in ovs.port_devices(port_id):
            if ovs.link(name):      # a veth's peer went with it
                ovs.run('ip', 'link', 'del', name)


class NetworkTest(Ports, base.ServersTestCase):

    def boot_with(self, *ports, expected_state='ACTIVE', flavor_id=None):
        return self._create_server(
            image_uuid=self.image_id, flavor_id=flavor_id or self.flavor_id,
            networks=[{'port': p['id']} for p in ports],
            expected_state=expected_state)

    def running(self, server):
        if not server['OS-EXT-SRV-ATTR:instance_name']:
            return False    # not scheduled yet
        try:
            return self.container(server)['status'] == 'Running'
        except pylxd_exc.NotFound:
            return False

    def exec(self, server, *command):
        name = server['OS-EXT-SRV-ATTR:instance_name']
        result = self.lxd.instances.get(name).execute(list(command))
        self.assertEqual(0, result.exit_code, result.stderr)
        return result.stdout.strip()

    def interface(self, server, name):
        """(MAC, MTU) of an interface inside the container."""
        return tuple(self.exec(server, 'cat', '/sys/class/net/%s/%s' % (
            name, what)) for what in ('address', 'mtu'))

    def interfaces(self, server):
        return set(self.exec(server, 'ls', '/sys/class/net').split())

    def assertWired(self, port, server, eth, hybrid):
        """Host side as Neutron's agent expects, and the interface inside."""
        tap = 'tap' + port['id'][:11]
        host = ovs.link(tap)
        self.assertIsNotNone(host, '%s missing on the host' % tap)
        self.assertEqual('veth', host['linkinfo']['info_kind'])
        self.assertEqual(MTU, host['mtu'])
        if hybrid:
            qbr = 'qbr' + port['id'][:11]
            self.assertEqual(qbr, host['master'])
            self.assertEqual('bridge',
                             ovs.link(qbr)['linkinfo']['info_kind'])
            ovs_port = 'qvo' + port['id'][:11]
            self.assertEqual(qbr, ovs.link('qvb' + port['id'][:11])[
                'master'])
        else:
            ovs_port = tap
            # The pair's other end is in the container, not on the host.
            self.assertIsNone(ovs.link('nlx' + port['id'][:11]))
        self.assertIn(ovs_port, self.ovs.ports(self.bridge))
        ids = self.ovs.external_ids(ovs_port)
        self.assertEqual((port['id'], port['mac_address'], server['id']),
                         (ids['iface-id'], ids['attached-mac'],
                          ids['vm-uuid']))
        # OVS has the device itself, not only its record.
        self.assertGreater(int(self.ovs.interface(ovs_port, 'ofport')), 0)
        self.assertEqual((port['mac_address'], str(MTU)),
                         self.interface(server, eth))

    def assertGone(self, port):
        self.assertEqual([], ovs.port_devices(port['id']))
        self.assertEqual(set(), {p for p in self.ovs.ports(self.bridge)
                                 if port['id'][:11] in p})

    def test_hybrid_and_native_ports_survive_stop_start_and_go_with_delete(
            self):
        hybrid, native = self.port(hybrid=True), self.port()
        server = self.boot_with(hybrid, native)
        self.assertWired(hybrid, server, 'eth0', hybrid=True)
        self.assertWired(native, server, 'eth1', hybrid=False)
        devices = self.container(server)['devices']
        self.assertEqual(
            {'nova-port-' + hybrid['id']: 'bridged',
             'nova-port-' + native['id']: 'physical'},
            {k: d['nictype'] for k, d in devices.items()
             if d['type'] == 'nic'})

        server = self._stop_server(server)
        # The bridged nic's veth goes with the container; the native
        # port's pair made at plug stays, its other end back on the host
        # (LXD gives back what it moved in), its OVS port in use.
        self.assertIsNone(ovs.link('tap' + hybrid['id'][:11]))
        self.assertIsNotNone(ovs.link('nlx' + native['id'][:11]))
        self.assertGreater(int(self.ovs.interface(
            'tap' + native['id'][:11], 'ofport')), 0)
        # A member reboot loses what os-vif made on the host: start plugs
        # it again.
        for prefix in ('qbr', 'qvb'):
            ovs.run('ip', 'link', 'del', prefix + hybrid['id'][:11])
        server = self._start_server(server)
        self.assertWired(hybrid, server, 'eth0', hybrid=True)
        self.assertWired(native, server, 'eth1', hybrid=False)

        self._delete_server(server)
        self.assertGone(hybrid)
        self.assertGone(native)

    def test_member_reboot_plugs_ports_again(self):
        self.flags(resume_guests_state_on_host_boot=True)
        hybrid, native = self.port(hybrid=True), self.port()
        server = self.boot_with(hybrid, native)
        member = server['OS-EXT-SRV-ATTR:hypervisor_hostname']
        # The member rebooted: its containers are stopped, what os-vif
        # made on the host is gone, the OVS database kept its ports.
        self.lxd.instances.get(server['OS-EXT-SRV-ATTR:instance_name']).stop(
            force=True, wait=True)
        for name in ('qbr' + hybrid['id'][:11], 'qvb' + hybrid['id'][:11],
                     'tap' + native['id'][:11]):
            ovs.run('ip', 'link', 'del', name)
        self.use_socket(member)
        self.restart_compute_service(self.computes[member],
                                     keep_hypervisor_state=False)
        self.assertEqual('Running', self.container(server)['status'])
        self.assertWired(hybrid, server, 'eth0', hybrid=True)
        self.assertWired(native, server, 'eth1', hybrid=False)

    def test_p2p_nic_of_an_earlier_driver_becomes_a_pair_at_start(self):
        port = self.port()
        server = self.boot_with(port)
        server = self._stop_server(server)
        # As an earlier nova-lxd left it: a p2p nic, no pair on the host.
        name = server['OS-EXT-SRV-ATTR:instance_name']
        tap = 'tap' + port['id'][:11]
        found = self.lxd.instances.get(name)
        found.devices['nova-port-' + port['id']] = {
            'type': 'nic', 'nictype': 'p2p', 'name': 'eth0',
            'host_name': tap, 'hwaddr': port['mac_address'],
            'mtu': str(MTU)}
        found.save(wait=True)
        ovs.run('ip', 'link', 'del', tap)
        server = self._start_server(server)
        self.assertEqual('physical', self.container(server)['devices'][
            'nova-port-' + port['id']]['nictype'])
        self.assertWired(port, server, 'eth0', hybrid=False)

    def test_unrescue_plugs_ports_again(self):
        hybrid = self.port(hybrid=True)
        server = self.boot_with(hybrid)
        self.api.post_server_action(server['id'], {'rescue': {}})
        server = self._wait_for_state_change(server, 'RESCUE')
        # What os-vif made went while the server was rescued (a member
        # reboot); the unrescue starts the server with its ports plugged.
        for prefix in ('qbr', 'qvb'):
            ovs.run('ip', 'link', 'del', prefix + hybrid['id'][:11])
        self.api.post_server_action(server['id'], {'unrescue': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertWired(hybrid, server, 'eth0', hybrid=True)

    def test_hot_plug_and_unplug_on_a_running_container(self):
        first, second = self.port(), self.port(hybrid=True)
        # A bandwidth quota (KB/s) reaches every nic, hot-plugged ones
        # too. (Only inbound here: LXD shapes outbound traffic with tc's
        # police action, which this test machine's kernel lacks.)
        flavor = self._create_flavor(
            name='shaped', vcpu=1, memory_mb=256, disk=1, ephemeral=0,
            extra_spec={'quota:vif_inbound_average': '1000'})
        server = self.boot_with(first, flavor_id=flavor)
        self.assertEqual({'lo', 'eth0'}, self.interfaces(server))

        self._attach_interface(server, second['id'])
        self.assertEqual('Running', self.container(server)['status'])
        self.assertEqual({'lo', 'eth0', 'eth1'}, self.interfaces(server))
        self.assertWired(second, server, 'eth1', hybrid=True)
        nics = {k: d for k, d in self.container(server)['devices'].items()
                if d['type'] == 'nic'}
        self.assertEqual(['8000kbit'] * 2,
                         [d['limits.ingress'] for d in nics.values()])
        for port in (first, second):
            # LXD shapes the host end: htb at 8 Mbit/s.
            self.assertIn('rate 8Mbit', ovs.run(
                'tc', 'class', 'show', 'dev', 'tap' + port['id'][:11]))

        self._detach_interface(server, second['id'])
        self.assertEqual({'lo', 'eth0'}, self.interfaces(server))
        self.assertGone(second)
        self.assertWired(first, server, 'eth0', hybrid=False)
        self.assertNotIn('nova-port-' + second['id'],
                         self.container(server)['devices'])

    def test_boot_waits_for_network_vif_plugged(self):
        port = self.port(status='DOWN')
        server = self.boot_with(port, expected_state='BUILD')
        # Nova waits for Neutron: the container runs, the server builds.
        for _ in range(120):
            server = self._show_server(server)
            if self.running(server):
                break
            time.sleep(0.5)
        time.sleep(1)
        self.assertEqual('BUILD', self._show_server(server)['status'])
        self.admin_api.create_server_external_events([{
            'name': 'network-vif-plugged', 'server_uuid': server['id'],
            'tag': port['id'], 'status': 'completed'}])
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertWired(port, server, 'eth0', hybrid=False)

    def test_no_event_in_time_fails_the_boot_and_leaves_nothing(self):
        self.flags(vif_plugging_timeout=2)
        port = self.port(hybrid=True, status='DOWN')
        before = self.container_names()
        server = self.boot_with(port, expected_state='ERROR')
        self.assertIn('Failed to allocate the network',
                      server['fault']['message'])
        self.assertEqual(before, self.container_names())
        self.assertGone(port)

    def test_linux_bridge_port_fails_the_boot_and_leaves_nothing(self):
        port = self.port()
        port['binding:vif_type'] = 'bridge'
        before = self.container_names()
        # Nova 34's network API itself refuses Linux bridge ports (Nova
        # then reschedules, its fault says the retries are exhausted); the
        # driver never gets to create anything.
        self.boot_with(port, expected_state='ERROR')
        self.assertEqual(before, self.container_names())
        self.assertGone(port)

    def test_vif_type_lxd_cannot_take_fails_before_anything_is_created(self):
        port = self.port()
        port['binding:vif_type'] = 'tap'
        before = self.container_names()
        server = self.boot_with(port, expected_state='ERROR')
        self.assertIn('binding:vif_type tap', server['fault']['message'])
        self.assertIn('Open vSwitch', server['fault']['message'])
        self.assertEqual(before, self.container_names())
        self.assertGone(port)
