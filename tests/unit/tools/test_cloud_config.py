"""tools/cloud_config.py: what each service of tools/cloud is told."""

import configparser
import os
import stat

import fixtures
import testtools

from tools import cloud_config


class CloudConfigTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.state = self.useFixture(fixtures.TempDir()).path
        self.venv = self.useFixture(fixtures.TempDir()).path
        self.cloud = cloud_config.Cloud(
            state=self.state, venv=self.venv, secret='s3cr%t',
            members={'lxd1': '/bed/lxd1', 'lxd2': '/bed/lxd2'})

    def test_every_service_user_has_the_secret(self):
        files = cloud_config.configs(self.cloud)
        for name, section, user in [
                ('placement.conf', 'keystone_authtoken', 'placement'),
                ('glance-api.conf', 'keystone_authtoken', 'glance'),
                ('neutron.conf', 'keystone_authtoken', 'neutron'),
                ('neutron.conf', 'nova', 'neutron'),
                ('nova.conf', 'keystone_authtoken', 'nova'),
                ('nova.conf', 'placement', 'nova'),
                ('nova.conf', 'neutron', 'nova'),
                ('nova.conf', 'service_user', 'nova')]:
            conf = files[name]
            self.assertEqual(user, conf[section]['username'], name)
            # No interpolation: a "%" in the password stays as it is.
            self.assertEqual('s3cr%t', conf[section]['password'], name)
        self.assertEqual('true',
                         files['nova.conf']['service_user'][
                             'send_service_user_token'])

    def test_keystone_hashes_passwords_with_devstacks_rounds(self):
        files = cloud_config.configs(self.cloud)
        self.assertEqual('4', files['keystone.conf']['identity'][
            'password_hash_rounds'])

    def test_keystone_caches_in_the_clouds_memcached(self):
        cache = cloud_config.configs(self.cloud)['keystone.conf']['cache']
        self.assertEqual('true', cache['enabled'])
        self.assertEqual('dogpile.cache.memcached', cache['backend'])
        self.assertEqual(
            'unix:%s' % os.path.join(self.state, 'run', 'memcached.sock'),
            cache['memcache_servers'])

    def test_databases_on_the_unix_socket(self):
        files = cloud_config.configs(self.cloud)
        sock = os.path.join(self.state, 'mysql', 'mysqld.sock')
        for name, section, db in [
                ('keystone.conf', 'database', 'keystone'),
                ('nova-db.conf', 'api_database', 'nova_api'),
                ('nova-db.conf', 'database', 'nova'),
                ('nova-cell0.conf', 'database', 'nova_cell0')]:
            self.assertEqual(
                'mysql+pymysql://openstack:s3cr%%t@localhost/%s'
                '?unix_socket=%s&charset=utf8mb4' % (db, sock),
                files[name][section]['connection'])
        # nova-compute gets no database: the conductor is its way in.
        for member in ('lxd1', 'lxd2'):
            conf = files['nova-compute-%s.conf' % member]
            self.assertNotIn('database', conf)
            self.assertNotIn('connection', files['nova.conf']['DEFAULT'])

    def test_one_compute_per_member_on_its_own_socket(self):
        files = cloud_config.configs(self.cloud)
        for member in ('lxd1', 'lxd2'):
            conf = files['nova-compute-%s.conf' % member]
            self.assertEqual(member, conf['DEFAULT']['host'])
            self.assertEqual('/bed/%s/unix.socket' % member,
                             conf['lxd']['endpoint'])
            self.assertEqual(member, conf['lxd']['members'])
            self.assertIn('nova-compute-%s.conf' % member,
                          conf['vif_plug_ovs_privileged']['helper_command'])

    def test_one_agent_per_member_with_its_own_bridge_and_port(self):
        files = cloud_config.configs(self.cloud)
        agents = [files['ovs-agent-%s.conf' % m] for m in ('lxd1', 'lxd2')]
        self.assertEqual(['lxd1', 'lxd2'],
                         [a['DEFAULT']['host'] for a in agents])
        self.assertEqual(['brnlc-lxd1', 'brnlc-lxd2'],
                         [a['ovs']['integration_bridge'] for a in agents])
        self.assertEqual(['16633', '16634'],
                         [a['ovs']['of_listen_port'] for a in agents])
        self.assertEqual('openvswitch',
                         files['ml2.conf']['ml2']['mechanism_drivers'])

    def test_one_flat_network_over_every_members_bridge(self):
        files = cloud_config.configs(self.cloud)
        ml2 = files['ml2.conf']
        self.assertEqual('flat', ml2['ml2']['type_drivers'])
        self.assertEqual('cloud', ml2['ml2_type_flat']['flat_networks'])
        for member in ('lxd1', 'lxd2'):
            ovs = files['ovs-agent-%s.conf' % member]
            self.assertEqual('cloud:brnlp-%s' % member,
                             ovs['ovs']['bridge_mappings'])
            self.assertEqual('openvswitch',
                             ovs['securitygroup']['firewall_driver'])
            self.assertEqual('true',
                             ovs['securitygroup']['enable_security_group'])

    def test_dhcp_and_metadata_on_the_first_member(self):
        files = cloud_config.configs(self.cloud)
        dhcp = files['dhcp-agent.conf']
        self.assertEqual('lxd1', dhcp['DEFAULT']['host'])
        self.assertEqual('brnlc-lxd1', dhcp['ovs']['integration_bridge'])
        self.assertEqual('true', dhcp['DEFAULT']['ovs_use_veth'])
        # No router: the DHCP namespace serves the metadata.
        self.assertEqual('true', dhcp['DEFAULT']['force_metadata'])
        meta = files['metadata-agent.conf']
        self.assertEqual('lxd1', meta['DEFAULT']['host'])
        self.assertEqual('8775', meta['DEFAULT']['nova_metadata_port'])
        # Neutron signs with the secret Nova checks.
        self.assertEqual('s3cr%t',
                         meta['DEFAULT']['metadata_proxy_shared_secret'])
        nova = files['nova.conf']['neutron']
        self.assertEqual('true', nova['service_metadata_proxy'])
        self.assertEqual('s3cr%t', nova['metadata_proxy_shared_secret'])

    def test_no_network(self):
        self.cloud.network = 'none'
        files = cloud_config.configs(self.cloud)
        self.assertEqual('', files['ml2.conf']['ml2']['mechanism_drivers'])
        self.assertFalse([n for n in files if n.startswith('ovs-agent-')])
        self.assertNotIn('dhcp-agent.conf', files)
        self.assertNotIn('metadata-agent.conf', files)

    def test_ovn_instead_of_the_agents(self):
        self.cloud.network = 'ovn'
        files = cloud_config.configs(self.cloud)
        ml2 = files['ml2.conf']
        self.assertEqual('ovn', ml2['ml2']['mechanism_drivers'])
        self.assertEqual('flat', ml2['ml2']['type_drivers'])
        self.assertEqual(
            'unix:%s' % os.path.join(self.state, 'ovn', 'nb.sock'),
            ml2['ovn']['ovn_nb_connection'])
        self.assertEqual(
            'unix:%s' % os.path.join(self.state, 'ovn', 'sb.sock'),
            ml2['ovn']['ovn_sb_connection'])
        # No metadata service: every server gets a config drive.
        self.assertEqual('false', ml2['ovn']['ovn_metadata_enabled'])
        self.assertEqual(
            'true', files['nova.conf']['DEFAULT']['force_config_drive'])
        # The port's network-vif-plugged leaves the process that sent the
        # binding's network-changed: it waits out no 2 s batch.
        self.assertEqual(
            '1', files['neutron.conf']['DEFAULT']['send_events_interval'])
        self.assertFalse([n for n in files if n.startswith('ovs-agent-')])
        self.assertNotIn('dhcp-agent.conf', files)
        self.assertNotIn('metadata-agent.conf', files)

    def test_config_drive_only_when_asked_with_the_agents(self):
        files = cloud_config.configs(self.cloud)
        self.assertEqual(
            'false', files['nova.conf']['DEFAULT']['force_config_drive'])
        self.assertNotIn('ovn', files['ml2.conf'])

    def test_write_all(self):
        for name in (('glance', 'glance-api-paste.ini'),
                     ('nova', 'api-paste.ini')):
            os.makedirs(os.path.join(self.venv, 'etc', name[0]),
                        exist_ok=True)
            with open(os.path.join(self.venv, 'etc', *name), 'w') as f:
                f.write('[pipeline:main]\n')
        self.cloud.horizon_venv = '/hv'
        cloud_config.write_all(self.cloud)
        etc = os.path.join(self.state, 'etc')
        written = sorted(os.listdir(etc))
        self.assertIn('api-paste.ini', written)
        self.assertIn('nova-compute-lxd2.conf', written)
        self.assertFalse([n for n in written if n.endswith('.tmp')])
        for name in cloud_config.configs(self.cloud):
            path = os.path.join(etc, name)
            # They hold the password.
            self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))
            if name.endswith('.conf') and name != 'rabbitmq.conf':
                conf = configparser.ConfigParser(interpolation=None)
                conf.read(path)
                self.assertTrue(conf.sections(), name)
        with open(os.path.join(self.state, 'openrc')) as f:
            openrc = f.read()
        self.assertIn('export OS_PASSWORD=s3cr%t\n', openrc)
        self.assertIn('export PATH=%s/bin:$PATH\n' % self.venv, openrc)

    def test_serial_consoles_through_the_proxy_one_range_per_compute(self):
        files = cloud_config.configs(self.cloud)
        serial = files['nova.conf']['serial_console']
        self.assertEqual(('true', 'ws://127.0.0.1:6083/', '127.0.0.1'),
                         (serial['enabled'], serial['base_url'],
                          serial['proxyclient_address']))
        self.assertEqual(['10000:10100', '10100:10200'], [
            files['nova-compute-%s.conf' % m]['serial_console']['port_range']
            for m in ('lxd1', 'lxd2')])

    def test_horizon_only_with_its_venv(self):
        self.assertNotIn('horizon/local/local_settings.py',
                         cloud_config.configs(self.cloud))
        self.cloud.horizon_venv = '/hv'
        text = cloud_config.configs(self.cloud)[
            'horizon/local/local_settings.py']
        settings = {}
        exec(text, settings)
        self.assertEqual('http://127.0.0.1:5000/v3',
                         settings['OPENSTACK_KEYSTONE_URL'])
        self.assertEqual('/hv/static', settings['STATIC_ROOT'])
        self.assertEqual('SERIAL', settings['CONSOLE_TYPE'])
        # The Console tab frames Horizon's serial console page.
        self.assertEqual('SAMEORIGIN', settings['X_FRAME_OPTIONS'])
        self.assertFalse(settings['LAUNCH_INSTANCE_DEFAULTS']['create_volume'])
        # No memcached: sessions in the state folder, a local cache.
        self.assertEqual(os.path.join(self.state, 'horizon', 'sessions'),
                         settings['SESSION_FILE_PATH'])
        self.assertIn('locmem', settings['CACHES']['default']['BACKEND'])
        self.assertNotIn('s3cr%t', text)

    def test_main_reads_the_secret_and_members(self):
        with open(os.path.join(self.state, 'secret'), 'w') as f:
            f.write('abc\n')
        written = {}
        self.patch(cloud_config, 'write_all',
                   lambda cloud: written.setdefault('cloud', cloud))
        cloud_config.main([
            '--state', self.state, '--venv', self.venv,
            '--host', '127.0.0.1', '--region', 'R', '--amqp-port', '5672',
            '--network', 'ovs', '--lxd-project', 'p', '--lxd-pool', 'pool',
            '--bridge-prefix', 'br-', '--of-port', '100',
            '--phys-prefix', 'ph-', '--physnet', 'net', '--metadata-port', '1',
            '--serialproxy-port', '2', '--horizon-venv', '/h',
            '--member', 'lxd1=/a', '--member', 'lxd2=/b'])
        cloud = written['cloud']
        self.assertEqual('abc', cloud.secret)
        self.assertEqual({'lxd1': '/a', 'lxd2': '/b'}, cloud.members)
        self.assertEqual(['lxd1', 'lxd2'], list(cloud.members))
        self.assertEqual(('ph-', 'net', 1, 2, '/h'),
                         (cloud.phys_prefix, cloud.physnet,
                          cloud.metadata_port, cloud.serialproxy_port,
                          cloud.horizon_venv))

    def test_main_refuses_a_bad_member(self):
        with open(os.path.join(self.state, 'secret'), 'w') as f:
            f.write('abc\n')
        e = self.assertRaises(SystemExit, cloud_config.main, [
            '--state', self.state, '--venv', self.venv,
            '--host', '127.0.0.1', '--region', 'R', '--amqp-port', '5672',
            '--network', 'ovs', '--lxd-project', 'p', '--lxd-pool', 'pool',
            '--bridge-prefix', 'br-', '--of-port', '100',
            '--phys-prefix', 'ph-', '--physnet', 'net', '--metadata-port', '1',
            '--serialproxy-port', '2', '--member', 'lxd1'])
        self.assertIn('NAME=LXD_DIR', str(e))
