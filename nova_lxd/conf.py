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
             'containers, whose root is root on the member (of the '
             'projects in privileged_projects when it is set). Off: such '
             'boots and resizes fail with a fault naming this option, and '
             'privileged containers made before do not start again.'),
    cfg.ListOpt(
        'privileged_projects',
        default=[],
        help='Keystone project IDs whose servers may be privileged '
             '(lxd:privileged) when allow_privileged is True. Empty: every '
             'project. Checked at boot, resize and every start.'),
    cfg.BoolOpt(
        'allow_nesting',
        default=False,
        help='Let flavors with lxd:nesting=true run containers inside '
             'their container (security.nesting; of the projects in '
             'nesting_projects when it is set). Off: such boots and '
             'resizes fail with a fault naming this option, and nested '
             'containers made before do not start again.'),
    cfg.ListOpt(
        'nesting_projects',
        default=[],
        help='Keystone project IDs whose servers may nest containers '
             '(lxd:nesting) when allow_nesting is True. Empty: every '
             'project. Checked at boot, resize and every start.'),
    cfg.BoolOpt(
        'allow_nvidia_runtime',
        default=False,
        help='Let flavors with lxd:nvidia_runtime=true get the host\'s '
             'NVIDIA libraries (LXD nvidia.runtime or CDI): NVIDIA\'s '
             'container hook then runs as root of the host over the '
             'tenant\'s files. Also needed for MIG slices on LXD servers '
             'without the gpu_mig_cdi extension (LXD 5.0), where LXD '
             'starts a MIG slice only with nvidia.runtime. Off: such '
             'boots fail with a fault naming this option, and containers '
             'with nvidia.runtime do not start again.'),
    cfg.BoolOpt(
        'isolated_idmap',
        default=True,
        help='Give every container its own range of host uids and gids '
             '(LXD security.idmap.isolated), so that a process escaping '
             'one container owns nothing of another. Each container takes '
             '65536 ids of root\'s subordinate ids (/etc/subuid, '
             '/etc/subgid) on its member. False: only flavors with '
             'lxd:isolated_idmap=true get one; the others share one '
             'range.'),
    cfg.IntOpt(
        'max_processes',
        default=4096,
        min=0,
        help='The most processes and threads a container may run at once '
             '(LXD limits.processes), so that a fork bomb stops at its '
             'container, unless its flavor sets lxd:max_processes. 0: no '
             'limit.'),
    cfg.BoolOpt(
        'allow_dir_pool',
        default=False,
        help='Accept an LXD "dir" storage pool as storage_pool. A dir pool '
             'enforces root and ephemeral disk sizes only on a backing '
             'filesystem with project quotas, which LXD does not report, '
             'while Placement is told each server\'s DISK_GB: a server '
             'could fill its member\'s disk. Off: nova-compute refuses to '
             'start on a dir pool; use a btrfs, zfs, lvm or ceph pool.'),
    cfg.BoolOpt(
        'volume_use_multipath',
        default=False,
        help='Connect Cinder volumes over multipath (os-brick), as '
             '[libvirt] volume_use_multipath does for libvirt. The '
             'multipath daemon must run on the member.'),
    cfg.StrOpt(
        'image_download_dir',
        help='Folder where Glance images are downloaded and checked before '
             'their import into LXD, each in a folder of its own that goes '
             'once the image is in LXD. Unset: lxd-images under '
             '[DEFAULT] state_path. Not the system\'s temporary folder, '
             'which is in memory on some distributions. A download starts '
             'only when the folder\'s file system has room for the image '
             '(Glance\'s size) and 256 MiB more; downloads left by a '
             'nova-compute that stopped mid-way are removed when it '
             'starts.'),
    cfg.IntOpt(
        'image_max_expanded_gb',
        default=50,
        min=1,
        help='Largest size, in GiB, that the files of a Glance image may '
             'add up to once unpacked. LXD unpacks an image on each member '
             'that runs it, before any root disk quota applies, and a '
             'small compressed upload can hold far more: boots of larger '
             'images fail with a fault naming this option. Images larger '
             'than the flavor\'s root disk (when it has one) are refused '
             'too.'),
    cfg.IntOpt(
        'image_max_files',
        default=1000000,
        min=1,
        help='Most files (tar members, squashfs inodes) a Glance image may '
             'hold. The check of an image reads each file\'s header once; '
             'this bounds its time, and the inodes each member spends on '
             'the image.'),
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
             'background operation that has no timeout of its own below '
             '(start, stop, device and config changes, ...) to finish.'),
    cfg.IntOpt(
        'create_timeout',
        default=600,
        min=1,
        help='Seconds to wait for LXD to create a container (it unpacks '
             'the image on the member, a full copy on a dir pool). Past '
             'it the build fails; LXD cannot cancel a create and goes on '
             'with it, and deleting the server removes what it made.'),
    cfg.IntOpt(
        'snapshot_timeout',
        default=1800,
        min=1,
        help='Seconds to wait for LXD to snapshot a container, and again '
             'to publish the snapshot as an image (it writes the whole '
             'root file system). Past either the server snapshot fails; '
             'the LXD snapshot expires by itself and the image LXD may '
             'still publish is named nova-snapshot-<image id>, which the '
             'image cache manager removes.'),
    cfg.IntOpt(
        'image_import_timeout',
        default=1800,
        min=1,
        help='Seconds to wait for LXD to take in an image uploaded from '
             'Glance (it hashes it, unpacks its metadata and may copy it to '
             'other members).'),
    cfg.IntOpt(
        'delete_timeout',
        default=600,
        min=1,
        help='Seconds to wait for LXD to delete a container, an image, a '
             'snapshot or a storage volume (a dir pool removes every file '
             'of it).'),
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
