"""The driver finds its own containers in LXD, each question one request.

The containers are made here with plain pylxd, carrying Nova's identity
keys as spawn will write them, and deleted after each test.
"""

import uuid

from nova.compute import power_state
from nova import exception
from nova import test
from nova.tests.unit import fake_instance

from nova_lxd import constants
from nova_lxd import driver
from tools import testbed


class InstancesTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.bed = testbed.Testbed()
        self.lxd = self.bed.client()
        self.flags(endpoint=self.bed.endpoint,
                   client_cert=self.bed.client_cert,
                   client_key=self.bed.client_key,
                   server_cert=self.bed.server_cert,
                   storage_pool=self.bed.pool, allow_dir_pool=True,
                   group='lxd')

    def container(self, member, nova_uuid=None, running=False, name=None):
        name = name or 'nova-lxd-test-%s' % uuid.uuid4().hex[:8]
        cfg = {constants.INSTANCE_UUID_KEY: nova_uuid} if nova_uuid else {}
        created = self.lxd.instances.create(
            {'name': name, 'config': cfg,
             'source': {'type': 'image', 'alias': self.bed.image}},
            target=member, wait=True)
        self.addCleanup(testbed.delete_container, created)
        if running:
            created.start(wait=True)
        return name

    def start_driver(self, members):
        self.flags(members=members, group='lxd')
        lxd_driver = driver.LXDDriver(None)
        lxd_driver.init_host('compute1')
        self.requests = []
        lxd_driver.lxd.session.hooks['response'].append(
            lambda r, *a, **k: self.requests.append(r.request.path_url))
        return lxd_driver

    def test_lists_its_containers_on_its_members_with_one_request(self):
        first, second = self.bed.members[:2]
        mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
        on_first = self.container(first, mine, running=True)
        self.container(second, theirs)
        self.container(first)   # not Nova's: no identity key

        lxd_driver = self.start_driver([first])
        self.assertEqual([on_first], lxd_driver.list_instances())
        self.assertEqual([mine], lxd_driver.list_instance_uuids())
        self.assertEqual(2, len(self.requests))

        everywhere = self.start_driver(['*'])
        self.assertEqual({mine, theirs},
                         set(everywhere.list_instance_uuids()))
        self.assertEqual(1, len(self.requests))

    def test_get_info_and_instance_exists(self):
        member = self.bed.members[-1]
        running_uuid, stopped_uuid = str(uuid.uuid4()), str(uuid.uuid4())
        running = fake_instance.fake_instance_obj(
            None, uuid=running_uuid, display_name='r', node=member)
        stopped = fake_instance.fake_instance_obj(
            None, uuid=stopped_uuid, display_name='s', node=member)
        # Nova's instance.name is derived from its id; make both distinct.
        running.id, stopped.id = 0x7fff0001, 0x7fff0002
        self.container(member, running_uuid, True, name=running.name)
        self.container(member, stopped_uuid, name=stopped.name)

        lxd_driver = self.start_driver(['*'])
        self.assertEqual(power_state.RUNNING,
                         lxd_driver.get_info(running).state)
        self.assertEqual(power_state.SHUTDOWN,
                         lxd_driver.get_info(stopped).state)
        self.assertEqual(2, len(self.requests))
        self.assertTrue(lxd_driver.instance_exists(running))

        gone = fake_instance.fake_instance_obj(None, uuid=str(uuid.uuid4()))
        gone.id = 0x7fff0003
        self.assertRaises(exception.InstanceNotFound, lxd_driver.get_info,
                          gone)
        self.assertFalse(lxd_driver.instance_exists(gone))
