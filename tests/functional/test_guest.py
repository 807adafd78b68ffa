"""A real distribution through Nova's API: Debian 12 with cloud-init.

The test bed's Debian image (tools/build-debian-image) boots as a tenant's
server; inside it (LXD exec) cloud-init must be done with Nova's values,
through LXD's /dev/lxd or through a config drive. Few boots: each test
follows one server through several actions.
"""

import base64
import gzip
import time
import uuid

from nova import utils
from testtools import content

from tests.functional import base
from tests.functional import test_lifecycle
from tests.functional import test_network

KEY = test_lifecycle.KEY
# A tenant's metadata that tries to rewrite the meta-data document.
HOSTILE_META = {'role': 'web\ninstance-id: evil\n---\nlocal-hostname: x'}
# Recorded by each run of a user-data script, with the instance-id it ran as.
RUNS = '/root/user-data-runs'
SCRIPT = ('#!/bin/sh\necho "$(cloud-init query instance_id)" >> %s\n' %
          RUNS).encode()
HOST_KEY = '/etc/ssh/ssh_host_ed25519_key.pub'
# Seconds for a rebuild or a snapshot of the Debian image on a busy machine.
SLOW = 300


def b64(data):
    return base64.b64encode(data).decode()


class DebianGuest(object):
    """Mixin: the Debian image in Glance, a keypair, Debian-sized flavors."""

    # btrfs: the image is unpacked once per member, servers are snapshots
    # of it (the dir pool unpacks 210 MB for each server).
    quota_pool = True

    def setUp(self):
        super().setUp()
        self.debian = self.glance_image('debian-12', 'unified')
        self.api.post_keypair({'keypair': {'name': 'k',
                                           'public_key': KEY}})
        self.small = self._create_flavor(name='d-small', vcpu=1,
                                         memory_mb=512, disk=2, ephemeral=0)

    def glance_image(self, name, form):
        image_id = str(uuid.uuid4())
        with open(self.bed.debian_image(form), 'rb') as data:
            self.glance.create(None, {
                'id': image_id, 'name': name, 'status': 'active',
                'disk_format': 'raw', 'container_format': 'bare',
                'properties': {'os_distro': 'debian', 'os_version': '12'}},
                data=data)
        return image_id

    def boot_debian(self, name, user_data=None, image=None, **extra):
        body = dict(self._build_server(
            name=name, image_uuid=image or self.debian,
            flavor_id=self.small, networks=extra.pop('networks', 'none')),
            key_name='k', **extra)
        if user_data is not None:
            body['user_data'] = b64(user_data)
        server = self.api.post_server({'server': body})
        return self._wait_for_state_change(server, 'ACTIVE')

    def run_in(self, server, *command):
        """stdout of a command in the server's container; it must succeed."""
        rc, out, err = self.bed.exec(
            server['OS-EXT-SRV-ATTR:instance_name'], *command)
        self.assertEqual(0, rc, 'in the container: %s -> %s %s' % (
            ' '.join(command), out, err))
        return out.strip()

    def cloud_init_done(self, server, datasource):
        """cloud-init finished without errors, from ``datasource``."""
        status = self.run_in(server, 'cloud-init', 'status', '--wait',
                             '--long')
        self.assertIn('status: done', status)
        self.assertIn('detail:\n' + datasource, status)
        self.assertEqual('', self.run_in(
            server, 'sh', '-c', 'grep -h "\\[WARNING\\]\\|Traceback" '
            '/var/log/cloud-init.log || true'))

    def assertNovaValues(self, server):
        """cloud-init query shows the server's identity and key."""
        query = lambda key: self.run_in(  # noqa: E731
            server, 'cloud-init', 'query', key)
        self.assertEqual(server['id'], query('instance_id'))
        self.assertEqual(server['OS-EXT-SRV-ATTR:hostname'],
                         query('local_hostname'))
        self.assertEqual(server['OS-EXT-SRV-ATTR:hostname'],
                         self.run_in(server, 'hostname'))
        self.assertIn(KEY, query('public_ssh_keys'))
        # cloud-init's default user (Debian's: debian) got the key.
        self.assertEqual(KEY, self.run_in(
            server, 'cat', '/home/debian/.ssh/authorized_keys'))

    def runs(self, server):
        """The instance-ids the user-data script ran as, in order."""
        return self.run_in(server, 'sh', '-c',
                           'cat %s 2>/dev/null || true' % RUNS).split()

    def console(self, server):
        return self.api.post_server_action(
            server['id'], {'os-getConsoleOutput': {}})['output']


class DebianGuestTest(DebianGuest, base.ServersTestCase):

    def test_lxd_datasource_through_stop_start_reboot_and_resize(self):
        self.flags(allow_resize_to_same_host=True)
        server = self.boot_debian('web1', gzip.compress(SCRIPT),
                                  metadata=HOSTILE_META)
        self.only_member(server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self.cloud_init_done(server, 'DataSourceLXD')
        self.assertNovaValues(server)
        # The gzip-compressed user data (a script) ran, once.
        self.assertEqual([server['id']], self.runs(server))
        self.assertIn('Cloud-init v. 22.4.2 finished', self.console(server))

        # Stop is systemd's own shutdown, well within shutdown_timeout.
        started = time.monotonic()
        server = self._stop_server(server)
        stop_seconds = time.monotonic() - started
        self.addDetail('stop_seconds', content.text_content(
            '%.1f' % stop_seconds))
        self.assertLess(stop_seconds, 20)
        self.assertIn('Reached target shutdown.target', self.console(server))

        for action in ('start', 'reboot'):
            if action == 'start':
                server = self._start_server(server)
            else:
                server = self._reboot_server(server, hard=False)
            self.cloud_init_done(server, 'DataSourceLXD')
            # Same instance: the per-instance user data does not run again.
            self.assertEqual([server['id']], self.runs(server))
        self.assertEqual(3, self.console(server).count(
            'Cloud-init v. 22.4.2 finished'))

        # Resize: what the guest sees follows (MemTotal from the test bed's
        # lxcfs; nproc from the cpuset LXD's scheduler gives for limits.cpu,
        # on LXD 5.0.2 only from a daemon restarted after joining the
        # cluster, as the test bed's are: see the install guide).
        self.assertEqual('1', self.container(server)['config']['limits.cpu'])
        self.assertEqual('1', self.run_in(server, 'nproc'),
                         'LXD did not pin the container to its 1 vCPU: was '
                         'the member\'s LXD restarted after it joined the '
                         'cluster? (tools/lxd-testbed down, then up)')
        self.assertEqual('MemTotal:         524288 kB', self.run_in(
            server, 'grep', 'MemTotal', '/proc/meminfo'),
            'not the flavor\'s memory: is the test bed\'s lxcfs running? '
            '(tools/lxd-testbed down, then up)')
        bigger = self._create_flavor(name='d-big', vcpu=2, memory_mb=1024,
                                     disk=2, ephemeral=0)
        server = self._resize_server(server, bigger)
        server = self._confirm_resize(server)
        self.assertEqual('2', self.container(server)['config']['limits.cpu'])
        self.assertEqual('2', self.run_in(server, 'nproc'))
        self.assertEqual('MemTotal:        1048576 kB', self.run_in(
            server, 'grep', 'MemTotal', '/proc/meminfo'))
        self.assertIn('1024', self.run_in(server, 'free', '-m'))

    def test_rebuild_and_snapshot_run_cloud_init_afresh(self):
        self.glance_keeps_uploads()
        server = self.boot_debian('web2', SCRIPT)
        self.cloud_init_done(server, 'DataSourceLXD')
        self.assertEqual([server['id']], self.runs(server))
        host_key = self.run_in(server, 'cat', HOST_KEY)

        # Rebuild: a fresh root, cloud-init runs again with the new user
        # data (a cloud-config), as the same server.
        cloud_config = (b'#cloud-config\nwrite_files:\n'
                        b'- path: /root/from-cloud-config\n'
                        b'  content: rebuilt\n')
        with utils.temporary_mutation(self.api, microversion='2.57'):
            self.api.post_server_action(server['id'], {'rebuild': {
                'imageRef': self.debian, 'user_data': b64(cloud_config)}})
        self.notifier.wait_for_versioned_notifications(
            'instance.rebuild.end', timeout=SLOW)
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.cloud_init_done(server, 'DataSourceLXD')
        self.assertNovaValues(server)
        self.assertEqual([], self.runs(server))
        self.assertEqual('rebuilt', self.run_in(
            server, 'cat', '/root/from-cloud-config'))
        rebuilt_key = self.run_in(server, 'cat', HOST_KEY)
        self.assertNotEqual(host_key, rebuilt_key)

        # Snapshot: a server booted from it is a new instance to cloud-init
        # (its own identity, host keys, hostname), with the files kept.
        image_id = self.api.post_server_action(
            server['id'], {'createImage': {'name': 'web2-snap'}})['image_id']
        # Publishing and uploading 210 MB take a while.
        self.notifier.wait_for_versioned_notifications(
            'instance.snapshot.end', timeout=SLOW)
        copy = self.boot_debian('web3', image=image_id)
        self.cloud_init_done(copy, 'DataSourceLXD')
        self.assertNovaValues(copy)
        self.assertEqual('rebuilt', self.run_in(
            copy, 'cat', '/root/from-cloud-config'))
        self.assertNotEqual(rebuilt_key, self.run_in(copy, 'cat', HOST_KEY))
        self.assertEqual(sorted([server['id'], copy['id']]), sorted(
            self.run_in(copy, 'ls', '/var/lib/cloud/instances').split()))


class DebianNetworkTest(DebianGuest, test_network.Ports,
                        base.ServersTestCase):
    """Static addresses from Neutron, both ways in (needs Open vSwitch)."""

    def setUp(self):
        super().setUp()
        # The Neutron fixture's subnet, without DHCP, with a DNS server and
        # a host route: the guest configures it from what Nova gives.
        self.neutron._subnets[self.neutron.subnet_1['id']].update({
            'enable_dhcp': False, 'dns_nameservers': ['192.168.1.3'],
            'host_routes': [{'destination': '10.9.0.0/16',
                             'nexthop': '192.168.1.254'}]})

    def assertStaticAddress(self, server, port):
        address = port['fixed_ips'][0]['ip_address']
        self.assertIn('inet %s/24' % address, self.run_in(
            server, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'))
        routes = self.run_in(server, 'ip', '-4', 'route')
        self.assertIn('default via 192.168.1.1 dev eth0', routes)
        self.assertIn('10.9.0.0/16 via 192.168.1.254 dev eth0', routes)
        network = self.run_in(
            server, 'cat', '/etc/systemd/network/10-cloud-init-eth0.network')
        self.assertIn('MACAddress=%s' % port['mac_address'], network)
        self.assertIn('DNS=192.168.1.3', network)

    def test_static_address_both_ways_in(self):
        # LXD's /dev/lxd (user.network-config), the unified image.
        port = self.port()
        server = self.boot_debian('net1', SCRIPT,
                                  networks=[{'port': port['id']}])
        self.cloud_init_done(server, 'DataSourceLXD')
        self.assertNovaValues(server)
        self.assertStaticAddress(server, port)

        # A config drive (network_data.json), the rootfs tarball image.
        rootfs = self.glance_image('debian-12-rootfs', 'rootfs')
        port = self.port()
        server = self.boot_debian('net2', SCRIPT, image=rootfs,
                                  networks=[{'port': port['id']}],
                                  config_drive=True)
        self.cloud_init_done(server, 'DataSourceConfigDrive')
        self.assertNovaValues(server)
        self.assertEqual([server['id']], self.runs(server))
        self.assertStaticAddress(server, port)
