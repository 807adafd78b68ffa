"""The serial console's ports and bridge, with LXD's console faked."""

import queue
import socket
import types
from unittest import mock

from nova import exception
from nova import test
from oslo_utils.fixture import uuidsentinel as uuids

from nova_lxd.lxd import errors
from nova_lxd import serial_console


def free_ports(count):
    """``count`` consecutive ports free on 127.0.0.1, as a range."""
    for start in range(29500, 29900, count):
        try:
            for port in range(start, start + count):
                with socket.socket() as sock:
                    sock.bind(('127.0.0.1', port))
        except OSError:
            continue
        return range(start, start + count)
    raise AssertionError('no %d free ports' % count)


class FakeConsole(object):
    """LXD's console: what is typed is kept, ``output`` is read."""

    def __init__(self):
        self.typed = queue.Queue()
        self.output = queue.Queue()
        self.closed = False

    def read(self):
        return self.output.get()

    def write(self, data):
        self.typed.put(data)
        return True

    def wait_closed(self):
        while not self.closed:
            serial_console.time.sleep(0.05)

    def close(self):
        self.closed = True
        self.output.put(b'')


class PortsTest(test.NoDBTestCase):

    def test_port_range(self):
        self.assertEqual(range(10000, 20000),
                         serial_console.port_range('10000:20000'))
        for bad in ('20000:10000', '0:10', '10:70000'):
            e = self.assertRaises(exception.InvalidConfiguration,
                                  serial_console.port_range, bad)
            self.assertIn('[serial_console] port_range %s' % bad, str(e))

    def test_each_instance_starts_at_its_own_place(self):
        # The UUID as a number, modulo the range's length.
        self.assertEqual([103, 104, 100, 101, 102],
                         serial_console.preferred_order(
                             range(100, 105),
                             '00000000-0000-0000-0000-000000000008'))


class SerialConsolesTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(test.fixtures.MonkeyPatch(
            'nova_lxd.serial_console.SETTLE_SECONDS', 0))
        self.ports = free_ports(3)
        self.conf = types.SimpleNamespace(
            proxyclient_address='127.0.0.1',
            port_range='%d:%d' % (self.ports.start, self.ports.stop))
        self.lxd = mock.Mock()
        self.fake = FakeConsole()
        self.lxd.open_console.return_value = self.fake
        self.consoles = serial_console.SerialConsoles(self.lxd, self.conf)
        self.addCleanup(self.consoles.stop_all)
        self.one = types.SimpleNamespace(uuid=uuids.one, name='instance-1')
        self.two = types.SimpleNamespace(uuid=uuids.two, name='instance-2')

    def connect(self, found):
        sock = socket.create_connection((found.host, found.port), 5)
        sock.settimeout(5)
        self.addCleanup(sock.close)
        return sock

    def test_one_port_per_instance_kept(self):
        first = self.consoles.console(self.one, 'instance-1')
        self.assertEqual('127.0.0.1', first.host)
        self.assertIn(first.port, self.ports)
        self.assertEqual(first.port,
                         self.consoles.console(self.one, 'instance-1').port)
        other = self.consoles.console(self.two, 'instance-2')
        self.assertNotEqual(first.port, other.port)
        # Stopped: the port closes, and stays the instance's.
        self.consoles.stop(self.one)
        self.assertRaises(ConnectionRefusedError, socket.create_connection,
                          (first.host, first.port), 5)
        self.assertEqual(first.port,
                         self.consoles.console(self.one, 'instance-1').port)

    def test_ports_others_hold_are_skipped_until_none_is_left(self):
        held = []
        for port in self.ports[:2]:
            sock = socket.socket()
            sock.bind(('127.0.0.1', port))
            sock.listen(1)
            held.append(sock)
            self.addCleanup(sock.close)
        self.assertEqual(self.ports[2],
                         self.consoles.console(self.one, 'instance-1').port)
        self.assertRaises(exception.SocketPortRangeExhaustedException,
                          self.consoles.console, self.two, 'instance-2')
        # Forgotten (deleted): its port is free for another.
        self.consoles.forget(self.one)
        self.assertEqual(self.ports[2],
                         self.consoles.console(self.two, 'instance-2').port)

    def test_bytes_both_ways_one_client_at_a_time(self):
        found = self.consoles.console(self.one, 'instance-1')
        client = self.connect(found)
        client.sendall(b'ls\r')
        self.assertEqual(b'ls\r', self.fake.typed.get(timeout=5))
        self.fake.output.put(b'bin  etc\r\n\xff\x00')
        self.assertEqual(b'bin  etc\r\n\xff\x00', client.recv(100))
        self.lxd.open_console.assert_called_once_with(
            'instance-1', serial_console.WIDTH, serial_console.HEIGHT)

        second = self.connect(found)
        self.assertEqual(serial_console.BUSY, second.recv(200))
        self.assertEqual(b'', second.recv(10))

        # The client leaves: LXD's console is let go; the next one comes.
        client.close()
        for _ in range(100):
            if self.fake.closed:
                break
            serial_console.time.sleep(0.05)
        self.assertTrue(self.fake.closed)
        self.fake = self.lxd.open_console.return_value = FakeConsole()
        third = self.connect(found)
        third.sendall(b'x')
        self.assertEqual(b'x', self.fake.typed.get(timeout=5))

    def test_stop_ends_the_client(self):
        found = self.consoles.console(self.one, 'instance-1')
        client = self.connect(found)
        client.sendall(b'x')
        self.fake.typed.get(timeout=5)
        self.consoles.stop(self.one)
        self.assertEqual(b'', client.recv(10))
        self.assertTrue(self.fake.closed)

    def test_the_console_closed_by_lxd_ends_the_client(self):
        client = self.connect(self.consoles.console(self.one, 'instance-1'))
        self.fake.output.put(b'halting\r\n')
        self.fake.output.put(b'')
        self.assertEqual(b'halting\r\n', client.recv(100))
        self.assertEqual(b'', client.recv(10))

    def test_a_console_lxd_refuses_is_said(self):
        self.lxd.open_console.side_effect = errors.LXDError(
            reason='Instance is frozen')
        client = self.connect(self.consoles.console(self.one, 'instance-1'))
        self.assertEqual(b'\r\nnova-lxd: the console is unavailable: LXD: '
                         b'Instance is frozen\r\n', client.recv(200))
        self.assertEqual(b'', client.recv(10))
