"""Neutron ports -> os-vif objects and LXD nic devices (pure), and the
plug / wait / undo sequence with a fake virtapi."""

import contextlib
from unittest import mock

from nova import exception
from nova import objects
from nova import test
from oslo_utils.fixture import uuidsentinel as uuids

from nova_lxd import network
from tests.unit import fakes


class NicDeviceTest(test.NoDBTestCase):

    def test_hybrid_plug_is_a_bridged_nic_on_the_port_bridge(self):
        port = fakes.vif(fakes.HYBRID)
        self.assertEqual(
            {'type': 'nic', 'nictype': 'bridged', 'name': 'eth0',
             'parent': 'qbr' + uuids.port[:11],
             'host_name': 'tap' + uuids.port[:11], 'hwaddr': fakes.MAC,
             'mtu': '1450'},
            network.nic_device(port, network.osvif_vif(port), 'eth0', {}))

    def test_native_ovs_is_a_physical_nic_on_the_veth_made_at_plug(self):
        for details in (fakes.NATIVE, fakes.OVN):
            port = fakes.vif(details)
            obj = network.osvif_vif(port)
            # os-vif adds tapXXX to br-int with Neutron's iface-id.
            self.assertTrue(obj.port_profile.create_port)
            self.assertEqual(uuids.port, obj.port_profile.interface_id)
            self.assertEqual('br-int', obj.network.bridge)
            self.assertTrue(network.paired_at_plug(obj, {}))
            # LXD moves the pair's other end into the container.
            self.assertEqual(
                {'type': 'nic', 'nictype': 'physical', 'name': 'eth1',
                 'parent': 'nlx' + uuids.port[:11], 'hwaddr': fakes.MAC,
                 'mtu': '1450'},
                network.nic_device(port, obj, 'eth1', {}))

    def test_native_ovs_with_vif_quotas_is_a_p2p_nic_lxd_shapes(self):
        port = fakes.vif(fakes.NATIVE)
        obj = network.osvif_vif(port)
        quota = {'quota:vif_inbound_average': '1000'}
        self.assertFalse(network.paired_at_plug(obj, quota))
        self.assertEqual(
            {'type': 'nic', 'nictype': 'p2p', 'name': 'eth0',
             'host_name': 'tap' + uuids.port[:11], 'hwaddr': fakes.MAC,
             'mtu': '1450', 'limits.ingress': '8000kbit'},
            network.nic_device(port, obj, 'eth0', quota))

    def test_hybrid_plug_makes_no_pair(self):
        port = fakes.vif(fakes.HYBRID)
        self.assertFalse(network.paired_at_plug(network.osvif_vif(port), {}))

    def test_no_mtu_when_neutron_gives_none(self):
        port = fakes.vif(fakes.NATIVE, mtu=None)
        self.assertNotIn('mtu', network.nic_device(
            port, network.osvif_vif(port), 'eth0', {}))

    def test_vif_quotas_become_nic_limits(self):
        port = fakes.vif(fakes.HYBRID)
        device = network.nic_device(
            port, network.osvif_vif(port), 'eth0',
            {'quota:vif_inbound_average': '1000',
             'quota:vif_outbound_average': '125'})
        # Nova's KB/s as LXD bit rates.
        self.assertEqual(('8000kbit', '1000kbit'),
                         (device['limits.ingress'], device['limits.egress']))

    def test_bad_vif_quota_is_refused(self):
        port = fakes.vif(fakes.HYBRID)
        self.assertRaises(exception.InvalidInput, network.nic_device,
                          port, network.osvif_vif(port), 'eth0',
                          {'quota:vif_inbound_average': 'fast'})

    def test_ports_are_eth0_eth1_in_order(self):
        devices = network.nic_devices(
            [fakes.vif(fakes.HYBRID, port=uuids.a),
             fakes.vif(fakes.NATIVE, port=uuids.b)], {})
        self.assertEqual(
            {'nova-port-' + uuids.a: ('eth0', 'bridged'),
             'nova-port-' + uuids.b: ('eth1', 'physical')},
            {k: (d['name'], d['nictype']) for k, d in devices.items()})
        self.assertEqual({}, network.nic_devices(None, {}))
        # cloud-init's network config names them the same.
        self.assertEqual({uuids.a: 'eth0', uuids.b: 'eth1'},
                         network.interface_names([{'id': uuids.a},
                                                  {'id': uuids.b}]))

    def test_hot_plugged_port_takes_the_first_free_name(self):
        devices = {'root': {'type': 'disk', 'path': '/'},
                   'a': {'type': 'nic', 'name': 'eth0'},
                   'b': {'type': 'nic', 'name': 'eth2'}}
        self.assertEqual('eth1', network.free_interface(devices))
        self.assertEqual('eth0', network.free_interface({}))


class RefusedTest(test.NoDBTestCase):

    def assertRefused(self, port, *words):
        e = self.assertRaises(network.VIFError, network.nic_devices,
                              [port], {})
        for word in (port['id'],) + words:
            self.assertIn(word, str(e))

    def test_linux_bridge_is_refused(self):
        self.assertRefused(fakes.vif(vif_type='bridge'),
                           'binding:vif_type bridge',
                           'Open vSwitch')

    def test_other_vif_types_are_refused(self):
        for vif_type in ('hw_veb', 'vhostuser', 'binding_failed', 'tap'):
            self.assertRefused(fakes.vif(vif_type=vif_type), vif_type)

    def test_direct_ovs_port_is_refused(self):
        self.assertRefused(fakes.vif(fakes.NATIVE, vnic_type='direct'),
                           'vnic_type direct', 'vnic_type normal')


class FakeVirtAPI(object):
    """wait_for_instance_event that records and may time out."""

    def __init__(self, timeout=False):
        self.timeout = timeout
        self.waited = []

    @contextlib.contextmanager
    def wait_for_instance_event(self, instance, events, timeout,
                                error_callback):
        yield
        self.waited.append((events, timeout))
        if self.timeout and events:
            raise exception.InstanceEventTimeout()


class PluggedTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.plug = self.useFixture(test.fixtures.MockPatch(
            'os_vif.plug')).mock
        self.unplug = self.useFixture(test.fixtures.MockPatch(
            'os_vif.unplug')).mock
        # The host's devices: none there yet.
        self.exists = self.useFixture(test.fixtures.MockPatch(
            'nova.privsep.linux_net.device_exists', return_value=False)).mock
        self.make_pair = self.useFixture(test.fixtures.MockPatch(
            'vif_plug_ovs.linux_net.create_veth_pair')).mock
        self.instance = fakes.instance(
            uuid=uuids.instance, node='lxd1')
        self.instance.flavor = objects.Flavor(extra_specs={})
        self.virtapi = FakeVirtAPI()
        self.vifs = network.VIFs(self.virtapi, mock.Mock(), 'lxd1')
        self.vifs.lxd.instance.return_value = {'devices': {}}
        self.cleanup = mock.Mock()
        self.ports = [fakes.vif(fakes.HYBRID, port=uuids.up),
                      fakes.vif(fakes.NATIVE, port=uuids.down, active=False)]
        self.flags(vif_plugging_timeout=30)

    def spawn(self, power_on=True, body=None):
        with self.vifs.plugged(self.instance, self.ports, power_on,
                               self.cleanup):
            # Plugged before the container is created.
            self.assertTrue(self.plug.called)
            if body:
                body()

    def test_waits_for_the_ports_not_yet_active(self):
        self.spawn()
        self.assertEqual([([('network-vif-plugged', uuids.down)], 30)],
                         self.virtapi.waited)
        self.cleanup.assert_not_called()
        self.unplug.assert_not_called()

    def test_no_wait_when_not_started_or_no_timeout(self):
        self.spawn(power_on=False)
        self.flags(vif_plugging_timeout=0)
        self.spawn()
        self.assertEqual([([], 30), ([], 0)], self.virtapi.waited)

    def test_timeout_fatal_removes_container_and_unplugs(self):
        self.virtapi.timeout = True
        self.assertRaises(exception.VirtualInterfaceCreateException,
                          self.spawn)
        self.cleanup.assert_called_once_with()
        self.assertEqual(2, self.unplug.call_count)

    def test_timeout_not_fatal_keeps_the_server(self):
        self.virtapi.timeout = True
        self.flags(vif_plugging_is_fatal=False)
        self.spawn()
        self.cleanup.assert_not_called()
        self.unplug.assert_not_called()

    def test_failed_spawn_unplugs_even_if_cleanup_fails(self):
        self.cleanup.side_effect = RuntimeError('LXD gone')

        def fail():
            raise ValueError('create failed')
        self.assertRaises(RuntimeError, self.spawn, body=fail)
        self.assertEqual(2, self.unplug.call_count)

    def test_failed_event_is_fatal(self):
        self.assertRaises(exception.VirtualInterfaceCreateException,
                          self.vifs._failed_event, 'network-vif-plugged',
                          self.instance)

    def test_os_vif_failure_names_the_port(self):
        from os_vif import exception as osv_exception
        self.plug.side_effect = osv_exception.PlugException(
            vif='v', err='ovsdb unreachable')
        e = self.assertRaises(network.VIFError, self.vifs.plug,
                              self.instance, self.ports)
        self.assertIn(uuids.up, str(e))
        self.assertIn('ovsdb unreachable', str(e))

    def test_plug_makes_the_native_port_s_veth_pair_before_os_vif(self):
        calls = mock.Mock()
        self.make_pair.side_effect = lambda *a: calls.make_pair(*a)
        self.plug.side_effect = lambda obj, info: calls.plug(obj.vif_name)
        self.vifs.plug(self.instance, self.ports)
        up, down = 'tap' + uuids.up[:11], 'tap' + uuids.down[:11]
        # Hybrid: os-vif makes its bridge and veth; LXD the tap at start.
        self.assertEqual(
            [mock.call.plug(up),
             mock.call.make_pair(down, 'nlx' + uuids.down[:11], 1450),
             mock.call.plug(down)], calls.mock_calls)

    def test_plug_keeps_a_pair_that_is_there(self):
        # nova-compute restarted beside a running container.
        self.exists.return_value = True
        self.vifs.plug(self.instance, self.ports)
        self.make_pair.assert_not_called()
        self.assertEqual(2, self.plug.call_count)

    def test_failed_pair_names_the_port_and_plugs_nothing_more(self):
        self.make_pair.side_effect = OSError('File exists')
        e = self.assertRaises(network.VIFError, self.vifs.plug,
                              self.instance, self.ports[1:])
        self.assertIn(uuids.down, str(e))
        self.assertIn('File exists', str(e))
        self.plug.assert_not_called()

    def test_replug_unplugs_only_the_ports_whose_device_is_gone(self):
        # The native port's pair outlived the stop; the hybrid port's tap
        # went with it.
        self.exists.side_effect = lambda name: name == 'tap' + uuids.down[:11]
        self.vifs.replug(self.instance, self.ports)
        self.assertEqual(['tap' + uuids.up[:11]],
                         [c.args[0].vif_name for c in
                          self.unplug.call_args_list])
        self.assertEqual(2, self.plug.call_count)
        self.make_pair.assert_not_called()
        # No p2p nic of before to look for: LXD is not asked.
        self.vifs.lxd.instance.assert_not_called()

    def test_replug_turns_a_p2p_nic_of_before_into_the_pair_s(self):
        # A container made by an earlier nova-lxd: p2p nics, no pairs.
        self.vifs.lxd.instance.return_value = {'devices': {
            'nova-port-' + uuids.up: {'type': 'nic', 'nictype': 'bridged',
                                      'name': 'eth0'},
            'nova-port-' + uuids.down: {'type': 'nic', 'nictype': 'p2p',
                                        'name': 'eth1'}}}
        self.vifs.replug(self.instance, self.ports)
        self.make_pair.assert_called_once()
        self.vifs.lxd.update_instance.assert_called_once_with(
            self.instance.name, {'devices': {'nova-port-' + uuids.down: {
                'type': 'nic', 'nictype': 'physical', 'name': 'eth1',
                'parent': 'nlx' + uuids.down[:11], 'hwaddr': fakes.MAC,
                'mtu': '1450'}}})
        # Made since: nothing to change.
        self.vifs.lxd.update_instance.reset_mock()
        self.vifs.lxd.instance.return_value = {'devices': {}}
        self.vifs.replug(self.instance, self.ports)
        self.vifs.lxd.update_instance.assert_not_called()

    def test_unplug_goes_on_after_a_failure_and_skips_refused_ports(self):
        self.unplug.side_effect = [RuntimeError('gone'), None]
        self.vifs.unplug(self.instance,
                         self.ports + [fakes.vif(vif_type='bridge')])
        self.assertEqual(2, self.unplug.call_count)

    def test_ports_only_on_the_member_nova_compute_runs_on(self):
        self.instance.node = 'lxd2'
        e = self.assertRaises(network.VIFError, self.vifs.devices,
                              self.instance, self.ports)
        self.assertIn('lxd2', str(e))
        self.assertEqual({}, self.vifs.devices(self.instance, []))
