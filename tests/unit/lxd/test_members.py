import testtools

from nova import exception

from nova_lxd.lxd import members

CLUSTER = {'lxd1': 'Online', 'lxd2': 'Online', 'lxd3': 'Offline'}


class ManagedMembersTest(testtools.TestCase):

    def test_default_is_the_member_named_like_the_host(self):
        self.assertEqual(['lxd2'], members.managed_members([], 'lxd2',
                                                           CLUSTER))

    def test_listed_members(self):
        self.assertEqual(['lxd2', 'lxd1'], members.managed_members(
            ['lxd2', 'lxd1'], 'ctl', CLUSTER))

    def test_star_is_every_member(self):
        cluster = {'b': 'Online', 'a': 'Online'}
        self.assertEqual(['a', 'b'],
                         members.managed_members(['*'], 'ctl', cluster))

    def test_unknown_member_names_it_the_members_and_the_option(self):
        e = self.assertRaises(exception.InvalidConfiguration,
                              members.managed_members, ['lxd9'], 'h',
                              CLUSTER)
        msg = str(e)
        self.assertIn('lxd9', msg)
        self.assertIn('lxd1, lxd2, lxd3', msg)
        self.assertIn('[lxd] members', msg)

    def test_default_host_not_a_member_says_why_it_was_chosen(self):
        e = self.assertRaises(exception.InvalidConfiguration,
                              members.managed_members, [], 'compute7',
                              CLUSTER)
        self.assertIn('compute7', str(e))
        self.assertIn("service's host", str(e))

    def test_offline_member_managed_with_a_warning(self):
        with self.assertLogs('nova_lxd.lxd.members', 'WARNING') as logs:
            self.assertEqual(['lxd1', 'lxd3'], members.managed_members(
                ['lxd1', 'lxd3'], 'h', CLUSTER))
        (line,) = logs.output
        self.assertIn('lxd3 (Offline) not online', line)
        self.assertNotIn('lxd1', line)


class NodeUUIDTest(testtools.TestCase):

    def test_stable(self):
        self.assertEqual(members.node_uuid('ab12', 'lxd1'),
                         members.node_uuid('ab12', 'lxd1'))

    def test_distinct_per_member_and_per_cluster(self):
        uuids = {members.node_uuid(fp, m)
                 for fp in ('ab12', 'cd34') for m in ('lxd1', 'lxd2')}
        self.assertEqual(4, len(uuids))
