"""GPU cards + options -> Placement providers, and applying them (pure).

One child provider of the member's node per GPU model (see
ARCHITECTURE.md "GPU model"): Placement takes one resource class's amount
from one provider, so ``resources:PGPU=8`` must find the 8 cards in one.
``gpu_providers`` says what the providers should be; ``update_provider_tree``
writes that into Nova's ProviderTree, never shrinking what allocations may
still hold, and touching only what the driver owns.
"""

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import math
import re
from typing import Any

import os_resource_classes as orc
import os_traits
from oslo_log import log as logging

from nova_lxd.gpu import discovery
from nova_lxd.gpu import options

LOG = logging.getLogger(__name__)

# Placement's records, as Nova's ProviderTree holds them.
Inventory = dict[str, dict[str, Any]]
# (provider name, resource class) -> amount allocated; None: unknown.
UsedOf = Callable[[str, str], int | None]
# Provider UUID -> {resource class: amount allocated}; None: unknown.
PlacementUsage = Callable[[str], Mapping[str, int] | None]

RC_WHOLE = orc.PGPU
# Time-sliced cards: one class for every shared card; the provider (one per
# model) and its traits say which model.
RC_SHARED = 'CUSTOM_SHARED_GPU'
MIG_RC_PREFIX = 'CUSTOM_MIG_'

# Traits with this prefix are the driver's: it adds and removes them.
TRAIT_PREFIX = 'CUSTOM_GPU_'
TRAIT_UNHEALTHY = TRAIT_PREFIX + 'UNHEALTHY'
# Placement holds units no present, exposed card backs (a card vanished
# from LXD, or the operator withdrew it) while allocations may use them.
TRAIT_MISSING = TRAIT_PREFIX + 'MISSING'
_CUDA_CC = 'HW_GPU_CUDA_COMPUTE_CAPABILITY_'
_CUSTOM_CUDA_CC = TRAIT_PREFIX + 'CUDA_COMPUTE_CAPABILITY_'

# Nominal memory sizes (GiB) of GPUs; NVML reports a little less than the
# label (H100 80GB: 81559 MiB), so the trait names the nearest of these.
_MEMORY_SIZES_GIB = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 16, 20, 24, 32, 40,
                     44, 48, 64, 80, 94, 96, 128, 141, 180, 192, 256, 288)


def mig_resource_class(profile: str) -> str:
    """'1g.10gb' -> 'CUSTOM_MIG_1G_10GB'."""
    return orc.normalize_name('MIG_' + profile)


def provider_name(member: str, vendor_id: str, product_id: str) -> str:
    return '%s_gpu_%s_%s' % (member, vendor_id, product_id)


def _trait_part(text: str) -> str:
    return re.sub('[^0-9A-Z]+', '_', text.upper()).strip('_')


def memory_trait(memory_mib: int) -> str:
    """81559 MiB -> CUSTOM_GPU_MEMORY_80GB (nearest nominal size)."""
    gib = memory_mib / 1024
    size = min(_MEMORY_SIZES_GIB, key=lambda s: abs(gib - s) / s)
    if abs(gib - size) / size > 0.1:
        size = round(gib)
    return '%sMEMORY_%dGB' % (TRAIT_PREFIX, size)


_STANDARD_CC = frozenset(t for t in os_traits.get_traits()
                         if t.startswith(_CUDA_CC))


def compute_capability_trait(capability: str) -> str:
    """'6.1' -> the os-traits name; '9.0' (not in os-traits) -> custom."""
    major, _, minor = capability.partition('.')
    suffix = 'V%s_%s' % (major, minor or '0')
    if _CUDA_CC + suffix in _STANDARD_CC:
        return _CUDA_CC + suffix
    return _CUSTOM_CUDA_CC + suffix


def _capability_key(text: str) -> tuple[float, ...]:
    try:
        return tuple(int(p) for p in text.split('.'))
    except ValueError:
        return (math.inf,)


def model_traits(cards: Sequence[discovery.GPUCard]) -> set[str]:
    """Traits true of every card of one model."""
    first = cards[0]
    vendor, product = first.vendor_id.upper(), first.product_id.upper()
    traits = {'%sVENDOR_%s' % (TRAIT_PREFIX, vendor),
              '%s%s_%s' % (TRAIT_PREFIX, vendor, product)}
    name = _trait_part(first.name)
    if name:
        traits.add(('%sMODEL_%s' % (TRAIT_PREFIX, name))[:255])
    memory = [c.memory_mib for c in cards if c.memory_mib]
    if memory:
        traits.add(memory_trait(min(memory)))
    capability = [c.compute_capability for c in cards
                  if c.compute_capability and
                  _capability_key(c.compute_capability)[0] != math.inf]
    if capability:
        traits.add(compute_capability_trait(
            min(capability, key=_capability_key)))
    return traits


@dataclasses.dataclass(frozen=True)
class CardPlan:
    """What one card becomes in Placement, for the driver and operator."""

    card: discovery.GPUCard
    exposed: bool
    reason: str = ''            # why not exposed
    mode: str = ''
    provider: str = ''
    units: tuple[tuple[str, int], ...] = ()     # (resource class, amount)
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Units:
    total: int
    unhealthy: int = 0
    max_unit: int = 1


@dataclasses.dataclass(frozen=True)
class ProviderSpec:
    """One GPU model's provider as it should be."""

    name: str
    model: str                  # '10de:2335'
    model_name: str
    inventory: tuple[tuple[str, Units], ...]    # by resource class
    traits: frozenset[str]
    cards: tuple[str, ...]                      # PCI addresses

    @property
    def units(self) -> dict[str, Units]:
        return dict(self.inventory)


def _mig_units(card: discovery.GPUCard) -> tuple[dict[str, int] | None, str]:
    if card.vendor_id != discovery.NVIDIA:
        return None, 'MIG is an NVIDIA feature; give this card another mode'
    if card.mig_enabled is None and not card.nvml_seen:
        return {}, ('MIG slices are known only from NVML on the member\'s '
                    'own host; none here')
    if not card.mig_enabled:
        return {}, ('MIG is not enabled on this card: nvidia-smi -i %s '
                    '-mig 1, then create slices' % card.pci_address)
    if not card.mig_devices:
        return {}, ('MIG is enabled but no slices exist: create them with '
                    'nvidia-smi mig -cgi <profiles> -C')
    units: dict[str, int] = {}
    for mig in card.mig_devices:
        rc = mig_resource_class(mig.profile)
        units[rc] = units.get(rc, 0) + 1
    return units, ''


def _plan(member: str, card: discovery.GPUCard,
          config: options.GpuConfig) -> CardPlan:
    if not config.listed(card):
        if not config.exposes_all():
            return CardPlan(card, False, 'not named in [lxd] gpu_devices')
        if card.vendor_id not in discovery.COMPUTE_VENDORS:
            return CardPlan(card, False, (
                'vendor %s (%s) is not NVIDIA, AMD or Intel: name the card '
                'in [lxd] gpu_devices to expose it'
                % (card.vendor_id, card.vendor or 'unknown')))
    mode = config.mode_of(card)
    notes = []
    if mode.kind == 'mig':
        units, note = _mig_units(card)
        if units is None:
            return CardPlan(card, False, note, mode=str(mode))
        if note:
            notes.append(note)
    else:
        rc = RC_SHARED if mode.kind == 'shared' else RC_WHOLE
        units = {rc: mode.slots}
        if card.mig_enabled:
            notes.append('MIG is enabled: a container gets the whole card '
                         'with all its slices')
    if card.health:
        notes.append('withdrawn (reserved): ' + '; '.join(card.health))
    return CardPlan(card, True, mode=str(mode),
                    provider=provider_name(member, card.vendor_id,
                                           card.product_id),
                    units=tuple(sorted(units.items())), notes=tuple(notes))


def card_plans(member: str, cards: Iterable[discovery.GPUCard],
               config: options.GpuConfig = options.DEFAULT) -> list[CardPlan]:
    """Each card: exposed or not (and why), mode, provider, units."""
    return [_plan(member, card, config) for card in cards]


def gpu_providers(member: str, cards: Iterable[discovery.GPUCard],
                  config: options.GpuConfig = options.DEFAULT,
                  plans: Iterable[CardPlan] | None = None
                  ) -> list[ProviderSpec]:
    """Cards of one member -> [ProviderSpec], one per exposed GPU model.

    Whole cards count one PGPU each, a shared card its slots of
    CUSTOM_SHARED_GPU (a container takes at most one slot of a card, so
    max_unit is the number of shared cards), a MIG card one
    CUSTOM_MIG_<PROFILE> per existing slice. Units of unhealthy cards are
    counted in ``unhealthy``: update_provider_tree reserves them.
    """
    if plans is None:
        plans = card_plans(member, cards, config)
    by_model: dict[str, list[CardPlan]] = {}
    for plan in plans:
        if plan.exposed:
            by_model.setdefault(plan.card.model, []).append(plan)
    specs = []
    for model, group in sorted(by_model.items()):
        totals: dict[str, int] = {}
        sick: dict[str, int] = {}
        shared_cards = 0
        for plan in group:
            for rc, amount in plan.units:
                totals[rc] = totals.get(rc, 0) + amount
                if not plan.card.healthy:
                    sick[rc] = sick.get(rc, 0) + amount
                if rc == RC_SHARED:
                    shared_cards += 1
        inventory = tuple(sorted(
            (rc, Units(total, sick.get(rc, 0),
                       shared_cards if rc == RC_SHARED else total))
            for rc, total in totals.items()))
        cards_of_model = [p.card for p in group]
        traits = model_traits(cards_of_model) | config.traits_of(model)
        if any(not c.healthy for c in cards_of_model):
            traits.add(TRAIT_UNHEALTHY)
        first = cards_of_model[0]
        specs.append(ProviderSpec(
            name=provider_name(member, first.vendor_id, first.product_id),
            model=model, model_name=first.name, inventory=inventory,
            traits=frozenset(traits),
            cards=tuple(c.pci_address for c in cards_of_model)))
    return specs


# -- applying to Nova's ProviderTree -----------------------------------

_said: dict[object, str] = {}


def _say(key: object, message: str, *args: object) -> None:
    """Warn once per state: update_provider_tree runs every minute."""
    text = message % args
    if _said.get(key) != text:
        _said[key] = text
        LOG.warning(text)


def _owned(trait: str) -> bool:
    return trait.startswith(TRAIT_PREFIX) or trait.startswith(_CUDA_CC)


def _usage(allocations: Mapping[str, Any] | None,
           usage: Mapping[str, Mapping[str, int]] | None,
           uuids: Mapping[str, str],
           placement_usage: PlacementUsage | None = None) -> UsedOf:
    """(provider name, rc) -> amount allocated, or None when unknown.

    In this order: ``usage`` ({provider name: {rc: amount}}); the
    ``allocations`` Nova passes (on a reshape only); ``placement_usage``
    (provider UUID -> {rc: amount}, or None when Placement cannot say),
    asked only for a provider that is about to shrink, so an unchanged
    member costs no request. None of them: nothing may shrink.
    """
    if usage is not None:
        return lambda name, rc: usage.get(name, {}).get(rc, 0)
    if allocations is None:
        if placement_usage is None:
            return lambda name, rc: None
        asked: dict[str, Mapping[str, int] | None] = {}

        def used_of(name: str, rc: str) -> int | None:
            uuid = uuids.get(name)
            if uuid is None:
                return None
            if uuid not in asked:
                asked[uuid] = placement_usage(uuid)
            found = asked[uuid]
            return None if found is None else found.get(rc, 0)
        return used_of
    used: dict[tuple[str | None, str], int] = {}
    for consumer in allocations.values():
        for rp_uuid, alloc in (consumer.get('allocations') or {}).items():
            for rc, amount in (alloc.get('resources') or {}).items():
                used[rp_uuid, rc] = used.get((rp_uuid, rc), 0) + amount
    return lambda name, rc: used.get((uuids.get(name), rc), 0)


def _record(total: int, reserved: int, max_unit: int) -> dict[str, Any]:
    return {'total': total, 'reserved': min(reserved, total),
            'min_unit': 1, 'max_unit': max(1, min(max_unit, total)),
            'step_size': 1, 'allocation_ratio': 1.0}


def _inventory(name: str, units: Mapping[str, Units],
               old_inventory: Inventory,
               used_of: UsedOf) -> tuple[Inventory, bool]:
    """-> (inventory dict, whether units were kept for allocations)."""
    inventory: Inventory = {}
    kept = False
    for rc in sorted(set(units) | set(old_inventory)):
        want = units.get(rc) or Units(0, 0, 0)
        old = old_inventory.get(rc) or {}
        old_total = old.get('total', 0)
        total, reserved, max_unit = want.total, want.unhealthy, want.max_unit
        if total < old_total:
            used = used_of(name, rc)
            if used is None or used > total:
                kept = True
                total = old_total
                reserved = want.unhealthy + old_total - want.total
                max_unit = max(max_unit, old.get('max_unit', 1))
                _say((name, rc),
                     '%s: %s would shrink from %d to %d, but %s; keeping %d '
                     'with %d reserved until the cards come back or the '
                     'allocations go', name, rc, old_total, want.total,
                     'the allocations are unknown' if used is None else
                     '%d are allocated' % used, total, reserved)
            else:
                _said.pop((name, rc), None)
        else:
            _said.pop((name, rc), None)
        if total > 0:
            inventory[rc] = _record(total, reserved, max_unit)
    return inventory, kept


def _gpu_children(provider_tree: Any, nodename: str) -> dict[str, Any]:
    prefix = nodename + '_gpu_'
    uuids = provider_tree.get_provider_uuids(nodename)
    found = {}
    for uuid in uuids[1:]:
        data = provider_tree.data(uuid)
        if data.parent_uuid == uuids[0] and data.name.startswith(prefix):
            found[data.name] = data
    return found


def update_provider_tree(
        provider_tree: Any, nodename: str, specs: Iterable[ProviderSpec],
        allocations: Mapping[str, Any] | None = None,
        usage: Mapping[str, Mapping[str, int]] | None = None,
        placement_usage: PlacementUsage | None = None) -> None:
    """Make the GPU child providers of ``nodename`` match ``specs``.

    Adds a provider per spec, sets its inventory and traits. Never lowers a
    total below what may be allocated: when usage is unknown (see _usage)
    or above the new total, the old total stays, the missing units are
    reserved and the provider gets CUSTOM_GPU_MISSING; it shrinks on a
    later call that finds the allocations gone. A provider is removed only
    when known unused.
    Traits not prefixed CUSTOM_GPU_ or HW_GPU_CUDA_COMPUTE_CAPABILITY_ (set
    by an operator or another service) are left alone; so are other
    children of the node.
    """
    existing = _gpu_children(provider_tree, nodename)
    used_of = _usage(allocations, usage,
                     {n: d.uuid for n, d in existing.items()},
                     placement_usage)
    wanted = set()
    for spec in specs:
        wanted.add(spec.name)
        old = existing.get(spec.name)
        inventory, kept = _inventory(spec.name, spec.units,
                                     old.inventory if old else {}, used_of)
        if old is None:
            if not inventory:
                continue
            provider_tree.new_child(spec.name, nodename)
        provider_tree.update_inventory(spec.name, inventory)
        traits = set(spec.traits)
        if old is not None:
            traits |= {t for t in old.traits if not _owned(t)}
        if kept:
            traits.add(TRAIT_MISSING)
        provider_tree.update_traits(spec.name, traits)
    for name, old in existing.items():
        if name in wanted:
            continue
        inventory, kept = _inventory(name, {}, old.inventory, used_of)
        if not inventory:
            LOG.info('%s: no card of this model is left; removing the '
                     'provider', name)
            provider_tree.remove(name)
            continue
        provider_tree.update_inventory(name, inventory)
        provider_tree.update_traits(
            name, (set(old.traits) - {TRAIT_UNHEALTHY}) | {TRAIT_MISSING})


def is_gpu_class(resource_class: str) -> bool:
    """True for the resource classes of this driver's GPU providers."""
    return resource_class in (RC_WHOLE, RC_SHARED) or (
        resource_class.startswith(MIG_RC_PREFIX))
