#!/usr/bin/env python3
"""The configuration files of the small cloud (tools/cloud), one function each.

``tools/cloud up`` runs this file (standard library only) with the cloud's
layout on the command line; it writes every service's config into the
state folder's etc/ (mode 0600: they hold the password) and the admin's
openrc. Each ``*_conf`` function returns one file as a ConfigParser, so
that the tests can read what a service would get.
"""

import argparse
import configparser
import dataclasses
import hashlib
import os
import shutil
import sys

# The [DEFAULT] host of the services that are not per member.
COMPUTE_HOST = 'nova-lxd-cloud'


@dataclasses.dataclass
class Cloud:
    """Where the cloud lives and what it is made of (tools/cloud's view)."""

    state: str                  # the state folder
    venv: str                   # the services' venv
    secret: str                 # the admins', services' and database password
    members: dict               # test-bed member name -> its LXD_DIR
    host: str = '127.0.0.1'     # every service listens here
    region: str = 'RegionOne'
    amqp_port: int = 5672
    network: str = 'ovs'        # "ovs", "ovn" or "none" (Neutron's API alone)
    lxd_project: str = 'nova-lxd-cloud'
    lxd_pool: str = 'testbed-btrfs'
    bridge_prefix: str = 'brnlc-'   # + member: its agent's integration bridge
    phys_prefix: str = 'brnlp-'     # + member: its agent's bridge of physnet
    of_port: int = 16633        # + the member's index: its OpenFlow port
    metadata_port: int = 8775   # Nova's metadata API
    serialproxy_port: int = 6083    # nova-serialproxy (websockets)
    # Each member's nova-compute: serial console ports from
    # serial_port_base + 100 x its index (both listen on ``host``).
    serial_port_base: int = 10000
    # Horizon's venv (its static files are there), or None: no Horizon.
    horizon_venv: str = None
    # The flat provider network every agent maps to its own bridge
    # (tools/cloud patches those bridges together).
    physnet: str = 'cloud'

    @property
    def network_host(self):
        """The member whose bridge the DHCP agent plugs into."""
        return next(iter(self.members))

    @property
    def etc(self):
        return os.path.join(self.state, 'etc')

    @property
    def log(self):
        return os.path.join(self.state, 'log')

    @property
    def memcached(self):
        """memcached's unix socket (no TCP listener): Keystone's cache."""
        return os.path.join(self.state, 'run', 'memcached.sock')

    @property
    def ovsdb(self):
        return 'unix:%s' % os.path.join(self.state, 'ovs', 'db.sock')

    def ovn_db(self, name):
        """OVN's database ``name`` ("nb" or "sb"): its unix socket."""
        return 'unix:%s' % os.path.join(self.state, 'ovn', name + '.sock')

    @property
    def transport_url(self):
        return 'rabbit://guest:guest@%s:%d/' % (self.host, self.amqp_port)

    def db_url(self, name):
        # The unix socket only: MariaDB has no TCP listener.
        return ('mysql+pymysql://openstack:%s@localhost/%s?unix_socket=%s'
                '&charset=utf8mb4' % (
                    self.secret, name,
                    os.path.join(self.state, 'mysql', 'mysqld.sock')))

    def url(self, port, path=''):
        return 'http://%s:%d%s' % (self.host, port, path)


def _conf(sections):
    """A ConfigParser from {section: {key: value}} (values as given)."""
    conf = configparser.ConfigParser(interpolation=None)
    conf.optionxform = str
    for section, values in sections.items():
        if section != 'DEFAULT':
            conf.add_section(section)
        for key, value in values.items():
            conf.set(section, key, str(value))
    return conf


def _auth(cloud, user, **extra):
    """[keystone_authtoken] and friends for service user ``user``."""
    values = {
        'auth_url': cloud.url(5000, '/v3'),
        'www_authenticate_uri': cloud.url(5000, '/v3'),
        'auth_type': 'password',
        'username': user,
        'password': cloud.secret,
        'project_name': 'service',
        'user_domain_name': 'Default',
        'project_domain_name': 'Default',
        'region_name': cloud.region,
        'service_token_roles_required': 'true',
    }
    values.update(extra)
    return values


def keystone_conf(cloud):
    keys = os.path.join(cloud.state, 'keystone')
    return _conf({
        'DEFAULT': {'log_file': os.path.join(cloud.log, 'keystone-app.log')},
        'database': {'connection': cloud.db_url('keystone')},
        'token': {'provider': 'fernet'},
        # bcrypt at 4 rounds, as DevStack: at the default 12 every password
        # login (each openstack command's first request) took 0.3 to 1.5 s
        # of the 2 cores. A test cloud's choice, not a production one.
        'identity': {'password_hash_rounds': '4'},
        # Keystone's cache in memcached, as DevStack's and a production
        # cloud's: a token is cached when issued, so each service's first
        # check of a new token is a cache hit. Without it that check took
        # 0.17 to 0.31 s (Keystone building the token again from the
        # database), once in each of nova-api, Glance and Neutron for
        # every new login: 0.55-0.85 s of a POST /servers.
        'cache': {'enabled': 'true',
                  'backend': 'dogpile.cache.memcached',
                  'memcache_servers': 'unix:%s' % cloud.memcached},
        'fernet_tokens': {
            'key_repository': os.path.join(keys, 'fernet-keys')},
        'credential': {
            'key_repository': os.path.join(keys, 'credential-keys')},
    })


def placement_conf(cloud):
    return _conf({
        'DEFAULT': {'log_file': os.path.join(cloud.log, 'placement-app.log')},
        'api': {'auth_strategy': 'keystone'},
        'placement_database': {'connection': cloud.db_url('placement')},
        'keystone_authtoken': _auth(cloud, 'placement'),
    })


def glance_conf(cloud):
    glance = os.path.join(cloud.state, 'glance')
    return _conf({
        'DEFAULT': {
            'log_file': os.path.join(cloud.log, 'glance-app.log'),
            'enabled_backends': 'file:file',
            'worker_self_reference_url': cloud.url(9292),
        },
        'database': {'connection': cloud.db_url('glance')},
        'glance_store': {'default_backend': 'file'},
        'file': {'filesystem_store_datadir': os.path.join(glance, 'images')},
        'os_glance_staging_store': {
            'filesystem_store_datadir': os.path.join(glance, 'staging')},
        'os_glance_tasks_store': {
            'filesystem_store_datadir': os.path.join(glance, 'tasks')},
        'paste_deploy': {'flavor': 'keystone'},
        'oslo_concurrency': {'lock_path': os.path.join(glance, 'locks')},
        'keystone_authtoken': _auth(cloud, 'glance'),
    })


def neutron_conf(cloud):
    neutron = os.path.join(cloud.state, 'neutron')
    return _conf({
        'DEFAULT': {
            'host': COMPUTE_HOST,
            'core_plugin': 'ml2',
            'service_plugins': '',
            'auth_strategy': 'keystone',
            'transport_url': cloud.transport_url,
            'notify_nova_on_port_status_changes': 'true',
            'notify_nova_on_port_data_changes': 'true',
            # Neutron sends Nova's events in batches, one batch at most per
            # interval (2 s by default, 1 the least). With OVN the port's
            # network-vif-plugged leaves the process that has just sent
            # the binding's network-changed: it reached Nova 1.72 s after
            # the plug at 2 s, 0.82 s at 1 (boot_trace, medians of 6).
            'send_events_interval': 1,
            'state_path': neutron,
            'api_paste_config': os.path.join(
                cloud.venv, 'etc', 'neutron', 'api-paste.ini'),
        },
        'database': {'connection': cloud.db_url('neutron')},
        'oslo_concurrency': {'lock_path': os.path.join(neutron, 'locks')},
        'keystone_authtoken': _auth(cloud, 'neutron'),
        'nova': _auth(cloud, 'neutron'),
    })


def ml2_conf(cloud):
    # Provider networks only (flat, on physnet): no tenant networks.
    sections = {
        'ml2': {
            'type_drivers': 'flat',
            'tenant_network_types': '',
            'mechanism_drivers': {'ovs': 'openvswitch', 'ovn': 'ovn'}.get(
                cloud.network, ''),
            'extension_drivers': 'port_security',
        },
        'ml2_type_flat': {'flat_networks': cloud.physnet},
    }
    if cloud.network == 'ovn':
        # No OVN metadata agent: two on one host would make the same
        # namespace (ovnmeta-<network>). Servers get a config drive.
        sections['ovn'] = {
            'ovn_nb_connection': cloud.ovn_db('nb'),
            'ovn_sb_connection': cloud.ovn_db('sb'),
            'ovn_metadata_enabled': 'false',
        }
    return _conf(sections)


def ovs_agent_conf(cloud, member, index):
    """Member ``member``'s Open vSwitch agent (``index``: its place)."""
    return _conf({
        'DEFAULT': {'host': member},
        'ovs': {
            # Its own integration bridge: two agents on one bridge would
            # remove each other's flows.
            'integration_bridge': cloud.bridge_prefix + member,
            'datapath_type': 'netdev',
            'ovsdb_connection': cloud.ovsdb,
            'of_listen_address': cloud.host,
            'of_listen_port': cloud.of_port + index,
            # physnet on a bridge of its own too (the agent owns its flows);
            # tools/cloud patches every member's one to a common switch.
            'bridge_mappings': '%s:%s%s' % (
                cloud.physnet, cloud.phys_prefix, member),
        },
        # The agents run as root: "env" stands in for sudo's root helper.
        # A new port waits for the agent's next loop (default every 2 s;
        # whole seconds, 1 the least) before it passes traffic and Nova
        # hears network-vif-plugged.
        'agent': {'tunnel_types': '', 'root_helper': 'env',
                  'polling_interval': '1'},
        # Security groups in OpenFlow with conntrack (userspace conntrack
        # on the netdev datapath): no per-port Linux bridge.
        'securitygroup': {
            'firewall_driver': 'openvswitch',
            'enable_security_group': 'true',
        },
    })


def dhcp_agent_conf(cloud):
    """Neutron's DHCP agent, on the network host's integration bridge.

    dnsmasq in a namespace qdhcp-<network> per network, plugged with a
    veth pair (a userspace datapath cannot serve an internal port moved
    into a namespace), and the metadata proxy (haproxy) in that namespace:
    the networks have no router.
    """
    return _conf({
        'DEFAULT': {
            'host': cloud.network_host,
            'interface_driver': 'openvswitch',
            'ovs_use_veth': 'true',
            'enable_isolated_metadata': 'true',
            'force_metadata': 'true',
        },
        'ovs': {
            'integration_bridge': cloud.bridge_prefix + cloud.network_host,
            'ovsdb_connection': cloud.ovsdb,
        },
        'agent': {'root_helper': 'env'},
    })


def metadata_agent_conf(cloud):
    """Neutron's metadata agent: haproxy's requests to Nova, signed."""
    return _conf({
        'DEFAULT': {
            'host': cloud.network_host,
            'nova_metadata_host': cloud.host,
            'nova_metadata_port': cloud.metadata_port,
            'metadata_proxy_shared_secret': cloud.secret,
            'metadata_workers': 1,
        },
        'agent': {'root_helper': 'env'},
    })


def nova_conf(cloud):
    nova = os.path.join(cloud.state, 'nova')
    return _conf({
        'DEFAULT': {
            'host': COMPUTE_HOST,
            'my_ip': cloud.host,
            'state_path': nova,
            'transport_url': cloud.transport_url,
            'compute_driver': 'lxd.LXDDriver',
            # One worker each: a 2-core machine.
            'osapi_compute_workers': 1,
            'metadata_workers': 1,
            # A networked boot waits for Neutron's network-vif-plugged (its
            # agent sends it once the port is up on the bridge; Neutron's
            # [nova] section); no event within 120 s fails the boot.
            'vif_plugging_is_fatal': 'true',
            'vif_plugging_timeout': 120,
            # A resize may keep the container on its member (changed live).
            'allow_resize_to_same_host': 'true',
            # With OVN there is no metadata service here: cloud-init reads
            # the config drive.
            'force_config_drive': str(cloud.network == 'ovn').lower(),
        },
        'api': {'auth_strategy': 'keystone'},
        'wsgi': {'api_paste_config': os.path.join(cloud.etc, 'api-paste.ini')},
        'conductor': {'workers': 1},
        'scheduler': {'workers': 1, 'discover_hosts_in_cells_interval': -1},
        'oslo_concurrency': {'lock_path': os.path.join(nova, 'locks')},
        'oslo_messaging_notifications': {'driver': 'noop'},
        'keystone_authtoken': _auth(cloud, 'nova'),
        'placement': _auth(cloud, 'nova'),
        # Nova's metadata API answers the requests Neutron's metadata
        # agent signs with this secret.
        'neutron': _auth(cloud, 'nova', service_metadata_proxy='true',
                         metadata_proxy_shared_secret=cloud.secret),
        'service_user': _auth(cloud, 'nova', send_service_user_token='true'),
        'glance': {'region_name': cloud.region},
        # nova-serialproxy on this host: `console url show --serial` and
        # Horizon's console tab. Through an SSH tunnel the browser comes
        # from "localhost", which the proxy then admits too.
        'serial_console': {
            'enabled': 'true',
            'base_url': 'ws://%s:%d/' % (cloud.host, cloud.serialproxy_port),
            'serialproxy_host': cloud.host,
            'serialproxy_port': cloud.serialproxy_port,
            'proxyclient_address': cloud.host,
        },
        'console': {'allowed_origins': 'localhost'},
        'lxd': {'project': cloud.lxd_project, 'storage_pool': cloud.lxd_pool},
    })


def nova_compute_conf(cloud, member, index=0):
    """Member ``member``'s nova-compute, on top of nova.conf.

    That member's local socket, so the driver knows its local member
    (os-vif plugs on this host); os-vif talks to the cloud's own Open
    vSwitch; its privileged helper runs directly (we are root; there may be
    no sudo).
    """
    etc = cloud.etc
    return _conf({
        'DEFAULT': {
            'host': member,
            'state_path': os.path.join(cloud.state, 'nova', member),
        },
        # Its own serial console ports: every nova-compute here listens
        # on the same address.
        'serial_console': {'port_range': '%d:%d' % (
            cloud.serial_port_base + 100 * index,
            cloud.serial_port_base + 100 * (index + 1))},
        'lxd': {
            'endpoint': os.path.join(cloud.members[member], 'unix.socket'),
            'members': member,
        },
        'os_vif_ovs': {'ovsdb_connection': cloud.ovsdb},
        'vif_plug_ovs_privileged': {
            'helper_command': '%s --config-file %s --config-file %s' % (
                os.path.join(cloud.venv, 'bin', 'privsep-helper'),
                os.path.join(etc, 'nova.conf'),
                os.path.join(etc, 'nova-compute-%s.conf' % member)),
        },
    })


def nova_db_conf(cloud):
    """The databases, for every Nova service but nova-compute.

    nova-compute reaches the database through the conductor only: with a
    [database] connection it tries it directly and logs "No DB access
    allowed in nova-compute".
    """
    return _conf({
        'api_database': {'connection': cloud.db_url('nova_api')},
        'database': {'connection': cloud.db_url('nova')},
    })


def nova_cell0_conf(cloud):
    """cell0's database, for nova-manage cell_v2 map_cell0."""
    return _conf({'database': {'connection': cloud.db_url('nova_cell0')}})


def rabbitmq_conf(cloud):
    # The default guest user may log in from loopback only: that is us.
    return ('loopback_users.guest = true\n'
            'listeners.tcp.default = %s:%d\n' % (cloud.host, cloud.amqp_port))


def openrc(cloud):
    return '\n'.join([
        "# source me: the cloud's admin for the openstack CLI",
        'export OS_AUTH_URL=%s' % cloud.url(5000, '/v3'),
        'export OS_IDENTITY_API_VERSION=3',
        'export OS_USERNAME=admin',
        'export OS_PASSWORD=%s' % cloud.secret,
        'export OS_PROJECT_NAME=admin',
        'export OS_USER_DOMAIN_NAME=Default',
        'export OS_PROJECT_DOMAIN_NAME=Default',
        'export OS_REGION_NAME=%s' % cloud.region,
        'export PATH=%s:$PATH' % os.path.join(cloud.venv, 'bin'),
        '',
    ])


def horizon_settings(cloud):
    """Horizon's local_settings.py: this cloud's Keystone, no memcached.

    Sessions in files and a per-process cache (gunicorn runs one worker);
    the static files collected and compressed once into Horizon's venv;
    the serial console in the instance's Console tab (framed from the
    same origin); launch defaults
    for containers (no volume: this cloud has no Cinder).
    """
    horizon = os.path.join(cloud.state, 'horizon')
    settings = {
        'DEBUG': False,
        # Only 127.0.0.1 listens; an SSH tunnel arrives as "localhost".
        'ALLOWED_HOSTS': [cloud.host, 'localhost'],
        'SECRET_KEY': hashlib.sha256(
            ('horizon:' + cloud.secret).encode()).hexdigest(),
        'LOCAL_PATH': horizon,
        'OPENSTACK_HOST': cloud.host,
        'OPENSTACK_KEYSTONE_URL': cloud.url(5000, '/v3'),
        'OPENSTACK_KEYSTONE_DEFAULT_DOMAIN': 'Default',
        'OPENSTACK_KEYSTONE_DEFAULT_ROLE': 'member',
        'AVAILABLE_REGIONS': [],
        'SESSION_ENGINE': 'django.contrib.sessions.backends.file',
        'SESSION_FILE_PATH': os.path.join(horizon, 'sessions'),
        'CACHES': {'default': {
            'BACKEND': 'django.core.cache.backends.locmem.LocMemCache'}},
        'STATIC_ROOT': os.path.join(cloud.horizon_venv or '', 'static'),
        'COMPRESS_OFFLINE': True,
        'CONSOLE_TYPE': 'SERIAL',
        # The Console tab frames Horizon's own serial console page;
        # Django's default (DENY) refuses that frame.
        'X_FRAME_OPTIONS': 'SAMEORIGIN',
        'LAUNCH_INSTANCE_DEFAULTS': {
            'create_volume': False, 'hide_create_volume': True,
            'disable_volume': True, 'disable_volume_snapshot': True,
            'config_drive': False},
        'OPENSTACK_HYPERVISOR_FEATURES': {
            'can_set_mount_point': False, 'can_set_password': False,
            'requires_keypair': False},
        'OPENSTACK_NEUTRON_NETWORK': {
            'enable_router': False, 'enable_fip_topology_check': False,
            'enable_ipv6': False},
        'TIME_ZONE': 'UTC',
    }
    return ''.join(['# Horizon of tools/cloud (from cloud_config.py)\n'] +
                   ['%s = %r\n' % item for item in settings.items()])


def configs(cloud):
    """{file name in etc/: ConfigParser or text} for the whole cloud."""
    files = {
        'keystone.conf': keystone_conf(cloud),
        'placement.conf': placement_conf(cloud),
        'glance-api.conf': glance_conf(cloud),
        'neutron.conf': neutron_conf(cloud),
        'ml2.conf': ml2_conf(cloud),
        'nova.conf': nova_conf(cloud),
        'nova-db.conf': nova_db_conf(cloud),
        'nova-cell0.conf': nova_cell0_conf(cloud),
        'rabbitmq.conf': rabbitmq_conf(cloud),
    }
    for index, member in enumerate(cloud.members):
        files['nova-compute-%s.conf' % member] = nova_compute_conf(
            cloud, member, index)
        if cloud.network == 'ovs':
            files['ovs-agent-%s.conf' % member] = ovs_agent_conf(
                cloud, member, index)
    if cloud.network == 'ovs':
        files['dhcp-agent.conf'] = dhcp_agent_conf(cloud)
        files['metadata-agent.conf'] = metadata_agent_conf(cloud)
    if cloud.horizon_venv:
        # Horizon imports "local.local_settings" (etc/horizon on its path).
        files['horizon/local/__init__.py'] = ''
        files['horizon/local/local_settings.py'] = horizon_settings(cloud)
    return files


def _write(path, content):
    """Write ``path`` (mode 0600) through a temporary file."""
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        if isinstance(content, configparser.ConfigParser):
            content.write(f)
        else:
            f.write(content)
    os.replace(tmp, path)


def write_all(cloud):
    """Every config into etc/, the paste files beside them, openrc."""
    os.makedirs(cloud.etc, exist_ok=True)
    if cloud.horizon_venv:
        os.makedirs(os.path.join(cloud.etc, 'horizon', 'local'),
                    exist_ok=True)
        os.makedirs(os.path.join(cloud.state, 'horizon', 'sessions'),
                    mode=0o700, exist_ok=True)
    for name in ('images', 'staging', 'tasks'):
        os.makedirs(os.path.join(cloud.state, 'glance', name), exist_ok=True)
    for member in cloud.members:
        os.makedirs(os.path.join(cloud.state, 'nova', member), exist_ok=True)
    for name, content in configs(cloud).items():
        _write(os.path.join(cloud.etc, name), content)
    for paste in (('glance', 'glance-api-paste.ini'),
                  ('nova', 'api-paste.ini')):
        shutil.copy(os.path.join(cloud.venv, 'etc', *paste), cloud.etc)
    _write(os.path.join(cloud.state, 'openrc'), openrc(cloud))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='cloud_config.py',
        description="Write the configs of tools/cloud's services.")
    parser.add_argument('--state', required=True)
    parser.add_argument('--venv', required=True)
    parser.add_argument('--host', required=True)
    parser.add_argument('--region', required=True)
    parser.add_argument('--amqp-port', type=int, required=True)
    parser.add_argument('--network', choices=('ovs', 'ovn', 'none'),
                        required=True)
    parser.add_argument('--lxd-project', required=True)
    parser.add_argument('--lxd-pool', required=True)
    parser.add_argument('--bridge-prefix', required=True)
    parser.add_argument('--phys-prefix', required=True)
    parser.add_argument('--physnet', required=True)
    parser.add_argument('--metadata-port', type=int, required=True)
    parser.add_argument('--of-port', type=int, required=True)
    parser.add_argument('--serialproxy-port', type=int, required=True)
    parser.add_argument('--horizon-venv', default=None,
                        help="Horizon's venv; no Horizon without it")
    parser.add_argument(
        '--member', action='append', default=[], metavar='NAME=LXD_DIR',
        required=True, help='a test-bed member and its LXD_DIR (repeat)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    members = {}
    for item in args.member:
        name, sep, lxd_dir = item.partition('=')
        if not sep or not name or not lxd_dir:
            sys.exit('cloud_config.py: --member wants NAME=LXD_DIR, not %r'
                     % item)
        members[name] = lxd_dir
    with open(os.path.join(args.state, 'secret')) as f:
        secret = f.read().strip()
    write_all(Cloud(
        state=args.state, venv=args.venv, secret=secret, members=members,
        host=args.host, region=args.region, amqp_port=args.amqp_port,
        network=args.network, lxd_project=args.lxd_project,
        lxd_pool=args.lxd_pool, bridge_prefix=args.bridge_prefix,
        phys_prefix=args.phys_prefix, physnet=args.physnet,
        of_port=args.of_port, metadata_port=args.metadata_port,
        serialproxy_port=args.serialproxy_port,
        horizon_venv=args.horizon_venv))


if __name__ == '__main__':
    main()
