"""LXD instance status -> Nova power state (pure)."""

from nova.compute import power_state

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


def power_state_of(status_code):
    return _POWER_STATES.get(status_code, power_state.NOSTATE)
