"""LXD failures as Nova exceptions, with messages an operator can act on."""

import re

from nova import exception
from nova.i18n import _

# An absolute path of two parts or more in LXD's words: a path on the
# member (LXD's folder, a pool's source, a socket). Device nodes and API
# paths stay.
_HOST_PATH = re.compile(
    r'(?<![\w.~-])/(?!dev/|1\.0/)[\w.@+~-]+(?:/[\w.@+~:-]*)+')


def tenant_safe(text):
    """``text`` without the member's paths: what a tenant may read."""
    return _HOST_PATH.sub('<host path>', text)


class LXDError(exception.NovaException):
    """LXD's words; host paths in them are left out of the message.

    The message reaches the server's fault, which its tenant reads;
    ``lxd_reason`` keeps LXD's whole text for the operator's log.
    """

    msg_fmt = _('LXD: %(reason)s')

    def __init__(self, message=None, **kwargs):
        self.lxd_reason = kwargs.get('reason')
        if self.lxd_reason is not None:
            kwargs['reason'] = tenant_safe(str(self.lxd_reason))
        super().__init__(message, **kwargs)


class LXDNotFound(LXDError):
    pass


class LXDConflict(LXDError):
    """HTTP 409: what is to be made exists already."""


class LXDTimeout(LXDError):
    """An operation outlived its timeout: cancelled, or LXD goes on."""


def bad_config(message):
    """Nova refuses to start a compute service on InvalidConfiguration."""
    return exception.InvalidConfiguration(message=message)


def reason(exc):
    """LXD's own error text of a pylxd exception, else the exception text."""
    response = getattr(exc, 'response', None)
    try:
        return response.json()['error'] or str(exc)
    except Exception:
        return str(exc)
