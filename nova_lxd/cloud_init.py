"""Nova's instance metadata -> where cloud-init finds it in a container.

Two ways in, as on other Nova hosts, both from Nova's own
``InstanceMetadata`` (what its metadata service and config drives serve):

- LXD's ``user.*`` keys, which cloud-init's LXD datasource reads through
  /dev/lxd. Always set:

  - ``user.meta-data``: instance-id (the server's UUID), local-hostname,
    public-keys, availability-zone and the server's metadata (``meta``).
    LXD serves it *appended* to lines of its own (``instance-id: <its
    id>``, ``local-hostname: <container name>``; LXD 5.0 puts
    ``#cloud-config`` first), and cloud-init 22.4 (Debian 12) parses that
    text as one YAML document, where a repeated key's last value wins;
    newer cloud-init also reads the key alone and lets it override. So it
    is a block-style YAML mapping, written by a YAML dumper: it continues
    LXD's document and parses alone.
  - ``user.user-data``: the user data; UTF-8 text as it is, anything else
    (gzip, binary) as a MIME message with the bytes base64-encoded, which
    cloud-init unpacks (LXD config values are strings).
  - ``user.vendor-data``: Nova's vendor data as cloud-init's OpenStack
    datasource takes it (the ``cloud-init`` entry of vendor_data.json and
    of vendor_data2.json).
  - ``user.network-config``: network config v1 from the ports
    (network_data.json's facts): each interface by name and MAC, static
    addresses where the subnet has no DHCP, DHCP where it has.

  The ``user.*`` names work with every LXD and every cloud-init with an
  LXD datasource; LXD's newer ``cloud-init.*`` names (API extension
  ``cloud_init``) are not read by older images and make LXD refuse a
  cloud-config it cannot parse. LXD 5.0 and later also take the
  server's UUID as ``volatile.cloud-init.instance-id``.

- A config drive when Nova asks for one (``force_config_drive``, the
  server's ``config_drive``, the image's ``img_config_drive``): the tree an
  ISO config drive holds (meta data, user data, vendor data, network data,
  injected content), written root-only into the container's seed folder,
  where cloud-init's ConfigDrive datasource finds it.

Everything a tenant controls (user data, key, hostname, metadata) is
untrusted: it goes through a YAML dumper or into a value of its own, and
its size is bounded.
"""

from email.mime import application
from email.mime import multipart
from email.mime import text

import netaddr
from nova.api.metadata import base as instance_metadata
from nova import exception
from nova.virt import configdrive
from oslo_serialization import jsonutils
import yaml

CONFIG_DRIVE_SEED = '/var/lib/cloud/seed/config_drive'

META_DATA_KEY = 'user.meta-data'
USER_DATA_KEY = 'user.user-data'
VENDOR_DATA_KEY = 'user.vendor-data'
NETWORK_CONFIG_KEY = 'user.network-config'
INSTANCE_ID_KEY = 'volatile.cloud-init.instance-id'
# The first LXD that knows INSTANCE_ID_KEY.
INSTANCE_ID_KEY_SINCE = (5, 0)

# Nova's API takes at most 65535 base64 characters of user data (48 KiB).
USER_DATA_LIMIT = 64 * 1024
# Hostname, key, Nova's metadata (128 items of 255 + 255 characters by
# default quota) fit well within this.
META_DATA_LIMIT = 256 * 1024

GZIP_MAGIC = b'\x1f\x8b'


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no anchors or aliases, even for repeated objects."""

    def ignore_aliases(self, data):
        return True


def _dump(data):
    return yaml.dump(data, Dumper=_Dumper, default_flow_style=False,
                     allow_unicode=False, sort_keys=True, width=1 << 16)


def _too_big(what, size, limit):
    return exception.InvalidInput(
        reason='the server\'s %s is %d bytes; at most %d bytes reach '
               'cloud-init in an LXD container' % (what, size, limit))


# -- pure translations ------------------------------------------------


def meta_data(md):
    """The meta-data mapping of the LXD datasource from Nova's meta_data.json.

    ``md``: meta_data.json as Nova's metadata service serves it, parsed.
    """
    meta = {'instance-id': md['uuid']}
    if md.get('hostname'):
        meta['local-hostname'] = md['hostname']
    keys = list((md.get('public_keys') or {}).values())
    if keys:
        meta['public-keys'] = keys
    if md.get('availability_zone'):
        meta['availability-zone'] = md['availability_zone']
    if md.get('meta'):
        meta['meta'] = md['meta']
    return meta


def meta_data_document(meta):
    """``meta`` as lines that continue LXD's meta-data document.

    A block mapping, one top-level key per line start: appended to LXD's
    ``key: value`` lines it stays one mapping (its keys come last, so they
    win), and it parses alone too. Tenant strings are the dumper's to
    quote; none can add a key or a document.
    """
    if not meta:
        raise ValueError('meta-data needs at least the instance-id')
    document = _dump(meta)
    size = len(document.encode('utf-8'))
    if size > META_DATA_LIMIT:
        raise _too_big('meta-data (hostname, key and metadata)', size,
                       META_DATA_LIMIT)
    return document


def user_data(raw):
    """LXD's user-data value for the user data bytes, None for none.

    UTF-8 text goes as it is. Other bytes (gzip-compressed user data,
    binary) cannot be an LXD config value, a string: they go as a
    one-part MIME message, base64-encoded, which cloud-init decodes (and
    decompresses when the part says gzip), as it would the raw bytes.
    """
    if not raw:
        return None
    if len(raw) > USER_DATA_LIMIT:
        raise _too_big('user data', len(raw), USER_DATA_LIMIT)
    if b'\0' not in raw:
        try:
            return raw.decode('utf-8')
        except UnicodeDecodeError:
            pass
    subtype = 'x-gzip' if raw.startswith(GZIP_MAGIC) else 'octet-stream'
    return application.MIMEApplication(raw, subtype).as_string()


def _vendor_part(loaded):
    """What cloud-init's OpenStack datasource takes of a vendor data JSON.

    A string as it is; from a mapping its ``cloud-init`` entry. Lists (and
    anything else) are not passed on.
    """
    if isinstance(loaded, dict):
        loaded = loaded.get('cloud-init')
    return loaded if isinstance(loaded, str) and loaded else None


def vendor_data(*loaded):
    """LXD's vendor-data value from Nova's vendor data JSONs, or None.

    ``loaded``: vendor_data.json and vendor_data2.json, parsed. Two parts
    become one MIME multipart message, which cloud-init merges.
    """
    parts = [p for p in map(_vendor_part, loaded) if p]
    if len(parts) < 2:
        return parts[0] if parts else None
    message = multipart.MIMEMultipart()
    for part in parts:
        message.attach(text.MIMEText(part, 'plain', 'utf-8'))
    return message.as_string()


_DYNAMIC = {
    'ipv4_dhcp': 'dhcp4',
    'ipv6_dhcp': 'dhcp6',
    'ipv6_slaac': 'ipv6_slaac',
    'ipv6_dhcpv6-stateless': 'ipv6_dhcpv6-stateless',
    'ipv6_dhcpv6-stateful': 'ipv6_dhcpv6-stateful',
}


def _subnet(net):
    """A cloud-init v1 subnet from a network_data.json network."""
    if net['type'] in _DYNAMIC:
        return {'type': _DYNAMIC[net['type']]}
    version6 = net['type'].startswith('ipv6')
    subnet = {'type': 'static6' if version6 else 'static',
              'address': '%s/%d' % (net['ip_address'], netaddr.IPAddress(
                  net['netmask']).netmask_bits())}
    routes = []
    for route in net.get('routes') or ():
        if route['netmask'] in ('0.0.0.0', '::'):
            subnet['gateway'] = route['gateway']
        else:
            routes.append({'network': route['network'],
                           'netmask': route['netmask'],
                           'gateway': route['gateway']})
    if routes:
        subnet['routes'] = routes
    dns = [s['address'] for s in net.get('services') or ()
           if s.get('type') == 'dns']
    if dns:
        subnet['dns_nameservers'] = dns
    return subnet


def network_config(network_metadata, interfaces):
    """cloud-init network config (v1) from Nova's network_data.json.

    ``interfaces``: {port id: interface name in the container}. Each port
    is a physical interface matched by name and MAC, with a static
    address when its subnet has no DHCP (the address Neutron gave the
    port, gateway, host routes, DNS servers) and DHCP when it has. No
    ports: an empty config, not cloud-init's fallback (DHCP on eth0).
    """
    config = []
    network_metadata = network_metadata or {}
    for link in network_metadata.get('links') or ():
        entry = {'type': 'physical', 'name': interfaces[link['vif_id']],
                 'mac_address': link['ethernet_mac_address']}
        if link.get('mtu'):
            entry['mtu'] = link['mtu']
        entry['subnets'] = [_subnet(net) for net in
                            network_metadata.get('networks') or ()
                            if net['link'] == link['id']]
        config.append(entry)
    return {'version': 1, 'config': config}


def _server_version(version):
    return tuple(int(p) for p in version.split('.')[:2] if p.isdigit())


def lxd_keys(md, raw_user_data=None, vendor=(), network_metadata=None,
             interfaces=None, server_version='5.0'):
    """The LXD config keys of cloud-init's LXD datasource (pure).

    ``md``: Nova's meta_data.json, parsed; ``raw_user_data``: the user
    data bytes; ``vendor``: vendor_data.json and vendor_data2.json,
    parsed; ``network_metadata``: network_data.json, parsed;
    ``interfaces``: {port id: interface name in the container};
    ``server_version``: LXD's.
    """
    keys = {
        META_DATA_KEY: meta_data_document(meta_data(md)),
        NETWORK_CONFIG_KEY: _dump(network_config(network_metadata,
                                                 interfaces or {})),
    }
    for key, value in ((USER_DATA_KEY, user_data(raw_user_data)),
                       (VENDOR_DATA_KEY, vendor_data(*vendor))):
        if value is not None:
            keys[key] = value
    if _server_version(server_version) >= INSTANCE_ID_KEY_SINCE:
        keys[INSTANCE_ID_KEY] = md['uuid']
    return keys


# -- from Nova's InstanceMetadata -------------------------------------


def instance_metadata_of(instance, injected_files, admin_password,
                         network_info):
    """Nova's InstanceMetadata of a server: what both ways in carry."""
    extra_md = {'admin_pass': admin_password} if admin_password else {}
    return instance_metadata.InstanceMetadata(
        instance, content=injected_files, extra_md=extra_md,
        network_info=network_info)


def _json(inst_md, name):
    """A file of Nova's metadata tree, parsed; None when Nova has none."""
    try:
        return jsonutils.loads(inst_md.lookup('/openstack/latest/' + name))
    except KeyError:
        return None     # e.g. a vendor data provider not configured


def cloud_init_keys(inst_md, interfaces, server_version):
    """LXD config keys for cloud-init's LXD datasource.

    The values of Nova's metadata service (meta_data.json,
    network_data.json, vendor data, user data) as the config drive holds
    them. ``interfaces``: {port id: interface name in the container}.
    """
    return lxd_keys(
        _json(inst_md, instance_metadata.MD_JSON_NAME),
        raw_user_data=inst_md.userdata_raw,
        vendor=(_json(inst_md, instance_metadata.VD_JSON_NAME),
                _json(inst_md, instance_metadata.VD2_JSON_NAME)),
        network_metadata=inst_md.network_metadata,
        interfaces=interfaces,
        server_version=server_version)


def config_drive_files(instance, inst_md):
    """{path in the container: bytes} of the config drive, or {}."""
    if not configdrive.required_by(instance):
        return {}
    configdrive.update_instance(instance)
    files = {}
    for path, data in inst_md.metadata_for_config_drive():
        if isinstance(data, str):
            data = data.encode('utf-8')
        files['%s/%s' % (CONFIG_DRIVE_SEED, path)] = data
    return files
