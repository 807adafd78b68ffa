"""LXD failures as Nova exceptions, with messages an operator can act on."""

from nova import exception
from nova.i18n import _


class LXDError(exception.NovaException):
    msg_fmt = _('LXD: %(reason)s')


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
