"""Resize on the container's member: checks first, then changes live."""

import contextlib
import copy
from unittest import mock

import fixtures
from nova import exception
from nova import objects
from nova import test
from oslo_utils.fixture import uuidsentinel as uuids

from nova_lxd import container
from nova_lxd import migration
from tests.unit import fakes

FOUND = {
    'config': {'limits.cpu': '1', 'limits.memory': '256MiB'},
    'devices': {'root': {'type': 'disk', 'path': '/', 'pool': 'p',
                         'size': '1GiB'}},
    'profiles': [],
}


def flavor(name='small', vcpus=1, ephemeral_gb=0, swap=0, extra_specs=None):
    return objects.Flavor(name=name, vcpus=vcpus, memory_mb=256 * vcpus,
                          root_gb=1, ephemeral_gb=ephemeral_gb, swap=swap,
                          extra_specs=extra_specs or {})


class FakeGPUs(object):

    def __init__(self):
        self.claims = []
        self.removed = 0

    @contextlib.contextmanager
    def claimed(self, instance, specs, allocations, holding=False):
        self.claims.append((specs, allocations, holding))
        yield container.Part(devices={'nova-gpu-0': {'type': 'gpu',
                                                     'pci': '0000:05:00.0'}})

    def remove_unused_profiles(self):
        self.removed += 1


class MigrationsTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.lxd = mock.Mock()
        self.lxd.instance.return_value = copy.deepcopy(FOUND)
        self.disks = mock.Mock()
        self.gpus = FakeGPUs()
        self.vifs = mock.Mock()
        self.migrations = migration.Migrations(self.lxd, self.disks,
                                               self.vifs, self.gpus)
        self.instance = fakes.instance(
            uuid=uuids.server, node='lxd1',
            flavor=flavor())


class CheckTest(MigrationsTestCase):

    def setUp(self):
        super().setUp()
        self.get = self.useFixture(fixtures.MockPatch(
            'nova.objects.Migration.get_by_id_and_instance')).mock
        self.instance.migration_context = objects.MigrationContext(
            migration_id=7)

    def check(self, new_flavor, source='lxd1', dest='lxd1',
              dest_compute='host1', network_info=None,
              block_device_info=None):
        self.get.return_value = objects.Migration(
            source_node=source, dest_node=dest, source_compute='host1',
            dest_compute=dest_compute)
        return self.migrations.check(None, self.instance, new_flavor,
                                     network_info, block_device_info,
                                     'lxd1', 'host1')

    def test_a_resize_on_the_member(self):
        self.assertEqual('lxd1', self.check(flavor('bigger', vcpus=2))
                         .dest_node)
        self.get.assert_called_once_with(None, 7, uuids.server)

    def test_another_member(self):
        self.assertEqual('lxd2', self.check(flavor(), dest='lxd2')
                         .dest_node)

    def test_wired_servers_stay_with_the_hosts_member(self):
        # One nova-compute for lxd1 and lxd2, on lxd1's host.
        for ports, volumes, what in (
                ([fakes.vif()], None, 'Neutron ports'),
                (None, {'block_device_mapping': [{}]}, 'Cinder volumes')):
            e = self.assertRaises(
                exception.InstanceFaultRollback, self.check, flavor(),
                dest='lxd2', dest_compute='host1', network_info=ports,
                block_device_info=volumes)
            self.assertIsInstance(e.inner_exception,
                                  exception.MigrationPreCheckError)
            self.assertIn('the server has %s' % what,
                          str(e.inner_exception))
            self.assertIn('run a nova-compute on each member',
                          str(e.inner_exception))
        # A nova-compute of its own on lxd2 plugs and connects there.
        self.check(flavor(), dest='lxd2', dest_compute='host2',
                   network_info=[fakes.vif()])

    def test_what_the_operator_does_not_allow_is_refused(self):
        privileged = flavor('root', extra_specs={'lxd:privileged': 'true'})
        e = self.assertRaises(exception.InstanceFaultRollback, self.check,
                              privileged)
        self.assertIn('[lxd] allow_privileged', str(e.inner_exception))
        self.flags(allow_privileged=True, privileged_projects=['other'],
                   group='lxd')
        e = self.assertRaises(exception.InstanceFaultRollback, self.check,
                              privileged)
        self.assertIn('[lxd] privileged_projects', str(e.inner_exception))
        self.flags(privileged_projects=[self.instance.project_id],
                   group='lxd')
        self.check(privileged)      # allowed now: no rollback

    def test_what_the_disks_cannot_follow_is_refused(self):
        self.instance.flavor = flavor(ephemeral_gb=2)
        for new in (flavor('swap', swap=512), flavor('less')):
            e = self.assertRaises(exception.InstanceFaultRollback,
                                  self.check, new)
            self.assertIsInstance(e.inner_exception, exception.ResizeError)


class ApplyFlavorTest(MigrationsTestCase):

    def test_limits_and_root_patched_live_without_gpus(self):
        bigger = flavor('bigger', vcpus=2)
        stop = mock.Mock()
        self.migrations.apply_flavor(self.instance, bigger,
                                     {uuids.node: {'resources': {'VCPU': 2}}},
                                     stop)
        stop.assert_not_called()        # not running
        self.lxd.update_instance.assert_called_once_with(
            self.instance.name, container.resize_patch(
                FOUND, bigger, container.Gates(max_processes=4096)))
        self.lxd.replace_instance.assert_not_called()
        self.lxd.change_state.assert_not_called()
        self.assertEqual([], self.gpus.claims)
        self.disks.apply_flavor.assert_called_once_with(self.instance,
                                                        bigger)

    def test_away_from_privileged_stops_first_then_drops_it(self):
        found = self.lxd.instance.return_value
        found['config']['security.privileged'] = 'true'
        found['status'] = 'Running'
        stop = mock.Mock(side_effect=(
            lambda: self.lxd.update_instance.assert_not_called()))
        self.migrations.apply_flavor(self.instance, flavor(), {}, stop)
        stop.assert_called_once_with()
        (_, patch), _ = self.lxd.update_instance.call_args
        self.assertEqual('', patch['config']['security.privileged'])
        self.lxd.change_state.assert_not_called()   # the caller starts it

    def test_running_a_new_vcpu_count_stops_first_more_memory_does_not(self):
        self.lxd.instance.return_value['status'] = 'Running'
        stop = mock.Mock()
        roomier = flavor('roomier')        # 1 vCPU, as FOUND
        roomier.memory_mb *= 2
        self.migrations.apply_flavor(self.instance, roomier, {}, stop)
        stop.assert_not_called()
        self.migrations.apply_flavor(self.instance, flavor('bigger', 2), {},
                                     stop)
        stop.assert_called_once_with()

    def test_a_gpu_allocation_replaces_the_container_with_its_cards(self):
        self.flags(allow_nvidia_runtime=True, group='lxd')
        bigger = flavor('gpu', extra_specs={'lxd:nvidia_runtime': 'true'})
        allocations = {uuids.gpu: {'resources': {'PGPU': 1}}}
        self.migrations.apply_flavor(self.instance, bigger, allocations,
                                     mock.Mock())
        ((specs, claimed, holding),) = self.gpus.claims
        self.assertEqual((True, allocations, False),
                         (specs.nvidia_runtime, claimed, holding))
        ((name, body), _), = self.lxd.replace_instance.call_args_list
        self.assertEqual(self.instance.name, name)
        self.assertEqual({'type': 'gpu', 'pci': '0000:05:00.0'},
                         body['devices']['nova-gpu-0'])
        self.assertEqual(1, self.gpus.removed)
        self.lxd.update_instance.assert_not_called()

    def test_a_container_holding_gpus_is_replaced_without_gpus_too(self):
        self.lxd.instance.return_value['devices']['nova-gpu-0'] = {
            'type': 'gpu', 'pci': '0000:03:00.0'}
        self.migrations.apply_flavor(self.instance, flavor(), {}, mock.Mock())
        ((_, _, holding),) = self.gpus.claims
        self.assertTrue(holding)
        self.lxd.replace_instance.assert_called_once()

    def test_revert_applies_the_allocations_placement_gave_back(self):
        client = self.useFixture(fixtures.MockPatch(
            'nova.scheduler.client.report.report_client_singleton')).mock
        client.return_value.get_allocs_for_consumer.return_value = {
            'allocations': {uuids.gpu: {'resources': {'PGPU': 1}}}}
        self.migrations.revert(None, self.instance, mock.Mock())
        client.return_value.get_allocs_for_consumer.assert_called_once_with(
            None, uuids.server)
        ((_, allocations, _),) = self.gpus.claims
        self.assertEqual({uuids.gpu: {'resources': {'PGPU': 1}}},
                         allocations)


class StepsTest(MigrationsTestCase):
    """Nova's migration steps as the driver hands them to Migrations."""

    def setUp(self):
        super().setUp()
        self.power = mock.Mock()
        self.useFixture(fixtures.MockPatchObject(
            self.migrations, 'check',
            side_effect=lambda *a: self.migration))
        self.useFixture(fixtures.MockPatchObject(self.migrations, 'send'))
        self.useFixture(fixtures.MockPatchObject(self.migrations, 'receive'))
        self.useFixture(fixtures.MockPatchObject(self.migrations,
                                                 'apply_flavor'))

    def moving(self, dest='lxd2', dest_compute='host2'):
        self.migration = objects.Migration(
            source_node='lxd1', dest_node=dest, source_compute='host1',
            dest_compute=dest_compute)
        return self.migration

    def migrate(self, status='Running'):
        self.lxd.locate.return_value = {'location': 'lxd1',
                                        'status': status}
        self.migrations.migrate(None, self.instance, flavor(), ['vif'], None,
                                'lxd1', 'host1', self.power.stop,
                                self.power.start)

    def test_a_resize_on_the_member_neither_stops_nor_moves(self):
        self.moving(dest='lxd1')
        self.migrate()
        self.assertEqual([], self.power.mock_calls)
        self.migrations.send.assert_not_called()
        self.vifs.unplug.assert_not_called()

    def test_a_move_stops_sends_then_unplugs_the_ports_here(self):
        self.moving()
        self.migrations.send.side_effect = (
            lambda *a: self.vifs.unplug.assert_not_called())
        self.migrate()
        self.assertEqual([mock.call.stop()], self.power.mock_calls)
        self.migrations.send.assert_called_once_with(self.instance, 'lxd2',
                                                     None)
        self.vifs.unplug.assert_called_once_with(self.instance, ['vif'])

    def test_a_move_within_one_service_keeps_its_ports(self):
        # One service for several members plugs on its own host only.
        self.moving(dest_compute='host1')
        self.migrate()
        self.migrations.send.assert_called_once()
        self.vifs.unplug.assert_not_called()

    def test_a_failed_move_starts_a_running_server_again_and_rolls_back(self):
        self.moving()
        self.migrations.send.side_effect = RuntimeError('LXD said no')
        e = self.assertRaises(exception.InstanceFaultRollback, self.migrate)
        self.assertIsInstance(e.inner_exception, exception.MigrationError)
        self.assertIn('LXD said no', str(e.inner_exception))
        self.assertEqual([mock.call.stop(), mock.call.start()],
                         self.power.mock_calls)
        self.vifs.unplug.assert_not_called()

    def test_a_failed_move_leaves_a_stopped_server_stopped(self):
        self.moving()
        self.migrations.send.side_effect = RuntimeError('LXD said no')
        self.assertRaises(exception.InstanceFaultRollback, self.migrate,
                          'Stopped')
        self.assertEqual([mock.call.stop()], self.power.mock_calls)

    def test_finish_resizes_on_the_member_and_receives_a_move(self):
        self.migrations.finish(self.moving(dest='lxd1'), self.instance,
                               {'a': 1}, [], None, self.power.stop)
        self.migrations.apply_flavor.assert_called_once_with(
            self.instance, self.instance.flavor, {'a': 1}, self.power.stop)
        self.migrations.finish(self.moving(), self.instance, {'a': 1}, [],
                               None, self.power.stop)
        self.migrations.receive.assert_called_once_with(
            self.instance, self.instance.flavor, {'a': 1}, [], None)

    def test_finish_revert_takes_the_container_back_with_its_allocations(
            self):
        with mock.patch.object(self.migrations, 'allocations_here',
                               return_value={'rp': 1}) as here:
            self.migrations.finish_revert(None, self.instance,
                                          self.moving(), uuids.rp, [], None,
                                          self.power.stop)
        here.assert_called_once_with(None, self.instance, self.migration,
                                     uuids.rp)
        self.migrations.receive.assert_called_once_with(
            self.instance, self.instance.flavor, {'rp': 1}, [], None)

    def test_shared_roots_on_ceph_only(self):
        for driver, shared in (('ceph', True), ('dir', False),
                               ('btrfs', False)):
            self.lxd.pool.return_value = {'driver': driver}
            self.assertEqual(shared, self.migrations.shared_roots('lxd1'))
