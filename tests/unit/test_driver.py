"""The driver surface with a fake LXD layer (no daemon)."""

from unittest import mock

import fixtures

from nova.compute import power_state
from nova.compute import provider_tree
from nova import exception
from nova import objects
from nova import test
from nova.virt import driver as virt_driver
from oslo_utils.fixture import uuidsentinel as uuids

from nova_lxd import driver
from nova_lxd.lxd import errors
from tests.unit import data
from tests.unit import fakes


class DriverTestCase(test.NoDBTestCase):
    """A driver started on a FakeLXD cluster of lxd1 and lxd2."""

    def setUp(self):
        super().setUp()
        self.useFixture(test.fixtures.MockPatch(
            'nova_lxd.lxd.client.LXD', fakes.FakeLXD))
        self.flags(members=['*'], group='lxd')
        self.driver = driver.LXDDriver(mock.sentinel.virtapi)
        self.driver.init_host('compute1')
        self.lxd = self.driver.lxd

    def no_cloud_init(self):
        """Spawn without Nova's metadata (it needs Nova's database)."""
        for name, fake in (('instance_metadata_of', lambda *a: None),
                           ('cloud_init_keys', lambda *a: {}),
                           ('config_drive_files', lambda *a: {})):
            self.useFixture(fixtures.MonkeyPatch(
                'nova_lxd.cloud_init.' + name, fake))


class DriverTest(DriverTestCase):

    def test_loaded_by_nova_as_lxd_LXDDriver(self):
        loaded = virt_driver.load_compute_driver(mock.sentinel.virtapi,
                                                 'lxd.LXDDriver')
        self.assertIsInstance(loaded, driver.LXDDriver)

    def test_one_node_per_member_with_stable_uuids(self):
        self.assertEqual(['lxd1', 'lxd2'], self.driver.get_available_nodes())
        by_uuid = self.driver.get_nodenames_by_uuid()
        self.assertEqual({'lxd1', 'lxd2'}, set(by_uuid.values()))
        again = driver.LXDDriver(mock.sentinel.virtapi)
        again.init_host('compute1')
        self.assertEqual(by_uuid, again.get_nodenames_by_uuid())

    def test_default_members_is_the_host(self):
        self.flags(members=[], group='lxd')
        self.driver.init_host('lxd2')
        self.assertEqual(['lxd2'], self.driver.get_available_nodes())

    def test_available_resource_from_lxd(self):
        res = self.driver.get_available_resource('lxd2')
        self.assertEqual('lxd', res['hypervisor_type'])
        self.assertEqual(5000002, res['hypervisor_version'])
        self.assertEqual(data.VCPUS, res['vcpus'])
        self.assertEqual(data.MEMORY_MB, res['memory_mb'])
        self.assertEqual(data.DISK_GB, res['local_gb'])
        self.assertEqual(self.driver.get_nodenames_by_uuid().keys(),
                         {res['uuid']} | {
                             self.driver.get_available_resource('lxd1')[
                                 'uuid']})
        self.assertEqual([('x86_64', 'lxd', 'exe')],
                         res['supported_instances'])
        self.assertEqual([('resources', 'lxd2'), ('pool_resources', 'lxd2'),
                          ('resources', 'lxd1'), ('pool_resources', 'lxd1')],
                         self.lxd.calls)

    def test_a_dir_pool_needs_the_operators_consent(self):
        self.useFixture(fixtures.MockPatchObject(
            fakes.FakeLXD, 'pool_driver', 'dir'))
        e = self.assertRaises(exception.InvalidConfiguration,
                              self.driver.init_host, 'compute1')
        self.assertIn('LXD storage pool "default" ([lxd] storage_pool) is a '
                      'dir pool', str(e))
        self.assertIn('[lxd] allow_dir_pool = True', str(e))
        self.flags(allow_dir_pool=True, group='lxd')
        self.driver.init_host('compute1')

    def test_the_driver_names_the_disks(self):
        inst = fakes.instance(uuid=uuids.one)
        self.assertEqual('/dev/vda', self.driver.default_root_device_name(
            inst, None, None))
        bdm = objects.BlockDeviceMapping(device_name='/dev/../x',
                                         boot_index=-1, volume_id=uuids.v)
        bdm.save = mock.Mock()
        self.driver.default_device_names_for_instance(inst, '/dev/vda', [],
                                                      [], [], [bdm])
        self.assertEqual('/dev/vdb', bdm.device_name)
        self.assertEqual('/dev/vdc', self.driver.get_device_name_for_instance(
            inst, [bdm], objects.BlockDeviceMapping(device_name='/dev/vdb',
                                                    volume_id=uuids.w)))

    def test_unknown_node_has_no_resources(self):
        self.assertEqual({}, self.driver.get_available_resource('lxd9'))

    def _inventory(self, nodename):
        tree = provider_tree.ProviderTree()
        tree.new_root(nodename, uuids.node)
        self.driver.update_provider_tree(tree, nodename)
        return tree.data(nodename).inventory

    def test_provider_inventory_honours_ratios_and_reserved(self):
        self.flags(cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0,
                   disk_allocation_ratio=1.5, reserved_host_cpus=1,
                   reserved_host_memory_mb=512, reserved_host_disk_mb=1500)
        inv = self._inventory('lxd1')
        self.assertEqual({'total': data.VCPUS, 'reserved': 1,
                          'allocation_ratio': 4.0, 'min_unit': 1,
                          'max_unit': data.VCPUS, 'step_size': 1},
                         inv['VCPU'])
        self.assertEqual((data.MEMORY_MB, 512, 1.0),
                         (inv['MEMORY_MB']['total'],
                          inv['MEMORY_MB']['reserved'],
                          inv['MEMORY_MB']['allocation_ratio']))
        self.assertEqual((data.DISK_GB, 2, 1.5),
                         (inv['DISK_GB']['total'],
                          inv['DISK_GB']['reserved'],
                          inv['DISK_GB']['allocation_ratio']))

    def test_provider_tree_reuses_the_audit_read(self):
        self.driver.get_available_resource('lxd1')
        self._inventory('lxd1')
        self.assertEqual([('resources', 'lxd1'), ('pool_resources', 'lxd1')],
                         self.lxd.calls)

    def test_lists_only_its_containers_on_its_members_in_one_request(self):
        self.flags(members=['lxd1'], group='lxd')
        self.driver.init_host('compute1')
        self.lxd = self.driver.lxd
        self.lxd.lxd_instances = [
            fakes.lxd_instance('instance-1', 'lxd1', uuids.one),
            fakes.lxd_instance('not-nova', 'lxd1'),
            fakes.lxd_instance('instance-2', 'lxd2', uuids.two),
        ]
        self.assertEqual(['instance-1'], self.driver.list_instances())
        self.assertEqual([uuids.one], self.driver.list_instance_uuids())
        self.assertEqual([('instances',)] * 2, self.lxd.calls)

    def test_get_info(self):
        inst = fakes.instance(uuid=uuids.one)
        self.lxd.states[inst.name] = {'status_code': 103}
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_info(inst).state)
        self.lxd.states[inst.name] = {'status_code': 102}
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.get_info(inst).state)

    def test_get_info_after_a_listing_needs_no_request(self):
        inst = fakes.instance(uuid=uuids.one, node='lxd1')
        self.lxd.lxd_instances = [
            fakes.lxd_instance(inst.name, 'lxd1', uuids.one)]
        self.driver.list_instances()
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_info(inst).state)
        self.assertEqual([('instances',)], self.lxd.calls)
        self.lxd.states[inst.name] = {'status_code': 102}
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.get_info(inst, use_cache=False).state)

    def test_power_off_asks_lxd_not_the_listing(self):
        inst = fakes.instance(uuid=uuids.one, node='lxd1')
        self.lxd.lxd_instances = [
            fakes.lxd_instance(inst.name, 'lxd1', uuids.one)]
        self.driver.list_instances()     # the power sync's: Running
        self.lxd.states[inst.name] = {'status_code': 102}    # stopped since
        actions = []
        self.lxd.change_state = lambda name, action, **kw: actions.append(
            action)
        self.driver.power_off(inst)
        self.assertEqual([], actions)
        self.lxd.states[inst.name] = {'status_code': 103}
        self.driver.power_off(inst)
        self.assertEqual(['stop'], actions)

    def test_get_info_of_missing_container(self):
        # Deleted behind Nova's back: it is off (Nova's power-state sync
        # marks it SHUTOFF).
        inst = fakes.instance(uuid=uuids.nine)
        for use_cache in (True, False):
            self.assertEqual(power_state.SHUTDOWN, self.driver.get_info(
                inst, use_cache=use_cache).state)

    def test_offline_members_containers_have_no_state(self):
        inst = fakes.instance(uuid=uuids.one, node='lxd1')
        self.lxd.lxd_instances = [{'name': inst.name, 'location': 'lxd1',
                                   'config': None, 'status_code': 112}]
        self.assertEqual([], self.driver.list_instances())
        self.assertEqual(power_state.NOSTATE,
                         self.driver.get_info(inst).state)

    def gpu_spawn(self, allocations):
        """Spawn with the recorded RTX 2080 Ti + GTX 1080 Ti host as lxd1."""
        tree = provider_tree.ProviderTree()
        tree.new_root('lxd1', uuids.node)
        recorded = dict(data.RESOURCES,
                        gpu=data.load(data.ASPEED_RTX))
        self.lxd.resources = lambda member: recorded
        self.driver.get_available_resource('lxd1')
        self.driver.update_provider_tree(tree, 'lxd1')
        rtx = tree.data('lxd1_gpu_10de_1e04').uuid
        self.lxd.api_extensions = ['gpu_devices', 'gpu_mdev']
        created = []
        self.lxd.create_instance = lambda body, member: created.append(
            (body, member))
        self.lxd.change_state = lambda name, action, **kw: None
        self.driver.images = fakes.FakeImages()
        self.no_cloud_init()
        inst = fakes.instance(uuid=uuids.one, node='lxd1',
                              image_ref=uuids.image)
        inst.flavor = objects.Flavor(name='gpu', vcpus=1, memory_mb=256,
                                     root_gb=1, ephemeral_gb=0, swap=0,
                                     extra_specs={})
        allocations = allocations(rtx)
        self.driver.spawn(None, inst, None, [], None, allocations)
        return created

    def test_gpu_allocation_names_the_card_of_the_allocated_model(self):
        created = self.gpu_spawn(lambda rtx: {
            rtx: {'resources': {'PGPU': 1}},
            uuids.node: {'resources': {'VCPU': 1}}})
        (body, member), = created
        self.assertEqual('lxd1', member)
        gpus = {n: d for n, d in body['devices'].items() if d['type'] == 'gpu'}
        # The RTX 2080 Ti of the recording, by its PCI address.
        self.assertEqual({'nova-gpu-0': {'type': 'gpu', 'gputype': 'physical',
                                         'pci': '0000:03:00.0'}}, gpus)

    def test_card_held_in_another_project_is_not_given(self):
        self.lxd.other_projects = [dict(
            fakes.lxd_instance('jupyter', 'lxd1', None), project='team-a',
            devices={'gpu': {'type': 'gpu', 'pci': '0000:03:00.0'}})]
        log = self.useFixture(fixtures.FakeLogger())
        e = self.assertRaises(exception.BuildAbortException, self.gpu_spawn,
                              lambda rtx: {rtx: {'resources': {'PGPU': 1}}})
        # The tenant's fault names no other project's container; the
        # operator's log does.
        self.assertIn('1 x PGPU of GPU model 10de:1e04 asked, 0 free',
                      str(e))
        self.assertNotIn('jupyter', str(e))
        self.assertNotIn('team-a', str(e))
        self.assertIn('held by: team-a/jupyter (0000:03:00.0)', log.output)

    def test_no_gpu_device_without_a_gpu_allocation(self):
        created = self.gpu_spawn(lambda rtx: {
            uuids.node: {'resources': {'VCPU': 1}}})
        (body, _), = created
        self.assertFalse([d for d in body['devices'].values()
                          if d['type'] == 'gpu'])


class ConsoleAndDiagnosticsTest(DriverTestCase):

    def setUp(self):
        super().setUp()
        self.inst = fakes.instance(uuid=uuids.one, node='lxd1')
        self.steps = []
        self.lxd.change_state = lambda name, action, **kw: self.steps.append(
            (action, kw))
        self.lxd.console_log = lambda name, limit: (
            self.steps.append(('console_log',)) or (b'halting\n', True))

    def test_reboot_reads_the_console_log_between_stop_and_start(self):
        self.lxd.states[self.inst.name] = {'status_code': 103}
        self.lxd.instance = lambda name: fakes.lxd_instance(
            name, 'lxd1', uuids.one)
        self.driver.reboot(None, self.inst, [], 'HARD')
        self.assertEqual([('stop', {'force': True}), ('console_log',),
                          ('start', {})], self.steps)
        self.assertEqual(b'halting\n',
                         self.driver.console._logs[self.inst.name].kept)

    def test_reboot_refused_by_the_gates_leaves_it_running(self):
        self.lxd.states[self.inst.name] = {'status_code': 103}
        self.lxd.instance = lambda name: dict(
            fakes.lxd_instance(name, 'lxd1', uuids.one),
            expanded_config={'security.nesting': 'true'})
        e = self.assertRaises(exception.InstancePowerOnFailure,
                              self.driver.reboot, None, self.inst, [], 'SOFT')
        self.assertIn('nested containers', str(e))
        self.assertEqual([], self.steps)

    def test_instance_diagnostics(self):
        self.lxd.instance_with_state = lambda name: {
            'status_code': 103, 'last_used_at': '2026-11-30T18:30:09Z',
            'expanded_config': {'limits.memory': '256MiB'},
            'state': {'status_code': 103, 'cpu': {'usage': 5},
                      'memory': {'usage': 1048576}}}
        self.inst.system_metadata = {}
        diags = self.driver.get_instance_diagnostics(self.inst)
        self.assertEqual(('running', 256, 1, 5),
                         (diags.state, diags.memory_details.maximum,
                          diags.memory_details.used,
                          diags.cpu_details[0].time))

    def test_instance_diagnostics_of_a_missing_container(self):
        def gone(name):
            raise errors.LXDNotFound(reason='not found')
        self.lxd.instance_with_state = gone
        self.assertRaises(exception.InstanceNotFound,
                          self.driver.get_instance_diagnostics, self.inst)

    def test_host_uptime_of_the_local_member_only(self):
        self.assertRaises(NotImplementedError,
                          self.driver.get_host_uptime)
        self.driver._local_member = 'lxd1'
        self.assertRegex(self.driver.get_host_uptime(),
                         r'^ \d\d:\d\d:\d\d up .*,  load average: '
                         r'\d+\.\d\d, \d+\.\d\d, \d+\.\d\d$')


class NetworkHooksTest(DriverTestCase):
    """Ports at spawn, attach and detach, with os-vif and LXD faked."""

    def setUp(self):
        super().setUp()
        self.no_cloud_init()
        self.plug = self.useFixture(fixtures.MockPatch('os_vif.plug')).mock
        self.unplug = self.useFixture(
            fixtures.MockPatch('os_vif.unplug')).mock
        self.exists = self.useFixture(fixtures.MockPatch(
            'nova.privsep.linux_net.device_exists', return_value=False)).mock
        self.make_pair = self.useFixture(fixtures.MockPatch(
            'vif_plug_ovs.linux_net.create_veth_pair')).mock
        self.driver.vifs.local_member = 'lxd1'
        self.inst = fakes.instance(
            uuid=uuids.one, node='lxd1',
            image_ref=uuids.image)
        self.inst.flavor = objects.Flavor(name='small', vcpus=1,
                                          memory_mb=256, root_gb=1,
                                          ephemeral_gb=0, swap=0,
                                          extra_specs={})
        self.lxd.create_instance = mock.Mock()
        self.lxd.update_instance = mock.Mock()
        self.lxd.remove_device = mock.Mock(return_value=True)
        self.lxd.instance = lambda name: {'devices': {
            'root': {'type': 'disk'},
            'nova-port-x': {'type': 'nic', 'name': 'eth0'}}}
        self.driver.images = mock.Mock()

    def test_ports_plugged_before_the_metadata_and_the_container(self):
        calls = mock.Mock()
        self.plug.side_effect = lambda *a: calls.plug()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.cloud_init.instance_metadata_of',
            lambda *a: calls.metadata()))
        self.lxd.create_instance.side_effect = lambda *a: calls.create()
        self.lxd.change_state = lambda *a: calls.start()
        self.driver.vifs.virtapi = mock.MagicMock()
        self.driver.spawn(None, self.inst, None, [], None, {},
                          network_info=[fakes.vif()])
        self.assertEqual([mock.call.plug(), mock.call.metadata(),
                          mock.call.create(), mock.call.start()],
                         calls.mock_calls)

    def test_unsupported_port_fails_spawn_before_anything_is_made(self):
        port = fakes.vif(vif_type='bridge')
        e = self.assertRaises(exception.BuildAbortException,
                              self.driver.spawn, None, self.inst, None, [],
                              None, {}, network_info=[port])
        self.assertIn('binding:vif_type bridge', str(e))
        self.driver.images.ensure.assert_not_called()
        self.lxd.create_instance.assert_not_called()
        self.plug.assert_not_called()

    def test_attach_plugs_and_adds_the_next_interface_live(self):
        port = fakes.vif(fakes.NATIVE)
        self.driver.attach_interface(None, self.inst, None, port)
        self.plug.assert_called_once()
        self.make_pair.assert_called_once()
        (name, patch), _ = self.lxd.update_instance.call_args
        device = patch['devices']['nova-port-' + port['id']]
        self.assertEqual(('eth1', 'physical'),
                         (device['name'], device['nictype']))

    def test_attach_refused_by_lxd_unplugs(self):
        self.lxd.update_instance.side_effect = driver.errors.LXDError(
            reason='bad nic')
        self.assertRaises(exception.InterfaceAttachFailed,
                          self.driver.attach_interface, None, self.inst,
                          None, fakes.vif(fakes.HYBRID))
        self.unplug.assert_called_once()

    def test_detach_removes_the_device_then_unplugs(self):
        port = fakes.vif(fakes.HYBRID)
        self.driver.detach_interface(None, self.inst, port)
        self.lxd.remove_device.assert_called_once_with(
            self.inst.name, 'nova-port-' + port['id'])
        self.unplug.assert_called_once()

    def lifecycle(self, running):
        """What LXD and os-vif are asked, in order, on a fake container."""
        calls = mock.Mock()
        self.plug.side_effect = lambda *a: calls.plug()
        self.unplug.side_effect = lambda *a: calls.unplug()
        self.lxd.change_state = lambda name, action, **kw: getattr(
            calls, action)(**kw)
        self.driver.console = mock.Mock()
        state = power_state.RUNNING if running else power_state.SHUTDOWN
        self.driver.get_info = lambda inst, use_cache=True: mock.Mock(
            state=state)
        return calls

    def test_reboot_stops_plugs_the_ports_again_then_starts(self):
        # A start makes new host devices: an OVS port kept across it reads
        # the old one in the userspace datapath.
        self.flags(shutdown_timeout=42)
        for reboot_type, stop in (('SOFT', mock.call.stop(timeout=42)),
                                  ('HARD', mock.call.stop(force=True))):
            calls = self.lifecycle(running=True)
            self.driver.reboot(None, self.inst, [fakes.vif(fakes.NATIVE)],
                               reboot_type)
            self.assertEqual([stop, mock.call.unplug(), mock.call.plug(),
                              mock.call.start()], calls.mock_calls)

    def test_reboot_refused_before_the_stop_when_the_start_would_be(self):
        calls = self.lifecycle(running=True)
        self.lxd.instance = lambda name: {
            'config': {'security.privileged': 'true'}, 'devices': {}}
        self.assertRaises(exception.InstancePowerOnFailure,
                          self.driver.reboot, None, self.inst,
                          [fakes.vif(fakes.NATIVE)], 'SOFT')
        self.assertEqual([], calls.mock_calls)

    def test_power_on_plugs_the_ports_again_then_starts(self):
        calls = self.lifecycle(running=False)
        self.driver.power_on(None, self.inst, [fakes.vif(fakes.NATIVE)])
        self.assertEqual([mock.call.unplug(), mock.call.plug(),
                          mock.call.start()], calls.mock_calls)
        # A veth pair that outlived the stop stays plugged.
        self.exists.return_value = True
        calls = self.lifecycle(running=False)
        self.driver.power_on(None, self.inst, [fakes.vif(fakes.NATIVE)])
        self.assertEqual([mock.call.plug(), mock.call.start()],
                         calls.mock_calls)
