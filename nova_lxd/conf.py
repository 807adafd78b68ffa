"""The ``[lxd]`` options of nova.conf.

These names are what operators write; keep them stable.
"""

from oslo_config import cfg

from nova_lxd.gpu import options as gpu_options

lxd_group = cfg.OptGroup(
    'lxd',
    title='LXD driver options',
    help='How nova-compute reaches the LXD server or cluster that runs its '
         'instances, and which LXD cluster members it manages.')

lxd_opts = [
    cfg.StrOpt(
        'endpoint',
        help='Where LXD listens. Either the path of the local LXD unix '
             'socket (e.g. /var/lib/lxd/unix.socket for Debian\'s lxd '
             'package, /var/snap/lxd/common/lxd/unix.socket for the snap; '
             'a unix:// prefix is accepted), or the HTTPS address of an '
             'LXD server or cluster member, e.g. https://10.0.0.5:8443. '
             'HTTPS needs client_cert, client_key and server_cert. '
             'Unset: the first local socket of the two above that exists.'),
    cfg.StrOpt(
        'client_cert',
        help='Path of the PEM client certificate nova-compute presents to '
             'LXD over HTTPS. LXD must trust it: '
             '"lxc config trust add <this file>" on any cluster member.'),
    cfg.StrOpt(
        'client_key',
        secret=True,
        help='Path of the PEM private key of client_cert.'),
    cfg.StrOpt(
        'server_cert',
        help='Path of the LXD server\'s own certificate (for a cluster: the '
             'cluster certificate, /var/lib/lxd/cluster.crt on a member). '
             'The connection is accepted only when the server presents '
             'exactly this certificate, whatever CA bundles the environment '
             '(REQUESTS_CA_BUNDLE, ...) names. Required for HTTPS unless '
             'insecure is set.'),
    cfg.BoolOpt(
        'insecure',
        default=False,
        help='Accept any server certificate on HTTPS. Anyone on the path to '
             'LXD can then impersonate it: use only on a trusted test '
             'network. Prefer server_cert.'),
    cfg.StrOpt(
        'project',
        default='default',
        help='LXD project in which this service creates and looks for '
             'instances, profiles and images.'),
    cfg.StrOpt(
        'storage_pool',
        default='default',
        help='LXD storage pool for instance root disks and ephemeral disks '
             '(custom volumes). Its size on each member is what that member '
             'reports to Placement as DISK_GB. Disk sizes are enforced '
             'where its driver enforces sizes (btrfs, zfs, lvm, ceph; dir '
             'only on a filesystem with project quotas).'),
    cfg.ListOpt(
        'members',
        default=[],
        help='LXD cluster members this nova-compute service manages; each '
             'becomes one Nova compute node named after the member. Empty '
             '(default): the one member whose name equals this service\'s '
             '[DEFAULT] host, the classic one-service-per-host layout. "*": '
             'every member of the cluster (one service for a small '
             'cluster). A standalone LXD server is a cluster of one member, '
             'named by its server_name (usually its hostname).'),
    cfg.BoolOpt(
        'allow_privileged',
        default=False,
        help='Let flavors with lxd:privileged=true run privileged '
             'containers, whose root is root on the member. Off: such '
             'boots fail with a fault naming this option.'),
    cfg.BoolOpt(
        'allow_nesting',
        default=False,
        help='Let flavors with lxd:nesting=true run containers inside '
             'their container (security.nesting). Off: such boots fail '
             'with a fault naming this option.'),
    cfg.BoolOpt(
        'volume_use_multipath',
        default=False,
        help='Connect Cinder volumes over multipath (os-brick), as '
             '[libvirt] volume_use_multipath does for libvirt. The '
             'multipath daemon must run on the member.'),
    cfg.IntOpt(
        'move_timeout',
        default=1800,
        min=1,
        help='Seconds an LXD cluster move may take: a cold migration or '
             'resize to another member copies the container\'s root and '
             'its ephemeral disk from member to member.'),
    cfg.IntOpt(
        'timeout',
        default=60,
        min=1,
        help='Seconds to wait for one LXD API request, and for an LXD '
             'background operation (create, start, ...) to finish.'),
]


ALL_OPTS = lxd_opts + gpu_options.gpu_opts


def register_opts(conf):
    conf.register_group(lxd_group)
    conf.register_opts(ALL_OPTS, group=lxd_group)


def list_opts():
    """For oslo-config-generator (entry point oslo.config.opts)."""
    return [(lxd_group, ALL_OPTS)]


CONF = cfg.CONF
register_opts(CONF)
