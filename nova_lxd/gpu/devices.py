"""The GPUs of each member: its providers in Placement, its containers' cards.

The GPU room, shaped like storage.Disks and network.VIFs: the driver
hands it the member's resources for Placement, and asks it for the gpu
devices and profiles of an instance's container. Placement counted the
cards of a model; which cards, MIG slices or shared-card slots a
container gets is picked here, from what LXD's containers hold
(gpu.assignment's ledger), under a lock per member that is held until the
container is created or updated with them: two spawns on one member never
pick one card, spawns on different members do not wait for each other.

That lock is this process's. Another nova-compute on the same cluster
(another deployment, cell, or overlapping ``[lxd] members``) may pick the
same free card at the same time, so after its container is written each
claim reads LXD again (assignment.contested) and keeps its units only
once a read shows nobody else holds them: the later writer always sees
the earlier, so no unit is kept twice. Of two holders the later created
(LXD's ``created_at``) gives up at once, is removed and picks again after
a random pause; the first waits up to CONTEST_WAIT_SECONDS for it to go,
then gives up too. The ledger must see every LXD project, or nothing is
assigned.
"""

import collections
import contextlib
import random
import time

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
# Claims of one spawn, when other writers took its units meanwhile.
CLAIM_ATTEMPTS = 3
CLAIM_PAUSE_SECONDS = (0.2, 1.5)
# How long the first of two holders of a unit waits for the other to go,
# reading LXD every CONTEST_POLL_SECONDS.
CONTEST_WAIT_SECONDS = 20
CONTEST_POLL_SECONDS = 0.5


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
            part = self._pick(instance, specs, allocations)
            yield part
            if part.devices:
                self._check_kept(instance)

    def created(self, instance, specs, allocations, create, remove):
        """``create(part)`` with the instance's GPUs (a container.Part).

        When another writer took one of its units at the same time,
        ``remove()`` undoes the create and the cards are picked again
        after a random pause, up to CLAIM_ATTEMPTS times.
        """
        for attempt in range(1, CLAIM_ATTEMPTS + 1):
            try:
                with self.claimed(instance, specs, allocations) as part:
                    create(part)
                return
            except assignment.GPUsTaken as e:
                LOG.warning('%s; trying again (%d of %d)', e, attempt,
                            CLAIM_ATTEMPTS, instance=instance)
                remove()
                if attempt == CLAIM_ATTEMPTS:
                    raise
                time.sleep(random.uniform(*CLAIM_PAUSE_SECONDS))

    def _ledger(self, member):
        """Who holds what on ``member``, from every LXD project."""
        if not self.lxd.sees_all_projects():
            raise assignment.GPUAssignmentError(
                'GPU servers are refused: nova-compute\'s LXD client cannot '
                'list every project\'s containers (a restricted certificate '
                'or no instance_all_projects)')
        book = assignment.ledger(self.lxd.instances_of_all_projects(),
                                 member)
        for name, device, why in book.wide:
            LOG.warning('Container %s holds every GPU of member %s (gpu '
                        'device %s: %s): cards given to servers there are '
                        'shared with it', name, member, device, why)
        return book

    def _check_kept(self, instance):
        """Return once nobody else holds the instance's units.

        Raises GPUsTaken when the instance gives them up: at once where it
        came later than another holder, after CONTEST_WAIT_SECONDS where
        the others stay.
        """
        cards, _ = self._members[instance.node]
        deadline = time.monotonic() + CONTEST_WAIT_SECONDS
        while True:
            taken = assignment.contested(cards, self.config,
                                         self._ledger(instance.node),
                                         instance.uuid)
            if not taken:
                return
            if (any(c.yields for c in taken) or
                    time.monotonic() >= deadline):
                raise assignment.GPUsTaken(instance.node, taken)
            LOG.info('Member %s: %s, given to this container, also taken '
                     'by %s; waiting for them to give it up',
                     instance.node, ', '.join(c.unit for c in taken),
                     '; '.join(', '.join(c.others) for c in taken),
                     instance=instance)
            time.sleep(CONTEST_POLL_SECONDS)

    def _pick(self, instance, specs, allocations):
        member = instance.node
        if member not in self._members:
            raise assignment.GPUAssignmentError(
                'the GPUs of member %s are not known yet (no resource '
                'update since nova-compute started); retry' % member)
        cards, names = self._members[member]
        extensions = self.lxd.api_extensions
        devices = assignment.assign(
            cards, allocations, names, self._ledger(member),
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
