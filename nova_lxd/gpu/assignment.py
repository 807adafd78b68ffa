"""Placement allocations -> the GPU devices of one container (pure).

Placement guarantees the count; the driver guarantees the cards (see
ARCHITECTURE.md "GPU model"). Which container holds which card is kept
nowhere but in LXD: every gpu device the driver writes names its card
(decision 8), so ``ledger`` rebuilds the holdings of a member from one
instance listing, after a restart too. ``assign`` picks free cards, MIG
slices or shared-card slots of the allocated model from that ledger. The
caller holds the member's lock around ledger read, ``assign`` and create
(nova_lxd.gpu.devices), so two spawns on one member never pick one card.

What LXD accepts is read from its API extensions (LXD's
doc/api-extensions.md and lxd/device/gpu_*.go): ``gpu_devices`` (gpu
devices at all), ``gpu_mdev`` (the ``gputype`` key; before it, only what
is now ``physical``), ``gpu_mig`` (``gputype=mig``), ``gpu_mig_uuid``
(``mig.uuid``; without it only ``mig.gi``/``mig.ci``), ``gpu_cdi`` (CDI
names such as ``nvidia.com/gpu=<uuid>`` in ``id``), ``nvidia_runtime``
and ``nvidia_runtime_config`` (``nvidia.runtime``,
``nvidia.driver.capabilities``, ``nvidia.require.cuda``: removed in LXD
6.10 together with those keys), and ``gpu_mig_cdi`` (MIG through CDI;
the name is read from the LXD 6.10 release notes' anchor
``extension-gpu-mig-cdi``): before it, LXD refuses to start a
``gputype=mig`` device unless ``nvidia.runtime`` is true.
"""

import collections
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import datetime
import hashlib
import json
import re
from typing import Any
from typing import TYPE_CHECKING

from nova_lxd import constants
from nova_lxd.gpu import discovery
from nova_lxd.gpu import options
from nova_lxd.gpu import providers

if TYPE_CHECKING:
    from nova_lxd import extra_specs

# An LXD gpu device, as LXD's JSON gives it and the driver writes it.
Device = dict[str, str]

EXT_GPU = 'gpu_devices'
EXT_GPUTYPE = 'gpu_mdev'
EXT_MIG = 'gpu_mig'
EXT_MIG_UUID = 'gpu_mig_uuid'
EXT_CDI = 'gpu_cdi'
EXT_MIG_CDI = 'gpu_mig_cdi'
EXT_NVIDIA_RUNTIME = 'nvidia_runtime'
EXT_NVIDIA_CONFIG = 'nvidia_runtime_config'

CDI_NVIDIA_GPU = 'nvidia.com/gpu='
_CDI = re.compile(r'^([a-z0-9.-]+)/([a-z0-9.-]+)=(.+)$')
_STANDALONE = ('', 'none', None)


class GPUAssignmentError(Exception):
    """The container cannot get its GPUs; the message says why.

    ``tenant_message``: what the server's fault may say (its tenant reads
    it); the whole message is for the operator's log.
    """

    @property
    def tenant_message(self) -> str:
        return str(self)


class NotEnoughGPUs(GPUAssignmentError):
    """Placement counted units that LXD's containers already hold."""

    def __init__(self, member: str, provider: str, model: str,
                 resource_class: str, asked: int, free: int,
                 holders: Sequence[tuple[str, str]]) -> None:
        self.member, self.provider, self.model = member, provider, model
        self.resource_class, self.asked, self.free = (resource_class,
                                                      asked, free)
        self.holders = holders
        held = ', '.join('%s (%s)' % h for h in holders[:8]) or 'nobody'
        if len(holders) > 8:
            held += ', and %d more' % (len(holders) - 8)
        super().__init__(
            'member %s: %d x %s of GPU model %s (provider %s) asked, %d '
            'free; held by: %s. Placement and LXD disagree: a container '
            'outside Nova may hold cards of this model, or cards are '
            'unhealthy' % (member, asked, resource_class, model, provider,
                           free, held))

    @property
    def tenant_message(self) -> str:
        # Other tenants' and the operator's containers stay unnamed.
        return ('%d x %s of GPU model %s asked, %d free on the host: cards '
                'Placement counted as free are held by other containers; '
                'nova-compute\'s log names them' % (
                    self.asked, self.resource_class, self.model, self.free))


class GPUsTaken(GPUAssignmentError):
    """Another writer took a unit this container was given, at the same time.

    ``contests``: the Contests found, for the operator's log.
    """

    def __init__(self, member: str, contests: Sequence['Contest']) -> None:
        self.member, self.contests = member, contests
        super().__init__(
            'member %s: %s, given to this container, also taken by %s at '
            'the same time (another nova-compute?)' % (
                member, ', '.join(c.unit for c in contests),
                '; '.join(', '.join(c.others) for c in contests)))

    @property
    def tenant_message(self) -> str:
        return ('the GPUs picked for this server were taken by another '
                'server at the same time; retry')


class UnsupportedByLXD(GPUAssignmentError):
    """The LXD server lacks an API extension the container needs."""

    def __init__(self, what: str, extensions: Iterable[str]) -> None:
        self.extensions = tuple(extensions)
        super().__init__('%s needs the LXD API extension(s) %s, which this '
                         'LXD server does not have'
                         % (what, ', '.join(extensions)))


# -- names -------------------------------------------------------------

def device_map(devices: Iterable[Mapping[str, str]]) -> dict[str, Device]:
    """[device] -> {'nova-gpu-0': device, ...}, in the given order."""
    return {constants.gpu_device_name(i): dict(d)
            for i, d in enumerate(devices)}


def _device_order(name: str) -> tuple[int, int, str]:
    index = constants.gpu_device_index(name)
    return (0, index, '') if index is not None else (1, 0, name)


# -- the ledger --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Holding:
    """One gpu device of a container that names a card or a slice."""

    container: str
    device: str
    instance_uuid: str | None      # None: not a Nova container
    pci: str | None = None         # gputype=physical pci=
    gpu_uuid: str | None = None    # CDI name by UUID ('gpu-...', lower)
    index: int | None = None       # CDI name by NVML index
    drm_id: int | None = None      # id= a DRM card id
    mig_uuid: str | None = None    # a MIG slice ('mig-...', lower)
    spec: tuple[tuple[str, str], ...] = ()     # the device, sorted items

    @property
    def nova(self) -> bool:
        """Written by the driver: Nova's container, the driver's name."""
        return (self.instance_uuid is not None and
                constants.is_gpu_device(self.device))

    def config(self) -> Device:
        return dict(self.spec)


@dataclasses.dataclass(frozen=True)
class Ledger:
    """Who holds which card of one member, as LXD's containers say."""

    member: str
    holdings: tuple[Holding, ...] = ()
    # (container, device, why): gpu devices selecting no single card (no
    # selector, vendorid/productid only, "all"): not counted, reported.
    wide: tuple[tuple[str, str, str], ...] = ()
    # (container, LXD's created_at): who came first, when two writers
    # took one unit (contested).
    created: tuple[tuple[str, str], ...] = ()

    def of_instance(self, instance_uuid: str) -> list[Holding]:
        """The driver's devices of one instance, in their name order."""
        return sorted((h for h in self.holdings
                       if h.nova and h.instance_uuid == instance_uuid),
                      key=lambda h: _device_order(h.device))


def _prefixed(uuid: str, prefix: str) -> str:
    uuid = uuid.strip().lower()
    return uuid if uuid.startswith(prefix) else prefix + uuid


def _cdi_selector(value: str) -> dict[str, Any] | str:
    """A CDI name -> Holding fields, or the reason it names no card."""
    found = _CDI.match(value)
    if found is None:
        return 'CDI name %s: not vendor/class=name' % value
    vendor, cls, name = found.groups()
    if vendor != 'nvidia.com':
        return 'CDI name %s: only NVIDIA names are understood' % value
    if name == 'all':
        return 'CDI name %s grants every GPU' % value
    if name.isdigit():
        return {'index': int(name)}
    if name.lower().startswith('mig-'):
        return {'mig_uuid': _prefixed(name, 'mig-')}
    if cls == 'gpu' and ':' not in name:
        return {'gpu_uuid': _prefixed(name, 'gpu-')}
    return 'CDI name %s: a MIG slice by index, not by UUID' % value


def _selector(device: Mapping[str, str]) -> dict[str, Any] | str | None:
    """A gpu device -> Holding fields, or why it names no single card."""
    kind = device.get('gputype', 'physical')
    if kind == 'mig':
        if device.get('mig.uuid'):
            pci = device.get('pci')
            return {'mig_uuid': _prefixed(device['mig.uuid'], 'mig-'),
                    'pci': discovery.normalize_pci(pci) if pci else None}
        if device.get('id') and _CDI.match(device['id']):
            return _cdi_selector(device['id'])
        return 'MIG slice by mig.gi/mig.ci, which NVML facts do not map'
    if kind != 'physical':
        return None                 # mdev, sriov: VMs' virtual functions
    if device.get('pci'):
        return {'pci': discovery.normalize_pci(device['pci'])}
    ident = device.get('id', '')
    if _CDI.match(ident):
        return _cdi_selector(ident)
    if ident.isdigit():
        return {'drm_id': int(ident)}
    return 'no pci, id or mig.uuid: it grants every matching GPU'


def _on_member(instance: Mapping[str, Any], member: str) -> bool:
    location = instance.get('location')
    return location == member or location in _STANDALONE


def ledger(lxd_instances: Iterable[Mapping[str, Any]], member: str) -> Ledger:
    """LXD's instance list (``GET /1.0/instances?recursion=1``) -> Ledger.

    Every container on ``member`` counts, Nova's or not, stopped or
    running, in any project (``all-projects``; a container outside the
    default project is named ``project/name``): a card in an operator's
    container is not free. Devices come from ``expanded_devices``
    (profiles included) where LXD gives them.
    """
    holdings, wide, created = [], [], []
    for instance in lxd_instances:
        if not _on_member(instance, member):
            continue
        name = instance.get('name', '')
        if instance.get('project', 'default') != 'default':
            name = '%s/%s' % (instance['project'], name)
        created.append((name, instance.get('created_at') or ''))
        uuid = (instance.get('config') or {}).get(
            constants.INSTANCE_UUID_KEY)
        devices = (instance.get('expanded_devices') or
                   instance.get('devices') or {})
        for dev_name, device in sorted(devices.items()):
            if device.get('type') != 'gpu':
                continue
            try:
                found = _selector(device)
            except discovery.GPUDataError as e:
                found = 'unreadable: %s' % e
            if found is None:
                continue
            if isinstance(found, str):
                wide.append((name, dev_name, found))
                continue
            holdings.append(Holding(
                container=name, device=dev_name, instance_uuid=uuid,
                spec=tuple(sorted(device.items())), **found))
    return Ledger(member, tuple(holdings), tuple(wide), tuple(created))


# -- the member's cards and what is free -------------------------------

@dataclasses.dataclass(frozen=True)
class _Unit:
    """What one device gives: a card (whole or a slot of it) or a slice."""

    card: discovery.GPUCard
    mig: discovery.MigDevice | None = None
    order: tuple[Any, ...] = ()

    @property
    def key(self) -> str:
        return self.mig.uuid.lower() if self.mig else self.card.pci_address


class _Member:
    """The member's cards, found by any name a gpu device gives them."""

    def __init__(self, member: str, cards: Sequence[discovery.GPUCard],
                 config: options.GpuConfig) -> None:
        self.plans = {p.card.pci_address: p
                      for p in providers.card_plans(member, cards, config)
                      if p.exposed}
        self.by_pci = {c.pci_address: c for c in cards}
        self.by_uuid = {c.nvidia_uuid.lower(): c for c in cards
                        if c.nvidia_uuid}
        self.by_drm = {c.drm_id: c for c in cards if c.drm_id is not None}
        # NVML numbers GPUs in PCI bus order; CDI index names follow it.
        nvidia = sorted((c for c in cards
                         if c.vendor_id == discovery.NVIDIA),
                        key=lambda c: c.pci_address)
        self.by_index = dict(enumerate(nvidia))
        self.slices = {m.uuid.lower(): (c, m) for c in cards
                       for m in c.mig_devices}

    def card_of(self, holding: Holding) -> discovery.GPUCard | None:
        if holding.pci:
            return self.by_pci.get(holding.pci)
        if holding.gpu_uuid:
            return self.by_uuid.get(holding.gpu_uuid)
        if holding.index is not None:
            return self.by_index.get(holding.index)
        if holding.drm_id is not None:
            return self.by_drm.get(holding.drm_id)
        return None

    def unit_of(self, holding: Holding) -> _Unit | None:
        if holding.mig_uuid:
            card, mig = self.slices.get(holding.mig_uuid, (None, None))
            return _Unit(card, mig) if card else None
        card = self.card_of(holding)
        return _Unit(card) if card else None

    def kind_of(self, unit: _Unit) -> str | None:
        """The resource class one unit is counted in, or None."""
        plan = self.plans.get(unit.card.pci_address)
        if plan is None:
            return None
        if unit.mig is not None:
            if plan.mode != 'mig':
                return None
            return providers.mig_resource_class(unit.mig.profile)
        if plan.mode == 'whole':
            return providers.RC_WHOLE
        if plan.mode.startswith('shared'):
            return providers.RC_SHARED
        return None

    def slots(self, card: discovery.GPUCard) -> int:
        return dict(self.plans[card.pci_address].units).get(
            providers.RC_SHARED, 1)


class _Usage:
    """Containers on each card and slice, from the ledger."""

    def __init__(self, member: _Member, ledger: Ledger) -> None:
        self.cards = collections.defaultdict(set)     # pci -> containers
        self.slices = collections.defaultdict(set)    # mig uuid -> ...
        self.sliced = collections.defaultdict(set)    # pci -> ...
        self.names = collections.defaultdict(set)     # pci -> shown names
        for h in ledger.holdings:
            if h.mig_uuid:
                card, _ = member.slices.get(h.mig_uuid, (None, None))
                parent = card.pci_address if card else h.pci
                self.slices[h.mig_uuid].add(h.container)
                if parent:
                    self.sliced[parent].add(h.container)
                    self.names[parent].add(h.container)
                continue
            card = member.card_of(h)
            if card is not None:
                self.cards[card.pci_address].add(h.container)
                self.names[card.pci_address].add(h.container)

    def free(self, unit: _Unit, rc: str, slots: int,
             mine: Collection[str]) -> bool:
        """Whether ``unit`` can serve one more unit of ``rc``."""
        pci = unit.card.pci_address
        if self.cards[pci] and rc != providers.RC_SHARED:
            return False
        if unit.mig is not None:
            return not self.slices[unit.key]
        if self.sliced[pci]:
            return False
        if rc == providers.RC_SHARED:
            return pci not in mine and len(self.cards[pci]) < slots
        return True

    def take(self, unit: _Unit, container: str) -> None:
        """Count a pick, so later picks of this call see it held."""
        if unit.mig is not None:
            self.slices[unit.key].add(container)
            self.sliced[unit.card.pci_address].add(container)
        else:
            self.cards[unit.card.pci_address].add(container)


def _units(member: _Member, model: str, rc: str) -> list[_Unit]:
    """Every unit of ``rc`` on the cards of ``model``, in a stable order."""
    units = []
    for pci, plan in sorted(member.plans.items()):
        card = plan.card
        if card.model != model:
            continue
        if rc.startswith(providers.MIG_RC_PREFIX):
            for i, mig in enumerate(card.mig_devices):
                unit = _Unit(card, mig, (pci, i))
                if member.kind_of(unit) == rc:
                    units.append(unit)
        elif member.kind_of(_Unit(card)) == rc:
            units.append(_Unit(card, None, (pci,)))
    return units


def _node(unit: _Unit) -> tuple[int, int]:
    numa = unit.card.numa_node
    return (1, 0) if numa is None else (0, numa)


def _choose(units: Iterable[_Unit], count: int,
            prefer: Collection[tuple[int, int]] = (),
            load: Callable[[_Unit], int] | None = None) -> list[_Unit]:
    """``count`` units on one NUMA node if any node has them.

    The node chosen is a preferred one (where the instance's other cards
    are), then, for shared cards, the least loaded, then the one with the
    fewest free units: the best fit leaves fuller nodes for larger
    requests. Otherwise as few nodes as can hold them.
    """
    by_node: dict[tuple[int, int], list[_Unit]] = collections.defaultdict(
        list)
    for unit in sorted(units, key=lambda u: (load(u) if load else 0,
                                             u.order)):
        by_node[_node(unit)].append(unit)

    def cost(node: tuple[int, int]) -> int:
        return sum(load(u) for u in by_node[node][:count]) if load else 0

    fits = [n for n, free in by_node.items() if len(free) >= count]
    if fits:
        node = min(fits, key=lambda n: (n not in prefer, cost(n),
                                        len(by_node[n]), n))
        return by_node[node][:count]
    chosen: list[_Unit] = []
    for node in sorted(by_node, key=lambda n: (n not in prefer,
                                               -len(by_node[n]), n)):
        chosen += by_node[node][:count - len(chosen)]
    return chosen[:count]


# -- device shapes -----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Shapes:
    """How gpu devices are written for one LXD server and one flavor."""

    extensions: frozenset[str]
    cdi: bool = False           # NVIDIA cards by CDI name

    def card(self, card: discovery.GPUCard) -> Device:
        if self.cdi and card.vendor_id == discovery.NVIDIA:
            if not card.nvidia_uuid:
                raise GPUAssignmentError(
                    'GPU %s: its CDI name needs its UUID, which neither '
                    'LXD nor NVML reported' % card.pci_address)
            return {'type': 'gpu', 'gputype': 'physical',
                    'id': CDI_NVIDIA_GPU + card.nvidia_uuid}
        device = {'type': 'gpu', 'pci': card.pci_address}
        if EXT_GPUTYPE in self.extensions:
            device['gputype'] = 'physical'
        return device

    def slice(self, card: discovery.GPUCard,
              mig: discovery.MigDevice) -> Device:
        missing = [e for e in (EXT_GPUTYPE, EXT_MIG, EXT_MIG_UUID)
                   if e not in self.extensions]
        if missing:
            raise UnsupportedByLXD('a MIG slice named by its UUID', missing)
        return {'type': 'gpu', 'gputype': 'mig', 'pci': card.pci_address,
                'mig.uuid': mig.uuid}

    def device(self, unit: _Unit) -> Device:
        if unit.mig is not None:
            return self.slice(unit.card, unit.mig)
        return self.card(unit.card)


def shapes(api_extensions: Iterable[str],
           nvidia_runtime: bool = False) -> Shapes:
    """Device shapes for a server (its ``api_extensions``) and a flavor.

    NVIDIA cards get CDI names where the server has ``gpu_cdi`` and the
    flavor asks for the host's NVIDIA libraries (``lxd:nvidia_runtime``):
    CDI always brings the libraries, so a flavor that does not ask keeps
    ``pci=`` and gets the bare device nodes, as on LXD 5.0.
    """
    extensions = frozenset(api_extensions)
    if EXT_GPU not in extensions:
        raise UnsupportedByLXD('a GPU in a container', [EXT_GPU])
    return Shapes(extensions, cdi=bool(nvidia_runtime) and
                  EXT_CDI in extensions)


# -- the choice --------------------------------------------------------

def _requests(allocations: Mapping[str, Any] | None,
              providers_by_uuid: Mapping[str, str], member: str,
              plans: Mapping[str, providers.CardPlan]
              ) -> list[tuple[str, str, str, int]]:
    """Allocations -> [(provider name, model, rc, amount)] of GPU classes."""
    models = {p.provider: p.card.model for p in plans.values()}
    wanted = []
    for rp_uuid, alloc in sorted((allocations or {}).items()):
        for rc, amount in sorted((alloc.get('resources') or {}).items()):
            if not providers.is_gpu_class(rc) or not amount:
                continue
            name = providers_by_uuid.get(rp_uuid)
            if name is None:
                raise GPUAssignmentError(
                    'member %s: %d x %s allocated from resource provider %s, '
                    'which the driver does not know' % (member, amount, rc,
                                                        rp_uuid))
            if name not in models:
                raise GPUAssignmentError(
                    'member %s: %d x %s allocated from provider %s, which '
                    'is no GPU model this member exposes now'
                    % (member, amount, rc, name))
            wanted.append((name, models[name], rc, int(amount)))
    return wanted


def holders(member: str, cards: Sequence[discovery.GPUCard],
            config: options.GpuConfig, ledger: Ledger) -> dict[str, list[str]]:
    """{pci: containers holding the card or one of its slices} (sorted)."""
    usage = _Usage(_Member(member, cards, config), ledger)
    return {pci: sorted(names) for pci, names in usage.names.items()
            if names}


@dataclasses.dataclass(frozen=True)
class Contest:
    """A unit of an instance that others hold too, beyond what it allows."""

    unit: str                   # pci address or MIG UUID
    others: tuple[str, ...]     # the other holders, sorted
    # Whether the instance gives it up now: among all holders, ordered by
    # LXD's created_at (then name), it is not one of the first that the
    # unit allows (1, or a shared card's slots).
    yields: bool


def _created(value: str) -> datetime.datetime:
    """LXD's created_at (RFC 3339, nanoseconds) -> a comparable time."""
    try:
        found = datetime.datetime.fromisoformat(value)
    except ValueError:
        return datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)
    if found.tzinfo is None:
        found = found.replace(tzinfo=datetime.timezone.utc)
    return found


def contested(cards: Sequence[discovery.GPUCard],
              config: options.GpuConfig, ledger: Ledger,
              instance_uuid: str) -> list[Contest]:
    """The instance's units that others hold too, beyond what they allow.

    Read after the instance's container was written (``ledger`` of that
    moment): a whole card or a MIG slice that another container holds as
    well, a card whose slices and whole use mix, a shared card with more
    containers than slots.

    Two writers that picked one unit: the later writer's read always
    shows the earlier one, the earlier one's may or may not show the
    later. A writer keeps its units only once a read after its write
    shows none contested, so no unit is ever kept twice (the last of two
    keepers' reads would show the other). Which one gives up first is
    deterministic (``Contest.yields``); the others wait a while for it
    to go, then give up too.
    """
    where = _Member(ledger.member, cards, config)
    usage = _Usage(where, ledger)
    since = dict(ledger.created)
    found = []
    for held in ledger.of_instance(instance_uuid):
        unit = where.unit_of(held)
        if unit is None:
            continue
        pci = unit.card.pci_address
        mine = held.container
        allowed = 1
        if unit.mig is not None:
            others = (usage.slices[unit.key] | usage.cards[pci]) - {mine}
        elif usage.sliced[pci]:
            others = usage.sliced[pci] | (usage.cards[pci] - {mine})
        elif where.kind_of(unit) == providers.RC_SHARED:
            allowed = where.slots(unit.card)
            if len(usage.cards[pci]) <= allowed:
                continue
            others = usage.cards[pci] - {mine}
        else:
            others = usage.cards[pci] - {mine}
        if not others:
            continue
        first = sorted(others | {mine},
                       key=lambda c: (_created(since.get(c, '')), c))
        found.append(Contest(unit.key, tuple(sorted(others)),
                             yields=first.index(mine) >= allowed))
    return found


def _holders(usage: _Usage, member: _Member,
             model: str) -> list[tuple[str, str]]:
    return sorted((container, pci) for pci, plan in member.plans.items()
                  if plan.card.model == model
                  for container in usage.names[pci])


def assign(cards: Sequence[discovery.GPUCard],
           allocations_for_instance: Mapping[str, Any] | None,
           providers_by_uuid: Mapping[str, str], ledger: Ledger,
           member: str, instance_uuid: str, config: options.GpuConfig,
           device_shapes: Shapes) -> list[Device]:
    """The gpu devices of one instance's container on ``member``.

    :param cards: the member's GPUCards (``discovery.enrich``-ed: MIG
        slices are known only from NVML).
    :param allocations_for_instance: Nova's ``allocations`` of spawn,
        ``{rp_uuid: {'resources': {rc: n}}}``; non-GPU classes ignored.
    :param providers_by_uuid: provider UUID -> name (``<member>_gpu_...``).
    :param ledger: ``ledger(lxd_instances, member)``, read under the
        member's lock.
    :param config: the operator's GpuConfig (modes).
    :param device_shapes: ``shapes(api_extensions, nvidia_runtime)``.
    :returns: [LXD gpu device], each naming one card, slice or CDI
        device; the devices the instance already holds come first, as
        they are, so a repeated call returns the same list.
    :raises: NotEnoughGPUs, GPUAssignmentError, UnsupportedByLXD.
    """
    where = _Member(member, cards, config)
    usage = _Usage(where, ledger)
    held = ledger.of_instance(instance_uuid)
    mine = {u.card.pci_address for u in map(where.unit_of, held) if u}
    kept: list[Holding] = []
    new: list[Device] = []
    for provider, model, rc, amount in _requests(
            allocations_for_instance, providers_by_uuid, member,
            where.plans):
        reuse = _reuse(where, held, kept, model, rc, amount)
        kept += [h for h, _ in reuse]
        picks = _pick(where, usage, mine, model, rc, amount - len(reuse),
                      [u for _, u in reuse])
        if picks is None:
            raise NotEnoughGPUs(member, provider, model, rc, amount,
                                len(_free(where, usage, mine, model, rc)) +
                                len(reuse), _holders(usage, where, model))
        for unit in picks:
            usage.take(unit, instance_uuid)
            mine.add(unit.card.pci_address)
            new.append(device_shapes.device(unit))
    kept.sort(key=lambda h: _device_order(h.device))
    return [h.config() for h in kept] + new


def _reuse(where: _Member, held: Iterable[Holding],
           taken: Collection[Holding], model: str, rc: str,
           amount: int) -> list[tuple[Holding, _Unit]]:
    """[(holding, unit)]: what the instance holds already for ``rc``."""
    found: list[tuple[Holding, _Unit]] = []
    for h in held:
        unit = where.unit_of(h)
        if (len(found) < amount and h not in taken and unit is not None and
                unit.card.model == model and where.kind_of(unit) == rc):
            found.append((h, unit))
    return found


def _free(where: _Member, usage: _Usage, mine: Collection[str], model: str,
          rc: str) -> list[_Unit]:
    slots = where.slots if rc == providers.RC_SHARED else (lambda c: 1)
    return [u for u in _units(where, model, rc)
            if u.card.healthy and usage.free(u, rc, slots(u.card), mine)]


def _pick(where: _Member, usage: _Usage, mine: Collection[str], model: str,
          rc: str, need: int, reused: Iterable[_Unit]) -> list[_Unit] | None:
    """``need`` more free units near ``reused``; None if too few."""
    if need <= 0:
        return []
    free = _free(where, usage, mine, model, rc)
    if len(free) < need:
        return None
    load = ((lambda u: len(usage.cards[u.card.pci_address]))
            if rc == providers.RC_SHARED else None)
    return _choose(free, need, {_node(u) for u in reused}, load)


# -- NVIDIA libraries: instance config, profiles -----------------------

def nvidia_config(specs: 'extra_specs.LXDSpecs',
                  api_extensions: Iterable[str],
                  mig: bool = False,
                  allow_runtime: bool = False) -> dict[str, str]:
    """``lxd:nvidia_*`` specs -> LXD instance config keys.

    Where the devices are CDI names (see ``shapes``) LXD injects the
    libraries itself and there is no key to set: CDI brings every part of
    the driver, so ``nvidia_driver_capabilities`` has nothing to narrow,
    and ``nvidia_require_cuda`` is checked by ``cuda_problem`` instead.
    Elsewhere ``nvidia.runtime`` (and its ``nvidia.*`` companions) does
    it; a MIG slice needs it too where LXD has no MIG through CDI. What
    the server cannot do is refused, never dropped. NVIDIA's hook runs as
    root of the host: only with ``allow_runtime`` (``[lxd]
    allow_nvidia_runtime``), never forced silently by a MIG slice.
    """
    extensions = frozenset(api_extensions)
    cdi = specs.nvidia_runtime and EXT_CDI in extensions
    runtime = ((specs.nvidia_runtime and not cdi) or
               (mig and EXT_MIG_CDI not in extensions))
    if (specs.nvidia_runtime or runtime) and not allow_runtime:
        # Short: Nova keeps 255 characters of a fault's message.
        raise GPUAssignmentError(
            '%s needs NVIDIA\'s hook (%s), run as host root; off here: '
            '[lxd] allow_nvidia_runtime = False' % (
                'a MIG slice on LXD without gpu_mig_cdi'
                if mig and not specs.nvidia_runtime else
                'lxd:nvidia_runtime',
                'nvidia.runtime' if runtime else 'CDI'))
    if not runtime:
        return {}
    if EXT_NVIDIA_RUNTIME not in extensions:
        raise UnsupportedByLXD('MIG slices' if mig else 'lxd:nvidia_runtime',
                               [EXT_NVIDIA_RUNTIME])
    config = {'nvidia.runtime': 'true'}
    wanted = {'nvidia.driver.capabilities': specs.nvidia_driver_capabilities,
              'nvidia.require.cuda': specs.nvidia_require_cuda}
    extra = {k: v for k, v in wanted.items() if v}
    if extra and EXT_NVIDIA_CONFIG not in extensions:
        raise UnsupportedByLXD(', '.join(sorted(extra)),
                               [EXT_NVIDIA_CONFIG])
    config.update(extra)
    return config


def profile_name(config: Mapping[str, str]) -> str | None:
    """The driver's LXD profile for these settings; None when empty.

    Named from the settings themselves, so instances with equal settings
    share one profile and a profile's name says what it holds.
    """
    if not config:
        return None
    text = json.dumps(config, sort_keys=True, separators=(',', ':'))
    return (constants.GPU_PROFILE_PREFIX +
            hashlib.sha256(text.encode()).hexdigest()[:12])


def profile_body(config: Mapping[str, str]) -> dict[str, Any]:
    """``POST /1.0/profiles`` body for ``config``."""
    return {'name': profile_name(config),
            'description': 'nova-lxd: NVIDIA library settings, shared by '
                           'instances; removed by nova-compute when unused',
            'config': dict(config), 'devices': {}}


_REQUIREMENT = re.compile(r'^cuda(>=|<=|!=|=|<|>)(\d+(?:\.\d+){0,2})$')
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    '>=': lambda a, b: a >= b, '<=': lambda a, b: a <= b,
    '!=': lambda a, b: a != b, '=': lambda a, b: a == b,
    '<': lambda a, b: a < b, '>': lambda a, b: a > b}


def _version(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in text.split('.')][:3]
    return tuple(parts + [0] * (3 - len(parts)))


def cuda_problem(requirement: str | None,
                 cards: Iterable[discovery.GPUCard]) -> str | None:
    """Why the member's NVIDIA driver misses ``requirement``, or None.

    ``requirement``: LXDSpecs.nvidia_require_cuda (``cuda>=12.0``). For
    CDI, where no LXD key carries it; the CUDA version is the one LXD
    reports for the member's NVIDIA cards (one driver per host).
    """
    if not requirement:
        return None
    found = _REQUIREMENT.match(requirement)
    if not found:
        return 'unreadable CUDA requirement %r' % requirement
    versions = {c.cuda_version for c in cards if c.cuda_version}
    if not versions:
        return ('the flavor requires %s but LXD reports no CUDA version on '
                'this member' % requirement)
    op, wanted = found.groups()
    for version in sorted(versions):
        if not _COMPARE[op](_version(version), _version(wanted)):
            return ('the flavor requires %s; the NVIDIA driver of this '
                    'member supports CUDA %s' % (requirement, version))
    return None
