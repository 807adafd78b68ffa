"""A container's console log, as Nova shows it (``console log show``).

LXD keeps no lasting console log of a container: a running container's
console is a ring buffer that hands each byte out once, and a stopped
one's is a file of what nobody read during its last run, emptied by the
next start. This module keeps what was read, like the console log file a
hypervisor writes: per container the last MAX_CONSOLE_BYTES, and at most
MAX_TOTAL_BYTES for all containers together (the least recently read
logs are dropped first). The driver reads the stopped container's file
once more just before it starts it (``before_start``), so a stop and
start lose nothing; a restart from inside the guest (its own ``reboot``)
does, between the last read and the restart, as LXD restarts it alone.

The log is the guest's bytes, unchanged (any encoding, escape sequences,
NULs): Nova's compute manager cuts ``--lines`` on bytes and makes text
of them (ASCII, others replaced), and its API drops control characters.
"""

import collections
import contextlib
import dataclasses
import threading

from nova import exception
from oslo_concurrency import lockutils
from oslo_log import log as logging

from nova_lxd import container
from nova_lxd.lxd import errors

LOG = logging.getLogger(__name__)

# Console output kept per container (Nova's libvirt driver shows 100 KiB).
MAX_CONSOLE_BYTES = 100 * 1024
# For all containers of this service together: 655 full logs.
MAX_TOTAL_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass
class _Log:
    kept: bytes = b''        # read while running, and folded at starts
    last_run: bytes = b''    # a stopped container's file: shown, not kept
    folded: bytes = None     # the file folded into kept before the last start


class ConsoleLogs(object):
    """The console logs of the driver's containers, as read so far."""

    def __init__(self, lxd, per_container=MAX_CONSOLE_BYTES,
                 total=MAX_TOTAL_BYTES):
        self.lxd = lxd
        self.per_container = per_container
        self.total = total
        self._logs = collections.OrderedDict()   # name -> _Log, LRU first
        self._lock = threading.Lock()            # guards _logs

    def output(self, instance):
        """The last MAX_CONSOLE_BYTES of the instance's console, as bytes."""
        with self._reading(instance) as log:
            data, stopped = self._read(instance)
            if not stopped:
                log.kept = (log.kept + log.last_run + data)[
                    -self.per_container:]
                log.last_run, log.folded = b'', None
            elif data != log.folded:
                log.last_run = data
            else:
                # The file folded before a start that failed: in kept.
                log.last_run = b''
            return (log.kept + log.last_run)[-self.per_container:]

    def before_start(self, instance):
        """Keep the stopped container's file, which its start empties."""
        with self._reading(instance) as log:
            try:
                data, stopped = self._read(instance)
            except (exception.InstanceNotFound, errors.LXDError) as e:
                # The start goes on; only this file may be lost.
                LOG.debug('Console log not read before start: %s', e,
                          instance=instance)
                return
            if stopped and data != log.folded:
                log.kept = (log.kept + data)[-self.per_container:]
                log.last_run, log.folded = b'', data

    def forget(self, instance):
        """Drop the log of an instance whose container is gone."""
        with self._lock:
            self._logs.pop(instance.name, None)

    def _read(self, instance):
        try:
            return self.lxd.console_log(container.name(instance),
                                        self.per_container)
        except errors.LXDNotFound:
            raise exception.InstanceNotFound(instance_id=instance.uuid)

    @contextlib.contextmanager
    def _reading(self, instance):
        """The instance's log, to read and change under its own lock.

        It becomes the most recently read; after, the least recently
        read logs beyond MAX_TOTAL_BYTES are dropped.
        """
        with lockutils.lock('nova-lxd-console-log-%s' % instance.name):
            with self._lock:
                log = self._logs.pop(instance.name, None) or _Log()
                self._logs[instance.name] = log
            try:
                yield log
            finally:
                self._trim()

    def _trim(self):
        with self._lock:
            size = sum(len(log.kept) + len(log.last_run)
                       for log in self._logs.values())
            while size > self.total and len(self._logs) > 1:
                _, log = self._logs.popitem(last=False)
                size -= len(log.kept) + len(log.last_run)
