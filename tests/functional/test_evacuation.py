"""A member lost: its servers evacuated through Nova's API, and its return.

The member's host fails for real: its LXD daemon and its containers get
SIGKILL (tools/testbed.py), LXD calls it offline, and its nova-compute is
stopped and forced down, as an operator does before evacuating. The test
bed's pool is per member (dir): the servers are rebuilt from their image
on the destination.
"""

from tests.functional import test_migration


class EvacuationTest(test_migration.MigrationTestCase):

    def lose(self, member):
        """The member's host fails; Nova is told its service is down."""
        self.addCleanup(self.bed.revive)
        self.bed.kill_member(member)
        self.bed.wait_member(member, 'Offline')
        self.computes[member].stop()
        service = self.admin_api.get_services(host=member,
                                              binary='nova-compute')[0]
        self.admin_api.put_service(service['id'], {'forced_down': 'true'})
        return service

    def come_back(self, member, service):
        """The member's host and its nova-compute start again."""
        self.bed.revive()
        self.use_socket(member)
        self.computes[member] = self.restart_compute_service(
            self.computes[member], keep_hypervisor_state=False)
        # Nova lets it up once its restart completed the evacuations.
        self.admin_api.put_service(service['id'], {'forced_down': 'false'})

    def containers_of(self, server):
        """{name: (member, status)} of the server's containers in LXD."""
        return {i['name']: (i['location'], i['status']) for i in
                self.lxd.api.instances.get(params={'recursion': 1}).json()[
                    'metadata']
                if i['name'].startswith(
                    server['OS-EXT-SRV-ATTR:instance_name'])}

    def test_evacuate_rebuilds_elsewhere_and_the_returning_member_cleans(
            self):
        lost = self.bed.members[-1]
        server = self.boot_on(lost)
        name = server['OS-EXT-SRV-ATTR:instance_name']
        service = self.lose(lost)
        # LXD still lists the lost member's container, without its config.
        self.assertEqual({name: (lost, 'Error')},
                         self.containers_of(server))

        # Since microversion 2.95 an evacuated server ends stopped.
        server = self._evacuate_server(server)
        dest = self.member(server)
        self.assertNotEqual(lost, dest)
        # The name is LXD's until the member is back: the new one is name-1.
        self.assertEqual({name: (lost, 'Error'),
                          name + '-1': (dest, 'Stopped')},
                         self.containers_of(server))
        container = self.lxd.api.instances[name + '-1'].get().json()[
            'metadata']
        self.assertEqual(server['id'],
                         container['config']['user.nova.instance_uuid'])
        # Nova keeps the lost node's share until its nova-compute is back.
        flavor = {'VCPU': 1, 'MEMORY_MB': 256, 'DISK_GB': 1}
        self.assertEqual({dest: flavor, lost: flavor},
                         self.providers(server['id']))
        # Rebuilt from its image: the marker of this test's image is there.
        self.assertEqual(self.image_id.encode(), self.lxd.instances.get(
            name + '-1').files.get('/etc/nova-lxd-marker'))

        server = self._start_server(server)
        self.assertEqual({name: (lost, 'Error'),
                          name + '-1': (dest, 'Running')},
                         self.containers_of(server))

        self.come_back(lost, service)
        # Nothing of the evacuated server runs on it again: LXD did not
        # start it, and its nova-compute deleted what was left there.
        self.assertEqual({name + '-1': (dest, 'Running')},
                         self.containers_of(server))
        self.assertEqual({dest: flavor}, self.providers(server['id']))
        server = self._stop_server(server)
        server = self._start_server(server)
        self._delete_server(server)
        self.assertEqual({}, self.containers_of(server))
