"""Nova's instance metadata -> where cloud-init finds it in a container.

Two ways in, as on other Nova hosts:
- LXD's cloud-init keys (``user.meta-data``, ``user.user-data``), which
  cloud-init's LXD datasource reads through /dev/lxd: hostname, SSH key,
  user data. Always set.
- A config drive when Nova asks for one (``force_config_drive``, the
  server's ``config_drive``, the image's ``img_config_drive``): the same
  tree an ISO config drive holds (meta data, user data, vendor data,
  network data, injected content), written root-only into the container's
  seed folder, where cloud-init's ConfigDrive datasource looks first.
"""

import base64

from nova.api.metadata import base as instance_metadata
from nova.virt import configdrive
from oslo_serialization import jsonutils

CONFIG_DRIVE_SEED = '/var/lib/cloud/seed/config_drive'


def _user_data(instance):
    if not instance.user_data:
        return None
    try:
        return base64.b64decode(instance.user_data).decode('utf-8')
    except (ValueError, UnicodeDecodeError):
        return None   # binary (e.g. gzip): only a config drive carries it


def cloud_init_keys(instance):
    """LXD config keys for cloud-init's LXD datasource (pure)."""
    meta = {'instance-id': instance.uuid,
            'local-hostname': instance.hostname}
    if instance.key_data:
        meta['public-keys'] = [instance.key_data]
    # JSON is YAML, which is what cloud-init parses here.
    keys = {'user.meta-data': jsonutils.dumps(meta, sort_keys=True)}
    user_data = _user_data(instance)
    if user_data is not None:
        keys['user.user-data'] = user_data
    return keys


def config_drive_files(instance, injected_files, admin_password,
                       network_info):
    """{path in the container: bytes} of the config drive, or {}."""
    if not configdrive.required_by(instance):
        return {}
    configdrive.update_instance(instance)
    extra_md = {'admin_pass': admin_password} if admin_password else {}
    inst_md = instance_metadata.InstanceMetadata(
        instance, content=injected_files, extra_md=extra_md,
        network_info=network_info)
    files = {}
    for path, data in inst_md.metadata_for_config_drive():
        if isinstance(data, str):
            data = data.encode('utf-8')
        files['%s/%s' % (CONFIG_DRIVE_SEED, path)] = data
    return files
