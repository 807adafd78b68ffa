"""A container's console, as Nova shows it: the console log.

LXD 5.0 hands each line of a running container's console log out only
once; what was read is kept here, like a hypervisor's console log file.
"""

from nova import exception

from nova_lxd import container
from nova_lxd.lxd import errors

# Console output kept per container (Nova's libvirt driver keeps 100 KiB).
MAX_CONSOLE_BYTES = 100 * 1024


class ConsoleLogs(object):
    """The console logs of the driver's containers, as read so far."""

    def __init__(self, lxd):
        self.lxd = lxd
        self._logs = {}         # container -> console output read so far

    def output(self, instance):
        """The last MAX_CONSOLE_BYTES of the instance's console output."""
        try:
            new = self.lxd.console_log(container.name(instance))
        except errors.LXDNotFound:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        log = (self._logs.get(instance.name, '') + new)[-MAX_CONSOLE_BYTES:]
        self._logs[instance.name] = log
        return log
