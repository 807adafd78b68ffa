"""Consoles through Nova's API.

The console log (``console log show``) and the serial console through
nova-serialproxy's own code.
"""

import os
import socket
import subprocess
import sys
import threading
import time

import fixtures
import nova.conf
from nova.console import websocketproxy
from nova import context
from nova import objects
from nova import test
from nova import utils
import websocket

from nova_lxd.lxd import client
from nova_lxd.lxd import errors
from tests.certs import write_self_signed
from tests.functional import base
from tools import testbed

# What the guest writes to its console: UTF-8, invalid UTF-8, a NUL and
# escape sequences (printf's octal escapes in busybox's sh).
GUEST_BYTES = (r'\nnova-lxd-test: caf\303\251 \342\200\246 \377\376 \000'
               r'\033[1mbold\033[0m\n')
# What Nova makes of them: ASCII, every other byte U+FFFD; its API drops
# the control characters (NUL, ESC, CR).
SHOWN = ('nova-lxd-test: caf\ufffd\ufffd \ufffd\ufffd\ufffd \ufffd\ufffd '
         '[1mbold[0m')


class ConsoleTestCase(base.ServersTestCase):

    def console(self, server, length=None):
        body = {} if length is None else {'length': length}
        return self.api.post_server_action(
            server['id'], {'os-getConsoleOutput': body})['output']

    def guest_prints(self, server, printf_format):
        result = self.lxd.instances.get(
            server['OS-EXT-SRV-ATTR:instance_name']).execute(
            ['sh', '-c', "printf '%s' > /dev/console" % printf_format])
        self.assertEqual(0, result.exit_code, result.stderr)

    def booted(self):
        """A server whose console shows busybox's prompt (boot is over)."""
        server = self.boot()
        for _ in range(60):
            if 'Please press Enter' in self.console(server):
                return server
            time.sleep(0.5)
        self.fail('no prompt on the console: %s' % self.console(server))


class ConsoleLogTest(ConsoleTestCase):

    def test_any_bytes_and_the_last_lines(self):
        server = self.booted()
        self.guest_prints(server, GUEST_BYTES)
        self.guest_prints(server, r'second\nthird\n')
        output = self.console(server)
        self.assertIn('nova-lxd-busybox: booted', output)
        self.assertIn(SHOWN + '\nsecond\nthird\n', output)
        # --lines N: the last N pieces between newlines (the last one is
        # empty: the output ends with one).
        self.assertEqual(SHOWN + '\nsecond\nthird\n',
                         self.console(server, length=4))
        self.assertEqual('third\n', self.console(server, length=2))

    def test_kept_across_stop_start_and_reboots(self):
        server = self.booted()
        name = server['OS-EXT-SRV-ATTR:instance_name']
        booted = 'nova-lxd-busybox: booted %s' % name
        self.assertIn(booted, self.console(server))
        # Printed, never read, then stopped and started: the start empties
        # LXD's log file; the driver read it just before.
        self.guest_prints(server, r'\nunread before the stop\n')
        server = self._stop_server(server)
        server = self._start_server(server)
        self.guest_prints(server, r'\nunread before the reboot\n')
        server = self._reboot_server(server, hard=True)
        self.guest_prints(server, r'\nunread before the soft reboot\n')
        server = self._reboot_server(server, hard=False)
        self.guest_prints(server, r'\nlast\n')
        output = self.console(server)
        self.assertEqual(4, output.count(booted), output)
        # A clean stop runs the image's halt script; a hard reboot kills.
        self.assertEqual(2, output.count('nova-lxd-busybox: halting'))
        lines = [line for line in output.split('\n')
                 if 'unread' in line or 'halting' in line or line == 'last']
        self.assertEqual(['unread before the stop',
                          'nova-lxd-busybox: halting',
                          'unread before the reboot',
                          'unread before the soft reboot',
                          'nova-lxd-busybox: halting',
                          'last'], lines)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def until(read, want, timeout=30, poke=None):
    """Read until ``want`` arrives; ``poke()`` each second without it."""
    seen = b''
    end = time.monotonic() + timeout
    while want not in seen:
        if time.monotonic() > end:
            raise AssertionError('no %r within %ds; got %r'
                                 % (want, timeout, seen))
        chunk = read()
        if chunk is None and poke:
            poke()
        seen += chunk or b''
    return seen


class SerialConsoleTest(ConsoleTestCase):
    """Nova's serial console: the driver's port and nova-serialproxy."""

    PORTS = (29100, 29120)

    def setUp(self):
        super().setUp()
        self.proxy_port = free_port()
        self.flags(enabled=True, port_range='%d:%d' % self.PORTS,
                   proxyclient_address='127.0.0.1',
                   base_url='ws://127.0.0.1:%d/' % self.proxy_port,
                   group='serial_console')

    def serial_url(self, server):
        with utils.temporary_mutation(self.api, microversion='2.6'):
            return self.api.api_post(
                'servers/%s/remote-consoles' % server['id'],
                {'remote_console': {'protocol': 'serial',
                                    'type': 'serial'}}).body[
                'remote_console']['url']

    def driver_port(self, url):
        """The host:port Nova's token names (what the proxy connects to)."""
        token = url.split('token=')[1]
        found = objects.ConsoleAuthToken.validate(
            context.get_admin_context(), token)
        return found.host, found.port

    def start_proxy(self):
        """nova-serialproxy's server, in this process, for one client.

        websockify's server with Nova's handler, as nova-serialproxy
        runs it.
        """
        # Nova's handler starts a new eventlet hub for the process it
        # expects to be in (websockify forks one per client): in this
        # process that would strand every other green thread.
        self.useFixture(fixtures.MonkeyPatch('eventlet.hubs.use_hub',
                                             lambda *a, **kw: None))
        proxy = websocketproxy.NovaWebSocketProxy(
            listen_host='127.0.0.1', listen_port=self.proxy_port,
            source_is_ipv6=False, file_only=True, run_once=True,
            timeout=120, daemon=False, record=None, traffic=False,
            web=None,
            RequestHandlerClass=websocketproxy.NovaProxyRequestHandler)
        thread = threading.Thread(target=proxy.start_server, daemon=True)
        thread.start()
        for _ in range(100):
            try:
                socket.create_connection(('127.0.0.1', self.proxy_port),
                                         1).close()
                return thread
            except OSError:
                time.sleep(0.1)
        self.fail('nova-serialproxy did not listen')

    @staticmethod
    def tcp_reader(sock):
        def read():
            try:
                return sock.recv(4096) or b'<closed>'
            except socket.timeout:
                return None
        sock.settimeout(1)
        return read

    def shell(self, read, write, command, answer):
        """Wake the console's shell (Enter) and run ``command`` in it."""
        until(read, b'# ', poke=lambda: write(b'\r'))
        write(command + b'\r')
        return until(read, answer)

    def test_a_websocket_client_through_nova_serialproxy(self):
        server = self.booted()
        url = self.serial_url(server)
        self.assertTrue(url.startswith(
            'ws://127.0.0.1:%d/?token=' % self.proxy_port), url)
        host, port = self.driver_port(url)
        self.assertEqual('127.0.0.1', host)
        self.assertIn(port, range(*self.PORTS))

        proxy = self.start_proxy()
        ws = websocket.create_connection(url, subprotocols=['binary'],
                                         timeout=1)

        def read():
            try:
                return ws.recv()
            except websocket.WebSocketTimeoutException:
                return None
        # The answer, then the container's name (neither is in the
        # command line the shell echoes).
        output = self.shell(read, ws.send_binary,
                            b'echo nova-lxd-$((6 * 7)); hostname',
                            server['OS-EXT-SRV-ATTR:instance_name'].encode())
        self.assertIn(b'nova-lxd-42', output)

        # One client at a time: a second one is told so.
        with socket.create_connection((host, port), 10) as other:
            self.assertIn(b'another client is attached',
                          until(self.tcp_reader(other), b'<closed>'))

        ws.close()
        proxy.join(30)
        self.assertFalse(proxy.is_alive())
        # The first one left: the next one gets the console, straight on
        # the driver's port, and the same shell.
        with socket.create_connection((host, port), 10) as sock:
            self.shell(self.tcp_reader(sock), sock.sendall,
                       b'echo again-$((2 + 3))', b'again-5')

    def test_tools_serial_console_runs_a_command(self):
        # What tests/cloud/cli-flow and users run against tools/cloud.
        server = self.booted()
        url = self.serial_url(server)
        proxy = self.start_proxy()
        tool = os.path.join(os.path.dirname(__file__), '..', '..', 'tools',
                            'serial-console')
        done = subprocess.run(
            [sys.executable, tool, url, '--run', 'echo tool-$((3 * 14))',
             '--expect', 'tool-42', '--timeout', '60'],
            capture_output=True, timeout=90)
        self.assertEqual(0, done.returncode, done.stderr)
        self.assertIn(b'tool-42', done.stdout)
        proxy.join(30)

    def refused(self, host, port, wait=10):
        """Whether connections to host:port are refused (within ``wait``)."""
        end = time.monotonic() + wait
        while True:
            try:
                socket.create_connection((host, port), 5).close()
            except ConnectionRefusedError:
                return True
            if time.monotonic() > end:
                return False
            time.sleep(0.5)

    def test_one_port_per_server_gone_with_it_back_when_it_runs(self):
        server = self.booted()
        member = server['OS-EXT-SRV-ATTR:hypervisor_hostname']
        host, port = self.driver_port(self.serial_url(server))
        self.assertEqual((host, port), self.driver_port(
            self.serial_url(server)))

        server = self._stop_server(server)
        self.assertTrue(self.refused(host, port))
        with utils.temporary_mutation(self.api, microversion='2.6'):
            self.assertEqual(409, self.api.api_post(
                'servers/%s/remote-consoles' % server['id'],
                {'remote_console': {'protocol': 'serial',
                                    'type': 'serial'}},
                check_response_status=False).status)
        server = self._start_server(server)
        self.assertEqual((host, port), self.driver_port(
            self.serial_url(server)))

        # nova-compute restarts: no listener until Nova asks again, then
        # the same port (the proxy's check of an older token passes).
        self.use_socket(member)
        self.computes[member] = self.restart_compute_service(
            self.computes[member], keep_hypervisor_state=False)
        self.assertTrue(self.refused(host, port))
        self.assertEqual((host, port), self.driver_port(
            self.serial_url(server)))
        with socket.create_connection((host, port), 10) as sock:
            self.shell(self.tcp_reader(sock), sock.sendall,
                       b'echo back-$((1 + 1))', b'back-2')

        self._delete_server(server)
        self.assertTrue(self.refused(host, port))


class ConsoleOverHTTPSTest(test.NoDBTestCase):
    """LXD's console websockets over HTTPS, pinned like every request."""

    def setUp(self):
        super().setUp()
        self.bed = testbed.Testbed()
        self.flags(endpoint=self.bed.endpoint,
                   client_cert=self.bed.client_cert,
                   client_key=self.bed.client_key,
                   server_cert=self.bed.server_cert,
                   storage_pool=self.bed.pool, group='lxd')
        self.lxd = client.LXD(nova.conf.CONF.lxd)
        member = self.bed.members[-1]
        self.container = self.bed.client().instances.create(
            {'name': 'nova-lxd-test-console-%s' % member,
             'source': {'type': 'image', 'alias': self.bed.image}},
            target=member, wait=True)
        self.addCleanup(testbed.delete_container, self.container)
        self.container.start(wait=True)

    def test_typed_and_read_on_the_member_that_runs_it(self):
        console = self.lxd.open_console(self.container.name, 80, 24)
        self.addCleanup(console.close)
        time.sleep(1)   # LXD drops what is typed before it is attached

        console.write(b'\r')
        until(console.read, b'# ')
        console.write(b'echo over-$((40 + 3))\r')
        until(console.read, b'over-43')

    def test_another_certificate_is_refused(self):
        other, _ = write_self_signed(
            self.useFixture(fixtures.TempDir()).path, 'other')
        self.flags(server_cert=other, group='lxd')
        e = self.assertRaises(errors.LXDError, self.lxd.open_console,
                              self.container.name, 80, 24)
        # The operator's log names the file; the tenant's words do not.
        self.assertIn('presented a certificate other than %s' % other,
                      e.lxd_reason)
        self.assertIn('presented a certificate other than <host path>',
                      str(e))
