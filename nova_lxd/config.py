"""Nova instance -> LXD instance config (pure)."""

# Nova's identity of an instance, kept in the container's own config so
# that the driver finds its containers with one bulk LXD request.
INSTANCE_UUID_KEY = 'user.nova.instance_uuid'


def instance_uuid(lxd_instance):
    """The Nova instance UUID of an LXD instance dict, None if not ours."""
    return lxd_instance.get('config', {}).get(INSTANCE_UUID_KEY)
