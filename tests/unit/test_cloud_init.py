"""Nova's instance metadata -> LXD's cloud-init keys and the config drive.

Nova's InstanceMetadata (what the config drive holds) is replaced here;
the real one, and cloud-init's view of it inside a container, are in
tests/functional/test_lifecycle.py (CloudInitTest).
"""

import base64
from unittest import mock

import fixtures
from nova import test
from nova.tests.unit import fake_instance
from oslo_serialization import jsonutils
from oslo_utils.fixture import uuidsentinel as uuids

from nova_lxd import cloud_init

KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3ke0ESY7Zzz test@nova-lxd'
SEED = '/var/lib/cloud/seed/config_drive/'


def instance(**fields):
    return fake_instance.fake_instance_obj(
        None, uuid=uuids.server, hostname='web-1', launched_at=None,
        system_metadata={}, expected_attrs=['system_metadata'], **fields)


class KeysTest(test.NoDBTestCase):

    def meta(self, keys):
        return jsonutils.loads(keys['user.meta-data'])

    def test_identity_hostname_and_key(self):
        keys = cloud_init.cloud_init_keys(instance(key_data=KEY))
        self.assertEqual({'instance-id': uuids.server,
                          'local-hostname': 'web-1',
                          'public-keys': [KEY]}, self.meta(keys))
        self.assertNotIn('user.user-data', keys)

    def test_no_key(self):
        keys = cloud_init.cloud_init_keys(instance(key_data=None))
        self.assertNotIn('public-keys', self.meta(keys))

    def test_user_data_as_text(self):
        text = '#cloud-config\nruncmd: [echo hi]\n'
        keys = cloud_init.cloud_init_keys(instance(
            user_data=base64.b64encode(text.encode()).decode()))
        self.assertEqual(text, keys['user.user-data'])

    def test_binary_user_data_only_on_a_config_drive(self):
        gzipped = base64.b64encode(b'\x1f\x8b\x08\x00\xff').decode()
        keys = cloud_init.cloud_init_keys(instance(user_data=gzipped))
        self.assertNotIn('user.user-data', keys)

    def test_tenant_text_stays_inside_the_json(self):
        # A hostname cannot add keys of its own to the meta-data.
        server = instance(key_data=None)
        server.hostname = 'x\ninstance-id: other'
        meta = self.meta(cloud_init.cloud_init_keys(server))
        self.assertEqual(uuids.server, meta['instance-id'])
        self.assertEqual('x\ninstance-id: other', meta['local-hostname'])


class ConfigDriveTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.metadata = self.useFixture(fixtures.MockPatch(
            'nova.api.metadata.base.InstanceMetadata')).mock
        self.metadata.return_value.metadata_for_config_drive.return_value = [
            ('openstack/latest/meta_data.json', '{"uuid": "u"}'),
            ('openstack/latest/user_data', b'\x1f\x8b binary')]

    def test_none_unless_asked(self):
        self.assertEqual({}, cloud_init.config_drive_files(
            instance(config_drive=''), [], None, []))
        self.metadata.assert_not_called()

    def test_the_tree_in_the_seed_folder_as_bytes(self):
        self.flags(force_config_drive=True)
        server = instance(config_drive='')
        files = cloud_init.config_drive_files(
            server, [('/etc/motd', b'hi\n')], 's3cret', mock.sentinel.net)
        self.assertEqual(
            {SEED + 'openstack/latest/meta_data.json': b'{"uuid": "u"}',
             SEED + 'openstack/latest/user_data': b'\x1f\x8b binary'},
            files)
        self.metadata.assert_called_once_with(
            server, content=[('/etc/motd', b'hi\n')],
            extra_md={'admin_pass': 's3cret'}, network_info=mock.sentinel.net)
        # Nova records that the server has a config drive.
        self.assertTrue(server.config_drive)

    def test_asked_by_the_server(self):
        files = cloud_init.config_drive_files(
            instance(config_drive='True'), [], None, [])
        self.assertEqual(2, len(files))
        _, kwargs = self.metadata.call_args
        self.assertEqual({}, kwargs['extra_md'])
