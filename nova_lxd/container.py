"""Nova instance -> its LXD container: create and resize bodies (pure).

One call builds the body a spawn creates (``instance_body``), from the
flavor and what each room adds (a ``Part``: disks, ports, GPUs, cloud-init
keys); nothing else writes into it. Only what Nova and the operator
decide reaches the container's config:
the flavor, its ``quota:`` and ``lxd:`` extra specs (within what ``[lxd]``
allows), and Nova's identity keys. Nothing a tenant controls (image
properties, metadata, user data) becomes raw or security configuration.
"""

from collections.abc import Iterable
from collections.abc import Mapping
import dataclasses
from typing import Any
from typing import TYPE_CHECKING

from nova import exception

from nova_lxd import constants

if TYPE_CHECKING:
    from nova import objects

    from nova_lxd import extra_specs

# An LXD API object (instance, device...) as JSON gives it.
Body = dict[str, Any]

# quota:disk_* extra spec -> (LXD root disk key, unit suffix)
_DISK_QUOTAS = {
    'disk_read_bytes_sec': ('limits.read', 'B'),
    'disk_read_iops_sec': ('limits.read', 'iops'),
    'disk_write_bytes_sec': ('limits.write', 'B'),
    'disk_write_iops_sec': ('limits.write', 'iops'),
    'disk_total_bytes_sec': ('limits.max', 'B'),
    'disk_total_iops_sec': ('limits.max', 'iops'),
}
# quota:vif_* (KB/s, as Nova documents) -> LXD nic key (bit/s units)
_VIF_QUOTAS = {
    'vif_inbound_average': 'limits.ingress',
    'vif_outbound_average': 'limits.egress',
}


@dataclasses.dataclass(frozen=True)
class Part:
    """What one room (disks, ports, GPUs, cloud-init) adds to a container.

    ``devices`` and ``config`` are LXD's instance devices and config keys,
    ``profiles`` the names of LXD profiles.
    """

    devices: Mapping[str, Mapping[str, str]] = dataclasses.field(
        default_factory=dict)
    config: Mapping[str, str] = dataclasses.field(default_factory=dict)
    profiles: tuple[str, ...] = ()


def name(instance: 'objects.Instance') -> str:
    """The name of an instance's container.

    The instance's name, unless an evacuation had to give the container
    another (Nova's system metadata keeps it).
    """
    return (instance.system_metadata.get(constants.CONTAINER_NAME_META) or
            instance.name)


def instance_uuid(lxd_instance: Body) -> str | None:
    """The Nova instance UUID of an LXD instance dict, None if not ours."""
    return (lxd_instance.get('config') or {}).get(
        constants.INSTANCE_UUID_KEY)


def _quota(extra_specs: Mapping[str, str], key: str) -> int | None:
    value = extra_specs.get('quota:' + key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise exception.InvalidInput(
            reason='flavor extra spec quota:%s=%s is not a non-negative '
                   'integer' % (key, value))
    return number


def disk_limits(extra_specs: Mapping[str, str]) -> dict[str, str]:
    """Root disk I/O limits from the standard ``quota:disk_*`` specs."""
    limits = {}
    for key, (lxd_key, unit) in sorted(_DISK_QUOTAS.items()):
        number = _quota(extra_specs, key)
        if not number:
            continue
        if lxd_key in limits:
            raise exception.InvalidInput(
                reason='LXD limits a disk by bytes or by IOPS, not both: '
                       'set only one of quota:%s and its bytes/iops twin '
                       'in the flavor' % key)
        limits[lxd_key] = '%d%s' % (number, unit)
    return limits


def nic_limits(extra_specs: Mapping[str, str]) -> dict[str, str]:
    """Network bandwidth limits from ``quota:vif_*_average`` (KB/s)."""
    limits = {}
    for key, lxd_key in _VIF_QUOTAS.items():
        number = _quota(extra_specs, key)
        if number:
            limits[lxd_key] = '%dkbit' % (number * 8)
    return limits


@dataclasses.dataclass(frozen=True)
class Gates:
    """What the operator's ``[lxd]`` options open, and the host's defaults.

    ``allow_privileged`` and ``allow_nesting`` open ``lxd:privileged`` and
    ``lxd:nesting``; ``privileged_projects`` and ``nesting_projects``, when
    not empty, narrow that to these Keystone projects (empty: every
    project). ``allow_nvidia_runtime`` opens NVIDIA's runtime hook.
    ``isolated_idmap``: every container gets its own host id range;
    ``max_processes``: ``limits.processes`` unless the flavor says (0: no
    limit).
    """

    allow_privileged: bool = False
    privileged_projects: frozenset[str] = frozenset()
    allow_nesting: bool = False
    nesting_projects: frozenset[str] = frozenset()
    allow_nvidia_runtime: bool = False
    isolated_idmap: bool = True
    max_processes: int = 0


def gates(lxd_conf: Any) -> Gates:
    """The Gates of the ``[lxd]`` option group (CONF.lxd)."""
    return Gates(
        allow_privileged=lxd_conf.allow_privileged,
        privileged_projects=frozenset(lxd_conf.privileged_projects),
        allow_nesting=lxd_conf.allow_nesting,
        nesting_projects=frozenset(lxd_conf.nesting_projects),
        allow_nvidia_runtime=lxd_conf.allow_nvidia_runtime,
        isolated_idmap=lxd_conf.isolated_idmap,
        max_processes=lxd_conf.max_processes)


def _closed(what: str, spec: str, allowed: bool,
            projects: frozenset[str], project_id: str) -> str | None:
    """Why ``project_id`` may not have ``what``; None when it may.

    Short: Nova keeps 255 characters of a fault's message.
    """
    option = spec.split(':')[1]
    if not allowed:
        return '%s (%s), off here: [lxd] allow_%s = False' % (
            what, spec, option)
    if projects and project_id not in projects:
        return '%s (%s), only for [lxd] %s_projects, not %s' % (
            what, spec, option, project_id)
    return None


# The config keys ``flavor_config`` decides: a resize writes each (an
# empty value removes a key).
FLAVOR_KEYS = ('limits.cpu', 'limits.memory', 'limits.memory.swap',
               'limits.processes', 'security.privileged', 'security.nesting',
               'security.idmap.isolated')
# Keys that change what the container is only when it starts again.
# limits.cpu too: LXD's CPU scheduler, which pins a running container to
# that many CPUs (what nproc shows), is triggered by a live change before
# LXD saves it, and may read the old count (LXD 5.0 to 5.21); at start it
# reads the saved one.
RESTART_KEYS = ('security.privileged', 'security.nesting', 'limits.cpu')


def security_config(specs: 'extra_specs.LXDSpecs', project_id: str,
                    gates: Gates) -> dict[str, str]:
    """LXD security keys for the ``lxd:`` specs the operator allows.

    A flavor asking for more than ``[lxd]`` allows the project is refused,
    never silently downgraded: the tenant asked for it.
    """
    config = {}
    for asked, what, spec, allowed, projects, key in (
            (specs.privileged, 'a privileged container', 'lxd:privileged',
             gates.allow_privileged, gates.privileged_projects,
             'security.privileged'),
            (specs.nesting, 'nested containers', 'lxd:nesting',
             gates.allow_nesting, gates.nesting_projects,
             'security.nesting')):
        if not asked:
            continue
        closed = _closed(what, spec, allowed, projects, project_id)
        if closed:
            raise exception.InvalidInput(reason='flavor asks for ' + closed)
        config[key] = 'true'
    if specs.nvidia_runtime and not gates.allow_nvidia_runtime:
        raise exception.InvalidInput(
            reason='flavor asks for NVIDIA\'s hook, run as host root '
                   '(lxd:nvidia_runtime), off here: [lxd] '
                   'allow_nvidia_runtime = False')
    # A privileged container has no idmap to isolate.
    if (gates.isolated_idmap or specs.isolated_idmap) and not specs.privileged:
        config['security.idmap.isolated'] = 'true'
    return config


def start_problem(found: Body, project_id: str,
                  gates: Gates) -> str | None:
    """Why a container (LXD's GET of it) may not start now; None if it may.

    The operator may have closed since it was made what its config (with
    its profiles') opens: it does not start again until reopened.
    """
    config = found.get('expanded_config') or found.get('config') or {}
    for key, what, spec, allowed, projects in (
            ('security.privileged', 'a privileged container',
             'lxd:privileged', gates.allow_privileged,
             gates.privileged_projects),
            ('security.nesting', 'nested containers', 'lxd:nesting',
             gates.allow_nesting, gates.nesting_projects)):
        if config.get(key) == 'true':
            closed = _closed(what, spec, allowed, projects, project_id)
            if closed:
                return 'the container is ' + closed
    if (config.get('nvidia.runtime') == 'true' and
            not gates.allow_nvidia_runtime):
        return ('the container has NVIDIA\'s hook (nvidia.runtime), off '
                'here: [lxd] allow_nvidia_runtime = False')
    return None


def root_disk(flavor: 'objects.Flavor', pool: str,
              extra_specs: Mapping[str, str]) -> dict[str, str]:
    device = {'type': 'disk', 'path': '/', 'pool': pool}
    if flavor.root_gb:
        device['size'] = '%dGiB' % flavor.root_gb
    device.update(disk_limits(extra_specs))
    return device


def limits(flavor: 'objects.Flavor', specs: 'extra_specs.LXDSpecs',
           gates: Gates) -> dict[str, str]:
    """Flavor size -> LXD limits (also applied live on resize).

    No swap unless the flavor's ``lxd:memory_swap`` says so; at most
    ``lxd:max_processes`` processes (else the operator's default).
    """
    config = {'limits.cpu': str(flavor.vcpus),
              'limits.memory': '%dMiB' % flavor.memory_mb,
              'limits.memory.swap': 'true' if specs.memory_swap else 'false'}
    processes = specs.max_processes or gates.max_processes
    if processes:
        config['limits.processes'] = str(processes)
    return config


def flavor_config(flavor: 'objects.Flavor', specs: 'extra_specs.LXDSpecs',
                  project_id: str, gates: Gates) -> dict[str, str]:
    """Every key of FLAVOR_KEYS for ``flavor``: '' for the keys it unsets.

    Limits and security keys, as a create and a resize write them.
    """
    config = dict.fromkeys(FLAVOR_KEYS, '')
    config.update(limits(flavor, specs, gates))
    config.update(security_config(specs, project_id, gates))
    return config


def check(flavor: 'objects.Flavor', specs: 'extra_specs.LXDSpecs',
          project_id: str, gates: Gates) -> None:
    """Refuse what ``instance_body`` would refuse, before anything is made.

    InvalidInput naming the extra spec or the ``[lxd]`` option.
    """
    security_config(specs, project_id, gates)
    disk_limits(flavor.extra_specs)


def _merged(name: str,
            pieces: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One dict of several; a key given twice is a bug, not a choice."""
    merged: dict[str, Any] = {}
    for piece in pieces:
        twice = set(merged) & set(piece)
        if twice:
            raise ValueError('%s %s given twice' % (name, ', '.join(
                sorted(twice))))
        merged.update(piece)
    return merged


def instance_body(instance: 'objects.Instance', flavor: 'objects.Flavor',
                  specs: 'extra_specs.LXDSpecs', fingerprint: str | None,
                  pool: str, parts: Iterable[Part] = (),
                  gates: Gates = Gates()) -> Body:
    """The POST /1.0/instances body for a Nova instance.

    Nova's identity keys, the flavor's limits, root disk and the security
    keys its ``lxd:`` specs may have (``specs``: LXDSpecs; within what the
    operator's ``gates`` allow the instance's project), and what the rooms
    add: ``parts``, container.Parts of the ephemeral disk and volumes, the
    ports, the GPUs, the cloud-init keys.
    """
    config = {
        constants.INSTANCE_UUID_KEY: instance.uuid,
        constants.PROJECT_KEY: instance.project_id,
        constants.FLAVOR_KEY: flavor.name,
        # Nova starts servers (resume_guests_state_on_host_boot), never
        # LXD: a member back from a failure must not start a server that
        # was evacuated meanwhile.
        'boot.autostart': 'false',
    }
    config.update({k: v for k, v in flavor_config(
        flavor, specs, instance.project_id, gates).items() if v})
    devices = {'root': root_disk(flavor, pool, flavor.extra_specs)}
    return {
        'name': name(instance),
        'type': 'container',
        'source': {'type': 'image', 'fingerprint': fingerprint},
        # No operator profile: the container is exactly what the driver
        # writes, whatever the LXD default profile holds.
        'profiles': [p for part in parts for p in part.profiles],
        'config': _merged('config key', [config] +
                          [part.config for part in parts]),
        'devices': _merged('device', [devices] +
                           [part.devices for part in parts]),
    }


# -- resize: the container as LXD has it, changed ----------------------


def holds_gpus(found: Body) -> bool:
    """Whether an instance (``GET /1.0/instances/<name>``) has our GPUs."""
    return any(map(constants.is_gpu_device, found['devices']))


def _resized_root(found: Body, flavor: 'objects.Flavor') -> dict[str, str]:
    root = dict(found['devices']['root'])
    root.update(root_disk(flavor, root['pool'], flavor.extra_specs))
    return root


def flavor_specs(flavor: 'objects.Flavor') -> 'extra_specs.LXDSpecs':
    """The ``lxd:`` specs of a flavor (extra_specs.lxd_specs)."""
    from nova_lxd import extra_specs
    return extra_specs.lxd_specs(flavor.extra_specs)


def _resized_config(found: Body, flavor: 'objects.Flavor',
                    gates: Gates) -> dict[str, str]:
    """flavor_config of ``flavor`` for the project ``found`` belongs to."""
    return flavor_config(flavor, flavor_specs(flavor),
                         found['config'].get(constants.PROJECT_KEY, ''),
                         gates)


def resize_patch(found: Body, flavor: 'objects.Flavor',
                 gates: Gates) -> Body:
    """The PATCH of ``found`` to ``flavor``.

    Limits, security keys (within what ``gates`` allow now), root size,
    disk I/O.
    """
    return {'config': _resized_config(found, flavor, gates),
            'devices': {'root': _resized_root(found, flavor)}}


def needs_restart(found: Body, config: Mapping[str, str]) -> bool:
    """Whether ``config`` (a resize's) changes keys that act at start.

    A running privileged container stays privileged until it starts
    again: dropping ``security.privileged`` needs a restart; a new vCPU
    count is pinned reliably only at start (RESTART_KEYS).
    """
    return any((found['config'].get(k) or '') != (config.get(k) or '')
               for k in RESTART_KEYS if k in config)


def resized(found: Body, flavor: 'objects.Flavor', gpus: Part,
            gates: Gates) -> Body:
    """``found`` with ``flavor``'s limits, keys, root disk and ``gpus``.

    ``gpus`` (a Part) replaces the driver's gpu devices and GPU profiles.
    For LXD's PUT (client.replace_instance), which removes what it lacks.
    """
    config = dict(found['config'])
    config.update(_resized_config(found, flavor, gates))
    config = {k: v for k, v in config.items() if v != ''}
    devices = {n: d for n, d in found['devices'].items()
               if not constants.is_gpu_device(n)}
    devices['root'] = _resized_root(found, flavor)
    devices.update(gpus.devices)
    profiles = [p for p in found['profiles']
                if not constants.is_gpu_profile(p)] + list(gpus.profiles)
    return dict(found, config=config, devices=devices, profiles=profiles)


# -- a move to another member ------------------------------------------


def member_bound(device: str) -> bool:
    """A device of the driver that only makes sense on its member.

    GPUs name the member's cards, volumes its host's block devices, the
    ephemeral disk its custom volume on the member: they are taken out
    before a move and given again by the destination.
    """
    return (constants.is_gpu_device(device) or
            device == constants.EPHEMERAL_DEVICE or
            device.startswith(constants.VOLUME_DEVICE_PREFIX))


def unbound(found: Body) -> Body:
    """``found`` without its member-bound devices and GPU profiles."""
    return dict(found,
                devices={n: d for n, d in found['devices'].items()
                         if not member_bound(n)},
                profiles=[p for p in found['profiles']
                          if not constants.is_gpu_profile(p)])


def rehomed(found: Body, flavor: 'objects.Flavor',
            parts: Iterable[Part], gates: Gates) -> Body:
    """``found`` on its new member: ``flavor``'s keys and root, ``parts``.

    The flavor's limits and security keys (within what ``gates`` allow
    now), as a resize writes them. ``parts`` (the ports, volumes,
    ephemeral disk and GPUs the new member gives) replace the driver's
    ports and member-bound devices; for LXD's PUT
    (client.replace_instance).
    """
    parts = list(parts)
    config = dict(found['config'])
    config.update(_resized_config(found, flavor, gates))
    config = {k: v for k, v in config.items() if v != ''}
    config[constants.FLAVOR_KEY] = flavor.name
    devices = {n: d for n, d in found['devices'].items()
               if not (member_bound(n) or
                       n.startswith(constants.PORT_DEVICE_PREFIX))}
    devices['root'] = _resized_root(found, flavor)
    devices.update(_merged('device', [part.devices for part in parts]))
    profiles = [p for p in found['profiles']
                if not constants.is_gpu_profile(p)]
    profiles += [p for part in parts for p in part.profiles]
    return dict(found, config=config, devices=devices, profiles=profiles)
