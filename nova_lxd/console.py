"""A container's console, as Nova shows it: the console log.

LXD 5.0 hands each line of a running container's console log out only
once, and begins a new log at each start; what was read is kept here
(read once more just before each start), like a hypervisor's console log
file. What is kept is bounded per container and in total: a member full
of chatty containers cannot grow nova-compute without end.
"""

import collections

from nova import exception
from oslo_log import log as logging

from nova_lxd import container
from nova_lxd.lxd import errors

LOG = logging.getLogger(__name__)

# Console output kept per container (Nova's libvirt driver keeps 100 KiB).
MAX_CONSOLE_BYTES = 100 * 1024
# Console output kept for all containers together; past it the logs read
# longest ago are forgotten first (Nova asks LXD again for what is new).
MAX_TOTAL_BYTES = 64 * 1024 * 1024


class ConsoleLogs(object):
    """The console logs of the driver's containers, as read so far."""

    def __init__(self, lxd):
        self.lxd = lxd
        # instance UUID -> console output read so far, least recent first
        self._logs = collections.OrderedDict()
        self._total = 0

    def output(self, instance):
        """The last MAX_CONSOLE_BYTES of the instance's console output."""
        try:
            new = self.lxd.console_log(container.name(instance))
        except errors.LXDNotFound:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        old = self.forget(instance)
        log = (old + new)[-MAX_CONSOLE_BYTES:]
        self._logs[instance.uuid] = log
        self._total += len(log)
        while self._total > MAX_TOTAL_BYTES:
            _, gone = self._logs.popitem(last=False)
            self._total -= len(gone)
        # Bytes, as Nova's compute manager wants them (it would encode
        # text as latin-1, which fails on a guest's UTF-8: systemd's "…").
        return log

    def keep(self, instance):
        """Read what LXD has now, before a start begins a new log."""
        try:
            self.output(instance)
        except (exception.InstanceNotFound, errors.LXDError) as e:
            LOG.debug('Console log not read before start: %s', e,
                      instance=instance)

    def forget(self, instance):
        """Drop what was kept of the instance's log; returns it."""
        log = self._logs.pop(instance.uuid, b'')
        self._total -= len(log)
        return log
