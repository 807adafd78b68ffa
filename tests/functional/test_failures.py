"""Failures made real on the test bed, each survived with a clear state.

Daemons and containers get SIGKILL (tools/testbed.py), nova-compute is
stopped and started again, containers go behind Nova's back; then the
test looks at what Nova says and what LXD has.
"""

import time

import fixtures
from nova import context
from nova import utils
import testtools.content

from nova_lxd.lxd import client
from tests.functional import test_migration


class Crash(BaseException):
    """nova-compute dies here: none of Nova's error handling runs."""


class OneServiceTestCase(test_migration.OneServiceTestCase):

    def boot_on(self, member, flavor_id=None):
        body = self._build_server(image_uuid=self.image_id,
                                  flavor_id=flavor_id or self.flavor_id,
                                  networks='none')
        body['hypervisor_hostname'] = member
        with utils.temporary_mutation(self.admin_api, microversion='2.74'):
            server = self.admin_api.post_server({'server': body})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual(member, self.member(server))
        return server


class OfflineMemberTest(OneServiceTestCase):

    def setUp(self):
        super().setUp()
        # Each periodic run sees the members as LXD has them now: a revive
        # quicker than the 10 s the driver keeps their statuses would
        # otherwise still look offline.
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.driver.STATUS_CACHE_SECONDS', 0))

    def inventory(self, member):
        return self._get_provider_inventory(
            self._get_provider_uuid_by_name(member))

    def sync_power_states(self):
        self.compute.manager._sync_power_states(
            context.get_admin_context())

    def test_service_starts_without_a_member_and_reconciles_after(self):
        lost = self.bed.members[-1]
        server = self.boot_on(lost)
        self.addCleanup(self.bed.revive)
        self.bed.kill_member(lost)
        self.bed.wait_member(lost, 'Offline')

        # Starts, and manages the others.
        self.compute = self.restart_compute_service(self.compute)
        self.computes['compute1'] = self.compute
        self._run_periodics()
        for rc, inventory in self.inventory(lost).items():
            self.assertEqual(inventory['total'], inventory['reserved'], rc)
        for rc, inventory in self.inventory('lxd1').items():
            self.assertLess(inventory['reserved'], inventory['total'], rc)
        # Its server: power state unknown (NOSTATE), left as it is.
        self.sync_power_states()
        server = self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-STS:power_state': 0})
        # New servers go to the members that are there.
        other = self.boot()
        self.assertNotEqual(lost, self.member(other))

        self.bed.revive()
        self._run_periodics()
        # What Nova's reserved_host_* options reserve, as on the others.
        for rc, inventory in self.inventory(lost).items():
            self.assertEqual(self.inventory('lxd1')[rc]['reserved'],
                             inventory['reserved'], rc)
            self.assertLess(inventory['reserved'], inventory['total'], rc)
        # Its host went down with the member: the server is off, and
        # starts again.
        self.sync_power_states()
        server = self._wait_for_state_change(server, 'SHUTOFF')
        self.assertEqual('Stopped', self.container(server)['status'])
        server = self._start_server(server)
        self.assertEqual('Running', self.container(server)['status'])


class DeletedBehindNovasBackTest(OneServiceTestCase):

    def test_power_sync_marks_it_shutoff_and_delete_works(self):
        server = self.boot()
        name = server['OS-EXT-SRV-ATTR:instance_name']
        self.lxd.instances.get(name).stop(force=True, wait=True)
        self.lxd.instances.get(name).delete(wait=True)
        self.compute.manager._sync_power_states(context.get_admin_context())
        server = self._wait_for_state_change(server, 'SHUTOFF')
        self._delete_server(server)
        self.assertNotIn(name, self.container_names())


class BusyTest(OneServiceTestCase):

    def test_actions_right_after_a_stop_are_retried(self):
        # LXD holds an instance's lock a moment after a stop answered: a
        # delete right after it is refused ("Instance is busy running a
        # "stop" operation") unless tried again.
        sleeps = []
        real_sleep = time.sleep
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.time.sleep',
            lambda s: sleeps.append(s) or real_sleep(s)))
        lxd = self.compute.manager.driver.lxd
        for _ in range(3):
            server = self.boot()
            name = server['OS-EXT-SRV-ATTR:instance_name']
            lxd.change_state(name, 'stop', force=True)
            lxd.delete_instance(name)
            self.assertNotIn(name, self.container_names())
            self._delete_server(server)
        # How often LXD said busy here (a measurement, not a rule).
        self.addDetail('busy-retries', testtools.content.text_content(
            str(len(sleeps))))


class DaemonKilledDuringSpawnTest(test_migration.MigrationTestCase):
    """One nova-compute per member: lxd2's daemon dies under its spawn."""

    def test_build_fails_naming_it_and_delete_leaves_nothing(self):
        real_create = client.LXD.create_instance

        def create_then_die(lxd, body, member):
            real_create(lxd, body, member)
            self.bed.kill_daemon(member)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.create_instance', create_then_die))
        self.addCleanup(self.bed.revive)
        self.only_member('lxd2')
        server = self.boot(expected_state='ERROR')
        # Named without the member's path, which the tenant may not read.
        self.assertIn('LXD: cannot reach <host path>',
                      server['fault']['message'])
        self.assertNotIn(self.bed.socket('lxd2'), server['fault']['message'])

        # The build's clean-up could not reach LXD: the container stays
        # until Nova reaps what remains of deleted servers (every
        # running_deleted_instance_poll_interval, reap by default).
        self.bed.revive()
        self._delete_server(server)
        self.computes['lxd2'].manager._cleanup_running_deleted_instances(
            context.get_admin_context())
        self.assertEqual([], [i for i in self.lxd.api.instances.get(
            params={'recursion': 1}).json()['metadata']
            if (i['config'] or {}).get('user.nova.instance_uuid') ==
            server['id']])
        self.assertEqual([], self.bed.nova_volumes())


class ComputeRestartedDuringMigrationTest(test_migration.MigrationTestCase):

    def test_source_restarted_mid_move_brings_the_server_back(self):
        server = self.boot_on('lxd1')
        self.mark(server)
        real = self.computes['lxd1'].manager.driver.migrate_disk_and_power_off

        def move_then_crash(*args, **kwargs):
            real(*args, **kwargs)
            raise Crash()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.driver.LXDDriver.migrate_disk_and_power_off',
            lambda driver, *a, **k: move_then_crash(*a, **k)))
        self.api.post_server_action(server['id'], {'migrate': None})
        server = self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': 'resize_migrating'})
        deadline = time.monotonic() + 120
        while self.container(server)['location'] == 'lxd1':
            self.assertLess(time.monotonic(), deadline)
            time.sleep(1)
        moved_to = self.container(server)['location']

        self.use_socket('lxd1')
        self.computes['lxd1'] = self.restart_compute_service(
            self.computes['lxd1'], keep_hypervisor_state=False)
        # Nova reverts a migration whose source restarted during it: LXD
        # says the container is on moved_to; it comes back and runs.
        server = self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None})
        self.assertNotEqual('lxd1', moved_to)
        self.assertOn(server, 'lxd1')
        self.assertEqual(b'kept\n', self.read(server))
