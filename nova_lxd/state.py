"""LXD instance status -> Nova power state (pure)."""

from collections.abc import Iterable
from typing import Any

from nova.compute import power_state

from nova_lxd import constants
from nova_lxd import container

# LXD's status codes (shared/api/status_code.go).
_POWER_STATES = {
    103: power_state.RUNNING,    # Running
    106: power_state.RUNNING,    # Starting
    107: power_state.RUNNING,    # Stopping
    102: power_state.SHUTDOWN,   # Stopped
    109: power_state.RUNNING,    # Freezing
    110: power_state.PAUSED,     # Frozen
    112: power_state.CRASHED,    # Error
}


# Where a standalone LXD says its instances are.
STANDALONE_LOCATIONS = ('', 'none')


def power_state_of(status_code: int) -> int:
    return _POWER_STATES.get(status_code, power_state.NOSTATE)


def power_state_from(lxd_state: dict[str, Any]) -> int:
    """The Nova power state of an instance or its state (LXD's dicts)."""
    return power_state_of(lxd_state['status_code'])


def nova_containers(lxd_instances: Iterable[dict[str, Any]],
                    members: Iterable[str],
                    clustered: bool) -> dict[str, tuple[str, int]]:
    """{container name: (Nova instance UUID, power state)}.

    Of the driver's containers in an instance listing (``GET
    /1.0/instances?recursion=1``) that are on ``members``.
    """
    here = set(members)
    if not clustered:
        here |= set(STANDALONE_LOCATIONS)
    found = {}
    for i in lxd_instances:
        uuid = container.instance_uuid(i)
        if (uuid and i.get('location', '') in here and
                not i['name'].startswith(constants.LXD_MOVE_PREFIX)):
            found[i['name']] = (uuid, power_state_from(i))
    return found


def unreachable(lxd_instances: Iterable[dict[str, Any]]) -> set[str]:
    """Names of the instances of offline members in an instance listing.

    LXD lists them without their config (and with status Error): what
    they are and whether they run is not known until their member is
    back.
    """
    return {i['name'] for i in lxd_instances if i.get('config') is None}


def diagnostics(lxd_state: dict[str, Any]) -> dict[str, Any]:
    """Nova's (legacy, free-form) diagnostics from an LXD instance state.

    CPU time in ns, memory in bytes, counters per network interface.
    """
    found = {
        'status': lxd_state.get('status'),
        'processes': lxd_state.get('processes'),
        'cpu_time_ns': (lxd_state.get('cpu') or {}).get('usage'),
        'memory_bytes': (lxd_state.get('memory') or {}).get('usage'),
        'memory_peak_bytes': (lxd_state.get('memory') or {}).get(
            'usage_peak'),
    }
    for nic, data in sorted((lxd_state.get('network') or {}).items()):
        for counter, value in sorted((data.get('counters') or {}).items()):
            found['%s_%s' % (nic, counter)] = value
    return found
