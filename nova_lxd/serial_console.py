"""Serial consoles for nova-serialproxy: a TCP port per instance, bridged
to the container's console in LXD.

nova-serialproxy (the websocket a browser or ``openstack console url
show --serial`` opens) connects over plain TCP to the ``host:port`` that
``get_serial_console`` returns, after Nova asked the driver again
(``validate_console_port``). So each instance keeps one port from
``[serial_console] port_range`` on ``proxyclient_address`` for as long as
this nova-compute runs: the first one free from a place given by its
UUID, so that after a restart it mostly gets the same again. Behind the
port, a listener in nova-compute attaches each client to LXD's console
of the container (``LXD.open_console``): bytes both ways, one client at a
time (a second is told so and closed). Nova's proxy carries bytes only,
no window size: the console is 80x24.

The listener starts with the first ``get_serial_console`` of a running
instance (Nova's validation asks again, so after a nova-compute restart
it is back before the proxy connects); it stops, with its client, when
the instance is stopped or deleted and when nova-compute stops. Like
libvirt's TCP serial ports, the port itself asks for no credentials:
``proxyclient_address`` must be an address only the proxy reaches (a
management network; 127.0.0.1 when the proxy runs on this host).

Plain threads and blocking sockets: nova-compute runs native threads in
Nova 34 (eventlet's green ones when [DEFAULT] concurrency_backend asks
for them, and this code works under both).
"""

import socket
import threading
import time
import uuid

from oslo_log import log as logging

from nova.console import type as ctype
from nova import exception

from nova_lxd.lxd import errors

LOG = logging.getLogger(__name__)

WIDTH, HEIGHT = 80, 24
# LXD attaches to the console in a helper process that drops what was
# typed before it is attached: a client's first bytes wait this long.
SETTLE_SECONDS = 0.5
# How often a listener looks whether it is to stop.
ACCEPT_POLL_SECONDS = 1.0
BUSY = (b'\r\nnova-lxd: another client is attached to this console; '
        b'try again when it has left.\r\n')


def port_range(text):
    """'10000:20000' -> range(10000, 20000) (Nova checked the form)."""
    start, stop = (int(p) for p in text.split(':'))
    if not 0 < start < stop <= 65536:
        raise errors.bad_config(
            '[serial_console] port_range %s: set <start>:<stop> with '
            '0 < start < stop <= 65536' % text)
    return range(start, stop)


def preferred_order(ports, instance_uuid):
    """The ports in the order an instance tries them: from its own place."""
    first = uuid.UUID(instance_uuid).int % len(ports)
    return list(ports[first:]) + list(ports[:first])


class SerialConsoles(object):
    """The listeners of one nova-compute, one per instance asked for.

    ``conf``: Nova's ``[serial_console]`` options.
    """

    def __init__(self, lxd, conf):
        self.lxd = lxd
        self.conf = conf
        self._lock = threading.Lock()
        self._ports = {}        # instance UUID -> its port
        self._listeners = {}    # instance UUID -> _Listener

    def console(self, instance, container):
        """The instance's ConsoleSerial; its listener starts if needed."""
        with self._lock:
            listener = self._listeners.get(instance.uuid)
            if listener is None or listener.container != container:
                if listener is not None:
                    listener.stop()
                listener = self._listen(instance, container)
                self._listeners[instance.uuid] = listener
                self._ports[instance.uuid] = listener.port
        return ctype.ConsoleSerial(host=listener.host, port=listener.port)

    def _listen(self, instance, container):
        """A listener on the instance's port, or the first free one."""
        host = self.conf.proxyclient_address
        taken = set(self._ports.values()) - {self._ports.get(instance.uuid)}
        mine = self._ports.get(instance.uuid)
        order = preferred_order(port_range(self.conf.port_range),
                                instance.uuid)
        if mine is not None:
            order.remove(mine)
            order.insert(0, mine)
        for port in order:
            if port in taken:
                continue
            try:
                sock = _listening_socket(host, port)
            except OSError:
                continue    # another program's, or another service's
            LOG.info('Serial console of %s on %s:%d', container, host, port,
                     instance=instance)
            return _Listener(self.lxd, sock, host, port, container)
        raise exception.SocketPortRangeExhaustedException(host=host)

    def stop(self, instance):
        """Stop the instance's listener and client; its port stays its."""
        with self._lock:
            listener = self._listeners.pop(instance.uuid, None)
        if listener is not None:
            listener.stop()

    def forget(self, instance):
        """Stop the listener and give the port back: the server is gone."""
        self.stop(instance)
        with self._lock:
            self._ports.pop(instance.uuid, None)

    def stop_all(self):
        with self._lock:
            listeners = list(self._listeners.values())
            self._listeners.clear()
        for listener in listeners:
            listener.stop()


def _listening_socket(host, port):
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # A port whose last client is in TIME_WAIT can be listened on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2)
    except OSError:
        sock.close()
        raise
    return sock


def _thread(target, *args):
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


class _Listener(object):
    """One instance's port: accepts a client at a time into a session."""

    def __init__(self, lxd, sock, host, port, container):
        self.lxd = lxd
        self.sock = sock
        self.host = host
        self.port = port
        self.container = container
        self._stopped = threading.Event()
        self._session = None
        self._lock = threading.Lock()
        sock.settimeout(ACCEPT_POLL_SECONDS)
        self._thread = _thread(self._accept_loop)

    def _accept_loop(self):
        try:
            while not self._stopped.is_set():
                try:
                    client, _ = self.sock.accept()
                except socket.timeout:
                    continue
                except OSError as e:
                    if not self._stopped.is_set():
                        LOG.warning('Serial console of %s: accept failed: '
                                    '%s', self.container, e)
                    return
                client.settimeout(None)
                self._attach(client)
        finally:
            self.sock.close()

    def _attach(self, client):
        with self._lock:
            if self._stopped.is_set():
                _close_socket(client)
            elif self._session is not None and self._session.alive:
                _send_and_close(client, BUSY)
            else:
                self._session = _Session(self.lxd, client, self.container)

    def stop(self, wait=ACCEPT_POLL_SECONDS * 2):
        """Stop accepting, end the client; the port is free on return."""
        self._stopped.set()
        with self._lock:
            if self._session is not None:
                self._session.close()
        if self._thread is not threading.current_thread():
            self._thread.join(wait)


def _send_and_close(client, message):
    try:
        client.sendall(message)
    except OSError:
        pass
    _close_socket(client)


def _close_socket(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class _Session(object):
    """One client on LXD's console: a thread each way, one on control."""

    def __init__(self, lxd, client, container):
        self.client = client
        self.container = container
        self.alive = True
        self._closing = threading.Lock()
        try:
            self.console = lxd.open_console(container, WIDTH, HEIGHT)
        except errors.LXDError as e:
            LOG.info('Serial console of %s unavailable: %s', container, e)
            self.alive = False
            _send_and_close(client, (
                '\r\nnova-lxd: the console is unavailable: %s\r\n'
                % e).encode())
            return
        LOG.info('Serial console of %s: a client attached', container)
        for target in (self._to_console, self._to_client,
                       self.console.wait_closed):
            _thread(self._until_one_ends, target)

    def _to_console(self):
        time.sleep(SETTLE_SECONDS)
        while self.alive:
            try:
                chunk = self.client.recv(4096)
            except (OSError, EOFError):   # EOFError: closed here (eventlet)
                return
            if not chunk or not self.console.write(chunk):
                return

    def _to_client(self):
        while self.alive:
            chunk = self.console.read()
            if not chunk:
                return
            try:
                self.client.sendall(chunk)
            except (OSError, EOFError):
                return

    def _until_one_ends(self, target):
        try:
            target()
        except Exception:
            LOG.exception('Serial console of %s failed', self.container)
        finally:
            self.close()

    def close(self):
        with self._closing:
            if not self.alive:
                return
            self.alive = False
        LOG.info('Serial console of %s: the client left', self.container)
        _close_socket(self.client)
        self.console.close()
