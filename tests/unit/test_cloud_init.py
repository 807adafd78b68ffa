"""Nova's instance metadata -> LXD's cloud-init keys and the config drive.

What cloud-init makes of them inside a real container is in
tests/functional/test_guest.py.
"""

import email
import gzip
from unittest import mock

import fixtures
from nova import exception
from nova.network import model
from nova import test
from nova.tests.unit import fake_instance
from nova.virt import netutils
from oslo_utils.fixture import uuidsentinel as uuids
import testtools
import yaml

from nova_lxd import cloud_init

UUID = 'c0ffee00-0000-4000-8000-000000000001'
KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3ke0ESY7ZzzHKUeWm2BcNtDZ3yW test'


def lxd_served(document, uuid='8a0d4e2c-0000-4000-8000-00000000abcd',
               name='instance-0000002a', cloud_config=True):
    """/1.0/meta-data as LXD builds it around user.meta-data.

    LXD 5.0 (lxd/devlxd.go): "#cloud-config\\ninstance-id: %s\\n
    local-hostname: %s\\n%s"; later LXD leaves out the first line.
    """
    return '%sinstance-id: %s\nlocal-hostname: %s\n%s' % (
        '#cloud-config\n' if cloud_config else '', uuid, name, document)


def openstack_md(**fields):
    md = {'uuid': UUID, 'hostname': 'web1.novalocal', 'name': 'web1',
          'public_keys': {'k': KEY}, 'availability_zone': 'nova',
          'meta': {'role': 'web'}, 'admin_pass': 'secret',
          'random_seed': 'xx'}
    md.update(fields)
    return md


class MetaDataTest(testtools.TestCase):

    def test_nova_values_by_cloud_init_names(self):
        self.assertEqual(
            {'instance-id': UUID, 'local-hostname': 'web1.novalocal',
             'public-keys': [KEY], 'availability-zone': 'nova',
             'meta': {'role': 'web'}},
            cloud_init.meta_data(openstack_md()))

    def test_no_key_zone_or_metadata(self):
        self.assertEqual(
            {'instance-id': UUID, 'local-hostname': 'web1'},
            cloud_init.meta_data({'uuid': UUID, 'hostname': 'web1',
                                  'availability_zone': None, 'meta': {}}))

    def parsed_as_cloud_init_does(self, meta):
        """What cloud-init 22.4 and later make of the document."""
        document = cloud_init.meta_data_document(meta)
        for cloud_config in (True, False):
            # cloud-init 22.4: LXD's text as one YAML document.
            self.assertEqual(
                meta, yaml.safe_load(lxd_served(document,
                                                cloud_config=cloud_config)))
        # Later cloud-init: LXD's lines updated with the key alone.
        self.assertEqual(meta, yaml.safe_load(document))
        return document

    def test_continues_lxds_document_and_wins_over_its_lines(self):
        document = self.parsed_as_cloud_init_does(
            cloud_init.meta_data(openstack_md()))
        self.assertTrue(document.startswith('availability-zone: nova\n'))

    def test_hostile_values_stay_values(self):
        hostile = [
            'x\ninstance-id: evil', '---\ninstance-id: evil', '...',
            '--- !!python/object/apply:os.system ["id"]', '&a [1]', '*a',
            '<<: *a', '#cloud-config', 'a: b', '{x: y}', '[1, 2]', '- z',
            '|\n  block', "'quoted\"", '%YAML 1.1', 'null', 'true', '0x10',
            'tab\there', 'nul\0byte', 'unicode \u00e9\u2028\U0001f600',
            ' leading space', 'x' * 5000,
        ]
        meta = {'instance-id': UUID, 'local-hostname': 'web1',
                'public-keys': hostile,
                'meta': {v: v for v in hostile}}
        meta['meta']['instance-id'] = 'evil'
        document = self.parsed_as_cloud_init_does(meta)
        # No anchors, aliases, tags or extra documents in what we wrote.
        for token in yaml.scan(document):
            self.assertNotIsInstance(token, (
                yaml.AnchorToken, yaml.AliasToken, yaml.TagToken,
                yaml.DocumentStartToken, yaml.DocumentEndToken,
                yaml.DirectiveToken))

    def test_repeated_objects_are_not_aliased(self):
        keys = [KEY]
        document = cloud_init.meta_data_document(
            {'instance-id': UUID, 'public-keys': keys, 'meta': {'k': keys}})
        self.assertNotIn('&', document)
        self.assertNotIn('*', document)

    def test_size_is_bounded(self):
        meta = {'instance-id': UUID,
                'meta': {str(n): 'v' * 255 for n in range(1100)}}
        e = self.assertRaises(exception.InvalidInput,
                              cloud_init.meta_data_document, meta)
        self.assertIn('at most 262144 bytes reach cloud-init', str(e))


class UserDataTest(testtools.TestCase):

    def test_text_as_it_is(self):
        for data in ('#cloud-config\nruncmd: [[touch, /x]]\n',
                     '#!/bin/sh\necho \u00e9t\u00e9 > /x\n',
                     '#cloud-config\nbad: [yaml\n'):
            self.assertEqual(data,
                             cloud_init.user_data(data.encode('utf-8')))

    def test_none_or_empty_is_none(self):
        self.assertIsNone(cloud_init.user_data(None))
        self.assertIsNone(cloud_init.user_data(b''))

    def mime(self, value):
        """The single part cloud-init gets from a MIME value."""
        self.assertIn('MIME-Version: 1.0', value)
        message = email.message_from_string(value)
        self.assertFalse(message.is_multipart())
        return message.get_content_type(), message.get_payload(decode=True)

    def test_gzip_as_a_mime_part_cloud_init_decompresses(self):
        raw = gzip.compress(b'#!/bin/sh\ntouch /x\n')
        value = cloud_init.user_data(raw)
        self.assertEqual(('application/x-gzip', raw), self.mime(value))
        value.encode('ascii')

    def test_other_binary_as_a_mime_part(self):
        for raw in (b'\xff\xfe binary', b'text with a nul\0byte'):
            self.assertEqual(('application/octet-stream', raw),
                             self.mime(cloud_init.user_data(raw)))

    def test_size_is_bounded(self):
        cloud_init.user_data(b'x' * cloud_init.USER_DATA_LIMIT)
        e = self.assertRaises(exception.InvalidInput, cloud_init.user_data,
                              b'x' * (cloud_init.USER_DATA_LIMIT + 1))
        self.assertIn('user data is 65537 bytes', str(e))


class VendorDataTest(testtools.TestCase):

    def test_cloud_init_entry_as_cloud_init_takes_it(self):
        self.assertEqual('#cloud-config\na: 1\n', cloud_init.vendor_data(
            {'cloud-init': '#cloud-config\na: 1\n', 'other': 'x'}, None))
        self.assertEqual('#cloud-config\n', cloud_init.vendor_data(
            None, '#cloud-config\n'))

    def test_nothing_for_cloud_init(self):
        for loaded in ({}, {'other': 'x'}, {'cloud-init': {'a': 1}},
                       {'cloud-init': ['#cloud-config\n']}, None, []):
            self.assertIsNone(cloud_init.vendor_data(loaded, {}))

    def test_both_files_become_one_multipart_message(self):
        value = cloud_init.vendor_data({'cloud-init': '#cloud-config\na: 1'},
                                       {'cloud-init': '#!/bin/sh\ntrue'})
        message = email.message_from_string(value)
        self.assertTrue(message.is_multipart())
        self.assertEqual(
            [b'#cloud-config\na: 1', b'#!/bin/sh\ntrue'],
            [p.get_payload(decode=True) for p in message.get_payload()])


def vif(port_id, mac, cidr, address, dhcp, gateway=None, dns=(),
        routes=(), mtu=1450, ipv6_mode=None):
    meta = {'dhcp_server': cidr.replace('0/24', '2')} if dhcp else {}
    if ipv6_mode:
        meta['ipv6_address_mode'] = ipv6_mode
    subnet = model.Subnet(
        cidr=cidr, ips=[model.FixedIP(address=address)],
        gateway=model.IP(address=gateway) if gateway else None,
        dns=[model.IP(address=d) for d in dns],
        routes=[model.Route(cidr=r, gateway=model.IP(address=g))
                for r, g in routes], **meta)
    return model.VIF(id=port_id, address=mac, type='ovs',
                     network=model.Network(id='net-' + port_id,
                                           subnets=[subnet],
                                           meta={'mtu': mtu}))


class NetworkConfigTest(testtools.TestCase):

    def config(self, *vifs):
        info = model.NetworkInfo(vifs)
        names = {v['id']: 'eth%d' % n for n, v in enumerate(vifs)}
        return cloud_init.network_config(
            netutils.get_network_metadata(info), names)

    def test_static_when_the_subnet_has_no_dhcp(self):
        config = self.config(vif(
            'p1', 'fa:16:3e:00:00:01', '192.168.1.0/24', '192.168.1.100',
            dhcp=False, gateway='192.168.1.1', dns=['192.168.1.3'],
            routes=[('10.0.0.0/8', '192.168.1.254')]))
        self.assertEqual({'version': 1, 'config': [{
            'type': 'physical', 'name': 'eth0',
            'mac_address': 'fa:16:3e:00:00:01', 'mtu': 1450,
            'subnets': [{
                'type': 'static', 'address': '192.168.1.100/24',
                'gateway': '192.168.1.1',
                'routes': [{'network': '10.0.0.0', 'netmask': '255.0.0.0',
                            'gateway': '192.168.1.254'}],
                'dns_nameservers': ['192.168.1.3']}]}]}, config)

    def test_dhcp_when_the_subnet_has_it_and_ports_in_order(self):
        config = self.config(
            vif('p1', 'fa:16:3e:00:00:01', '10.1.0.0/24', '10.1.0.5',
                dhcp=True),
            vif('p2', 'fa:16:3e:00:00:02', 'fd00::/64', 'fd00::5',
                dhcp=False, ipv6_mode='slaac'),
            vif('p3', 'fa:16:3e:00:00:03', 'fd01::/64', 'fd01::5',
                dhcp=False, gateway='fd01::1'))
        self.assertEqual(
            [('eth0', 'fa:16:3e:00:00:01', [{'type': 'dhcp4'}]),
             ('eth1', 'fa:16:3e:00:00:02', [{'type': 'ipv6_slaac'}]),
             ('eth2', 'fa:16:3e:00:00:03',
              [{'type': 'static6', 'address': 'fd01::5/64',
                'gateway': 'fd01::1'}])],
            [(c['name'], c['mac_address'], c['subnets'])
             for c in config['config']])
        # Neutron's DHCP gives the MTU there.
        self.assertNotIn('mtu', config['config'][0])

    def test_no_ports_is_an_empty_config_not_cloud_inits_fallback(self):
        self.assertEqual({'version': 1, 'config': []},
                         cloud_init.network_config(None, {}))


class LXDKeysTest(testtools.TestCase):

    def test_keys(self):
        raw = b'#cloud-config\nruncmd: [[touch, /x]]\n'
        keys = cloud_init.lxd_keys(
            openstack_md(), raw_user_data=raw,
            vendor=({'cloud-init': '#cloud-config\n'}, None),
            server_version='5.0.2')
        self.assertEqual(
            {'user.meta-data', 'user.user-data', 'user.vendor-data',
             'user.network-config', 'volatile.cloud-init.instance-id'},
            set(keys))
        self.assertEqual(UUID, keys['volatile.cloud-init.instance-id'])
        self.assertEqual(raw.decode(), keys['user.user-data'])
        self.assertEqual({'version': 1, 'config': []},
                         yaml.safe_load(keys['user.network-config']))
        meta = yaml.safe_load(lxd_served(keys['user.meta-data']))
        self.assertEqual((UUID, 'web1.novalocal', [KEY]),
                         (meta['instance-id'], meta['local-hostname'],
                          meta['public-keys']))
        # Nova's meta_data.json holds the admin password: not for LXD.
        self.assertNotIn('secret', ''.join(keys.values()))

    def test_older_lxd_gets_no_volatile_key(self):
        keys = cloud_init.lxd_keys(openstack_md(), server_version='4.0.9')
        self.assertNotIn('volatile.cloud-init.instance-id', keys)
        self.assertNotIn('user.user-data', keys)
        self.assertNotIn('user.vendor-data', keys)


SEED = '/var/lib/cloud/seed/config_drive/'


def instance(**fields):
    return fake_instance.fake_instance_obj(
        None, uuid=uuids.server, hostname='web-1', launched_at=None,
        system_metadata={}, expected_attrs=['system_metadata'], **fields)


class InstanceMetadataTest(test.NoDBTestCase):

    def test_nova_instance_metadata_with_the_admin_password(self):
        metadata = self.useFixture(fixtures.MockPatch(
            'nova.api.metadata.base.InstanceMetadata')).mock
        server = instance()
        found = cloud_init.instance_metadata_of(
            server, [('/etc/motd', b'hi\n')], 's3cret', mock.sentinel.net)
        self.assertIs(metadata.return_value, found)
        metadata.assert_called_once_with(
            server, content=[('/etc/motd', b'hi\n')],
            extra_md={'admin_pass': 's3cret'}, network_info=mock.sentinel.net)
        cloud_init.instance_metadata_of(server, [], None, [])
        self.assertEqual({}, metadata.call_args[1]['extra_md'])


class ConfigDriveTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.metadata = mock.Mock()
        self.metadata.metadata_for_config_drive.return_value = [
            ('openstack/latest/meta_data.json', '{"uuid": "u"}'),
            ('openstack/latest/user_data', b'\x1f\x8b binary')]

    def test_none_unless_asked(self):
        self.assertEqual({}, cloud_init.config_drive_files(
            instance(config_drive=''), self.metadata))
        self.metadata.metadata_for_config_drive.assert_not_called()

    def test_the_tree_in_the_seed_folder_as_bytes(self):
        self.flags(force_config_drive=True)
        server = instance(config_drive='')
        files = cloud_init.config_drive_files(server, self.metadata)
        self.assertEqual(
            {SEED + 'openstack/latest/meta_data.json': b'{"uuid": "u"}',
             SEED + 'openstack/latest/user_data': b'\x1f\x8b binary'},
            files)
        # Nova records that the server has a config drive.
        self.assertTrue(server.config_drive)

    def test_asked_by_the_server(self):
        files = cloud_init.config_drive_files(
            instance(config_drive='True'), self.metadata)
        self.assertEqual(2, len(files))
