"""The operator's gates and the shared host's defaults, through Nova's API.

What a flavor may open (privileged, nested containers) is the operator's
to allow, per project, and it holds over time: at boot, at resize and
revert, and at every start. Every container gets its own idmap, a
process limit and no swap unless its flavor says otherwise. Each test
reads LXD's own state of the container.
"""

import json
import uuid

from tests.functional import base


def _idmap(container):
    """(first host uid, range) the running container's root maps to."""
    current = json.loads(container['config']['volatile.idmap.current'])
    (uids,) = [m for m in current if m['Isuid']]
    return uids['Hostid'], uids['Maprange']


class OperatorGatesTest(base.ServersTestCase):

    def setUp(self):
        super().setUp()
        self.privileged = self._create_flavor(
            name='privileged', vcpu=1, memory_mb=256, disk=1, ephemeral=0,
            extra_spec={'lxd:privileged': 'true'})

    def test_privileged_only_for_the_projects_listed(self):
        project = self.api.project_id
        self.flags(allow_privileged=True,
                   privileged_projects=[str(uuid.uuid4())], group='lxd')
        before = self.container_names()
        server = self.boot(self.privileged, expected_state='ERROR')
        self.assertIn('only for [lxd] privileged_projects, not %s' % project,
                      server['fault']['message'])
        self.assertEqual(before, self.container_names())

        self.flags(privileged_projects=['someone-else', project],
                   group='lxd')
        server = self.boot(self.privileged)
        self.assertEqual('true', self.container(server)['config'][
            'security.privileged'])

    def test_resize_away_from_privileged_drops_it_and_revert_restores(self):
        self.flags(allow_resize_to_same_host=True)
        self.flags(allow_privileged=True, group='lxd')
        server = self.boot(self.privileged)
        self.only_member(server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self.assertEqual([], json.loads(self.container(server)['config'][
            'volatile.idmap.current']))      # root is the host's root

        server = self._resize_server(server, self.flavor_id)
        found = self.container(server)
        self.assertNotIn('security.privileged', found['config'])
        self.assertEqual('Running', found['status'])
        # Restarted: root in the container is an unprivileged host id now.
        first, size = _idmap(found)
        self.assertEqual(65536, size)
        self.assertGreater(first, 0)

        server = self._revert_resize(server)
        found = self.container(server)
        self.assertEqual('true', found['config']['security.privileged'])
        self.assertEqual([], json.loads(found['config'][
            'volatile.idmap.current']))

    def test_resize_to_privileged_refused_when_not_allowed(self):
        self.flags(allow_resize_to_same_host=True)
        server = self.boot()
        self.only_member(server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self.api.post_server_action(server['id'], {'resize': {
            'flavorRef': self.privileged}})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self._wait_for_action_fail_completion(
            server, 'resize', 'compute_resize_instance')
        self.assertEqual('small', server['flavor']['original_name'])
        self.assertNotIn('security.privileged',
                         self.container(server)['config'])

    def test_a_privileged_container_does_not_start_once_switched_off(self):
        self.flags(allow_privileged=True, group='lxd')
        server = self._stop_server(self.boot(self.privileged))
        self.flags(allow_privileged=False, group='lxd')
        self.api.post_server_action(server['id'], {'os-start': None})
        self._wait_for_action_fail_completion(
            server, 'start', 'compute_start_instance')
        server = self.api.get_server(server['id'])
        self.assertEqual('SHUTOFF', server['status'])
        self.assertEqual('Stopped', self.container(server)['status'])
        events = self.api.get_instance_action_details(
            server['id'], self.api.get_instance_actions(server['id'])[0][
                'request_id'])['events']
        self.assertIn('[lxd] allow_privileged', events[0]['details'])

        self.flags(allow_privileged=True, group='lxd')
        server = self._start_server(server)
        self.assertEqual('Running', self.container(server)['status'])

    def test_nvidia_runtime_needs_its_own_switch(self):
        flavor = self._create_flavor(
            name='nvidia', vcpu=1, memory_mb=256, disk=1, ephemeral=0,
            extra_spec={'lxd:nvidia_runtime': 'true'})
        before = self.container_names()
        server = self.boot(flavor, expected_state='ERROR')
        self.assertIn('[lxd] allow_nvidia_runtime = False',
                      server['fault']['message'])
        self.assertEqual(before, self.container_names())


class SharedHostDefaultsTest(base.ServersTestCase):

    def test_own_idmap_process_limit_and_no_swap_by_default(self):
        # Ids are a member's: two containers on one member.
        self.only_member(self.bed.members[0])
        first, second = self.boot(), self.boot()
        maps = []
        for server in (first, second):
            found = self.container(server)
            cfg = found['config']
            self.assertEqual(('true', '4096', 'false'), (
                cfg['security.idmap.isolated'], cfg['limits.processes'],
                cfg['limits.memory.swap']))
            maps.append(_idmap(found))
        # Two ranges of host ids that do not overlap.
        (a, a_size), (b, b_size) = sorted(maps)
        self.assertLessEqual(a + a_size, b)

    def test_servers_booted_at_once_get_ranges_of_their_own(self):
        # LXD 5.0 gives containers given a range at the same moment the
        # same host ids (see nova_lxd.lxd.client.LXD.create_instance).
        self.only_member(self.bed.members[0])
        reservation = self.api.post_server({'server': {
            'name': 'many', 'imageRef': self.image_id,
            'flavorRef': self.flavor_id, 'networks': 'none',
            'min_count': 4, 'max_count': 4,
            'return_reservation_id': True}})['reservation_id']
        servers = [self._wait_for_state_change(server, 'ACTIVE')
                   for server in self.api.get_servers(
                       search_opts={'reservation_id': reservation})]
        self.assertEqual(4, len(servers))
        maps = sorted(_idmap(self.container(server)) for server in servers)
        for (first, size), (after, _) in zip(maps, maps[1:]):
            self.assertLessEqual(first + size, after)

    def test_a_fork_bomb_stops_at_its_process_limit(self):
        flavor = self._create_flavor(
            name='few', vcpu=1, memory_mb=256, disk=1, ephemeral=0,
            extra_spec={'lxd:max_processes': '30'})
        server = self.boot(flavor)
        name = server['OS-EXT-SRV-ATTR:instance_name']
        self.assertEqual('30', self.container(server)['config'][
            'limits.processes'])
        rc, out, err = self.bed.exec(
            name, 'sh', '-c', 'i=0; while [ $i -lt 60 ]; do '
            'sleep 30 </dev/null >/dev/null 2>&1 & i=$((i+1)); done; '
            'echo all started')
        self.assertNotIn('all started', out)
        self.assertIn("can't fork", err)
        # The container itself is still there, and the host unharmed.
        self.assertEqual('Running', self.container(server)['status'])

    def test_the_operator_may_share_one_idmap_and_allow_swap(self):
        self.flags(isolated_idmap=False, max_processes=0, group='lxd')
        flavor = self._create_flavor(
            name='swap', vcpu=1, memory_mb=256, disk=1, ephemeral=0,
            extra_spec={'lxd:memory_swap': 'true'})
        cfg = self.container(self.boot(flavor))['config']
        self.assertNotIn('security.idmap.isolated', cfg)
        self.assertNotIn('limits.processes', cfg)
        self.assertEqual('true', cfg['limits.memory.swap'])
