"""The GPUs of each member: its providers in Placement, its containers' cards.

The GPU room, shaped like storage.Disks and network.VIFs: the driver
hands it the member's resources for Placement, and asks it for the gpu
devices and profiles of an instance's container. Placement counted the
cards of a model; which cards, MIG slices or shared-card slots a
container gets is picked here, from what LXD's containers hold
(gpu.assignment's ledger), under a lock per member that is held until the
container is created or updated with them: two spawns on one member never
pick one card, spawns on different members do not wait for each other.
"""

import collections
import contextlib

from oslo_concurrency import lockutils
from oslo_log import log as logging

import nova.conf
from nova import context as nova_context
from nova.scheduler.client import report

from nova_lxd import conf as lxd_conf  # noqa: F401 (registers [lxd])
from nova_lxd import constants
from nova_lxd import container
from nova_lxd.gpu import assignment
from nova_lxd.gpu import discovery
from nova_lxd.gpu import nvml
from nova_lxd.gpu import providers

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

LOCK_PREFIX = 'nova-lxd-gpus-'


def wanted(allocations):
    """True when Nova's allocations of an instance hold GPU classes."""
    return any(providers.is_gpu_class(rc)
               for alloc in (allocations or {}).values()
               for rc in alloc.get('resources', {}))


def placement_usage(provider_uuid):
    """{rc: amount} Placement has allocated from a provider, or None.

    Asked only before a GPU inventory shrinks (a card vanished or changed
    mode): Nova's periodic update passes no allocations.
    """
    try:
        placement = report.report_client_singleton()
        found = placement.get_allocations_for_resource_provider(
            nova_context.get_admin_context(), provider_uuid)
    except Exception as e:
        LOG.warning('Cannot read the allocations of GPU provider %s from '
                    'Placement (%s); its inventory is kept', provider_uuid, e)
        return None
    used = collections.Counter()
    for consumer in found.allocations.values():
        used.update(consumer.get('resources') or {})
    return used


class GPUs(object):
    """The GPUs of the members a nova-compute manages.

    ``lxd`` is the driver's nova_lxd.lxd.client.LXD, ``config`` the
    operator's GpuConfig (``[lxd] gpu_*``), ``local_member`` the member
    whose host NVML sees (None: none).
    """

    def __init__(self, lxd, config, local_member):
        self.lxd = lxd
        self.config = config
        self.local_member = local_member
        # member -> (its cards, {GPU provider UUID: provider name})
        self._members = {}

    def update_providers(self, provider_tree, nodename, resources,
                         allocations=None):
        """Make the member's GPU providers in ``provider_tree`` its cards.

        ``resources``: the member's ``GET /1.0/resources``. Unreadable GPU
        data leaves the providers as they are.
        """
        try:
            cards = discovery.cards(resources)
        except discovery.GPUDataError as e:
            LOG.error('%s: LXD\'s GPU data is unreadable (%s); its GPU '
                      'providers stay as they are', nodename, e)
            return
        facts = nvml.collect() if nodename == self.local_member else None
        cards = discovery.enrich(cards, facts)
        specs = providers.gpu_providers(nodename, cards, self.config)
        providers.update_provider_tree(
            provider_tree, nodename, specs, allocations=allocations,
            placement_usage=placement_usage)
        names = {provider_tree.data(u).uuid: provider_tree.data(u).name
                 for u in provider_tree.get_provider_uuids(nodename)}
        self._members[nodename] = (cards, names)

    @contextlib.contextmanager
    def claimed(self, instance, specs, allocations, holding=False):
        """The instance's gpu devices and profile, as a container.Part.

        Empty without a GPU allocation, unless ``holding`` (the container
        holds GPUs already: a resize picks again). Otherwise the member's
        lock is held for the ``with`` block, in which the caller creates
        (or updates) the container with them. ``specs``: the flavor's
        LXDSpecs. Raises GPUAssignmentError when the cards cannot be had.
        The cards the container holds of the allocated models stay.
        """
        if not (holding or wanted(allocations)):
            yield container.Part()
            return
        with lockutils.lock(LOCK_PREFIX + instance.node):
            yield self._pick(instance, specs, allocations)

    def _pick(self, instance, specs, allocations):
        member = instance.node
        if member not in self._members:
            raise assignment.GPUAssignmentError(
                'the GPUs of member %s are not known yet (no resource '
                'update since nova-compute started); retry' % member)
        cards, names = self._members[member]
        extensions = self.lxd.api_extensions
        devices = assignment.assign(
            cards, allocations, names,
            assignment.ledger(self.lxd.instances_of_all_projects(), member),
            member, instance.uuid, self.config,
            assignment.shapes(extensions, specs.nvidia_runtime))
        nvidia = assignment.nvidia_config(
            specs, extensions,
            mig=any(d.get('gputype') == 'mig' for d in devices),
            allow_runtime=CONF.lxd.allow_nvidia_runtime)
        profiles = ()
        if nvidia:
            profile = assignment.profile_body(nvidia)
            self.lxd.ensure_profile(profile)
            profiles = (profile['name'],)
        return container.Part(devices=assignment.device_map(devices),
                              profiles=profiles)

    def remove_unused_profiles(self):
        """Delete the driver's GPU profiles no instance uses any more."""
        self.lxd.delete_unused_profiles(constants.is_gpu_profile)
