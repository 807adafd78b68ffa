"""Every name the driver owns in LXD, in one place.

The driver finds, adopts and cleans up its own objects in LXD by these
names alone: renaming one strands what running clouds already hold.
Operators see them in ``lxc list``, ``lxc config show``, ``lxc image
list``. No Nova import here: tools read these names without Nova.
"""

import re
from typing import Final

# Instance config keys (``user.*``: LXD keeps them and never acts on them).
# Nova's identity of an instance, so the driver finds its containers with
# one bulk request, also after a restart.
INSTANCE_UUID_KEY: Final = 'user.nova.instance_uuid'
PROJECT_KEY: Final = 'user.nova.project_id'
FLAVOR_KEY: Final = 'user.nova.flavor'
# On a rescue container: the UUID of the instance it rescues.
RESCUE_OF_KEY: Final = 'user.nova.rescue_of'

# Nova's system metadata of an instance whose container is not named like
# the instance: an evacuation rebuilt it while LXD still held the name for
# the container of the lost member ("<instance name>-1", ...).
CONTAINER_NAME_META: Final = 'lxd_container_name'
# LXD's own name for the copy it makes while it moves an instance between
# members (lxd-move-of-<uuid>): not the driver's, never adopted.
LXD_MOVE_PREFIX: Final = 'lxd-move-of-'

# Instance names: a rescue container is named after the one it rescues.
RESCUE_SUFFIX: Final = '-rescue'

# Image aliases: nova-glance-<Glance image id>.
GLANCE_IMAGE_PREFIX: Final = 'nova-glance-'
# Instance snapshots (removed once published): nova-snapshot-<image id>.
SNAPSHOT_PREFIX: Final = 'nova-snapshot-'

# Custom storage volumes: nova-ephemeral-<instance uuid>.
EPHEMERAL_VOLUME_PREFIX: Final = 'nova-ephemeral-'

# Instance devices.
EPHEMERAL_DEVICE: Final = 'ephemeral0'
RESCUE_ROOT_DEVICE: Final = 'original-root'
VOLUME_DEVICE_PREFIX: Final = 'nova-volume-'       # + Cinder volume id
PORT_DEVICE_PREFIX: Final = 'nova-port-'           # + Neutron port id
# The container's end of a port's veth pair on the host: the host end's
# name (tapXXX, Neutron's devname) with this instead of its first three.
CONTAINER_END_PREFIX: Final = 'nlx'
GPU_DEVICE_PREFIX: Final = 'nova-gpu-'             # + 0, 1, 2...

# Profiles: nova-gpu-<12 hex digits of the settings' hash>, shared by
# instances with equal NVIDIA settings, removed when unused.
GPU_PROFILE_PREFIX: Final = 'nova-gpu-'

_GPU_DEVICE = re.compile('^%s([0-9]+)$' % re.escape(GPU_DEVICE_PREFIX))
_GPU_PROFILE = re.compile('^%s[0-9a-f]{12}$' % re.escape(GPU_PROFILE_PREFIX))


def rescue_name(instance_name: str) -> str:
    """The rescue container of an instance's container."""
    return instance_name + RESCUE_SUFFIX


def gpu_device_name(index: int) -> str:
    """The name of the driver's n-th gpu device in a container."""
    return '%s%d' % (GPU_DEVICE_PREFIX, index)


def gpu_device_index(name: str) -> int | None:
    """n of the driver's gpu device ``nova-gpu-<n>``; None for others."""
    found = _GPU_DEVICE.match(name)
    return int(found.group(1)) if found else None


def is_gpu_device(name: str) -> bool:
    """A gpu device the driver wrote (``nova-gpu-<n>``)."""
    return gpu_device_index(name) is not None


def is_gpu_profile(name: str) -> bool:
    """A profile the driver made (and removes when no instance uses it)."""
    return bool(_GPU_PROFILE.match(name))
