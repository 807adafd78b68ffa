"""LXD resources (+ NVML facts) -> GPU card records (pure).

LXD's ``GET /1.0/resources`` lists every display device of a member; only
some can be handed to a container. Cards that cannot are kept with the
reason, so that the operator sees why a card is not in Placement. LXD
knows nothing of GPU memory, MIG or health: those come from NVML on the
member's host and are merged by PCI address (``enrich``).
"""

from collections.abc import Iterable
from collections.abc import Mapping
import dataclasses
import json
import re
from typing import Any

NVIDIA, AMD, INTEL = '10de', '1002', '8086'
# Vendors whose cards are exposed when the operator lists none.
COMPUTE_VENDORS = {NVIDIA: 'NVIDIA', AMD: 'AMD', INTEL: 'Intel'}
# Emulated display devices of virtual machines (virtio, QEMU std VGA, QXL,
# VMware SVGA, VirtualBox): nothing behind them to compute on.
_VIRTUAL_VENDORS = {'1af4', '1234', '1b36', '15ad', '80ee'}
_VIRTUAL_DRIVERS = {'virtio_gpu', 'virtio-pci', 'bochs', 'bochs-drm',
                    'qxl', 'vmwgfx', 'cirrus', 'vboxvideo', 'simpledrm'}
# Bound to these, the card belongs to a VM or to nobody, not to containers.
_NOT_FOR_CONTAINERS = {'vfio-pci': 'bound to vfio-pci (kept for VMs)',
                       'pci-stub': 'bound to pci-stub (kept off the host)'}

_PCI = re.compile(r'^(?:([0-9a-f]{4,8}):)?([0-9a-f]{2}):([0-9a-f]{2})'
                  r'\.([0-7])$')
_ID = re.compile(r'^[0-9a-f]{4}$')


class GPUDataError(ValueError):
    """The GPU data is not what LXD or NVML documents; names the field."""


def normalize_pci(address: object) -> str:
    """'00000000:01:00.0' (NVML) or '01:00.0' -> '0000:01:00.0' (LXD).

    NVML and nvidia-container-cli write the domain with 8 digits, LXD and
    sysfs with 4; records are keyed by this one spelling.
    """
    if not isinstance(address, str):
        raise GPUDataError('PCI address %r is not a string' % (address,))
    found = _PCI.match(address.strip().lower())
    if not found:
        raise GPUDataError('%r is not a PCI address (like 0000:41:00.0)'
                           % address)
    domain, bus, device, function = found.groups()
    return '%04x:%s:%s.%s' % (int(domain or '0', 16), bus, device, function)


@dataclasses.dataclass(frozen=True)
class MigDevice:
    """One MIG slice the operator made: what a container is given."""

    uuid: str
    profile: str            # '1g.10gb', '1g.18gb+me'
    parent_pci: str         # normalised PCI address of its card
    memory_mib: int | None = None


@dataclasses.dataclass(frozen=True)
class NvmlFacts:
    """What NVML knows of one card and LXD does not."""

    pci_address: str
    uuid: str | None = None
    name: str | None = None
    memory_mib: int | None = None
    compute_capability: str | None = None   # '8.0'
    mig_enabled: bool | None = None          # None: card has no MIG
    mig_devices: tuple[MigDevice, ...] = ()
    # Why the card must not be given out; empty: healthy.
    health: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class GPUCard:
    """A card a container could be given (one PCI function)."""

    pci_address: str
    vendor_id: str
    product_id: str
    vendor: str = ''
    product: str = ''
    numa_node: int | None = None
    driver: str = ''
    driver_version: str = ''
    drm_id: int | None = None
    card_name: str | None = None       # card1
    render_name: str | None = None     # renderD128
    sriov_vfs: int = 0                 # current virtual functions
    sriov_max_vfs: int = 0
    vf_addresses: tuple[str, ...] = ()
    mdev_types: tuple[str, ...] = ()
    nvidia_uuid: str | None = None
    nvidia_model: str | None = None
    nvidia_brand: str | None = None
    nvidia_card_name: str | None = None    # nvidia0 (/dev/nvidia0)
    cuda_version: str | None = None
    nvrm_version: str | None = None
    # Compute capability: LXD's nvidia.architecture, or NVML's.
    compute_capability: str | None = None
    # From NVML (enrich); None where unknown.
    memory_mib: int | None = None
    mig_enabled: bool | None = None
    mig_devices: tuple[MigDevice, ...] = ()
    nvml_seen: bool = False
    health: tuple[str, ...] = ()       # reasons; empty: healthy

    @property
    def model(self) -> str:
        """'10de:2335': cards of one model share one provider."""
        return '%s:%s' % (self.vendor_id, self.product_id)

    @property
    def name(self) -> str:
        """The model's readable name, stable across driver versions.

        The bracketed part of the PCI product name ('TU102 [GeForce RTX
        2080 Ti]') first: NVIDIA's own model string gained an 'NVIDIA '
        prefix with newer drivers.
        """
        found = re.search(r'\[([^\]]+)\]', self.product or '')
        if found:
            return found.group(1).strip()
        if self.product:
            return self.product.strip()
        if self.nvidia_model:
            return re.sub(r'^NVIDIA\s+', '', self.nvidia_model.strip())
        return ''

    @property
    def healthy(self) -> bool:
        return not self.health


@dataclasses.dataclass(frozen=True)
class SkippedCard:
    """A display device that cannot be passed to a container, and why."""

    pci_address: str | None
    vendor_id: str | None
    product_id: str | None
    description: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Discovery:
    cards: tuple[GPUCard, ...]
    skipped: tuple[SkippedCard, ...]


def _gpu_section(resources: object) -> list[Any]:
    if isinstance(resources, (str, bytes)):
        try:
            resources = json.loads(resources)
        except ValueError as e:
            raise GPUDataError('resources: not JSON (%s)' % e)
    if not isinstance(resources, dict):
        raise GPUDataError('resources: expected a JSON object, got %s'
                           % type(resources).__name__)
    # The whole GET /1.0/resources answer, or only its gpu object.
    gpu = resources if 'cards' in resources else resources.get('gpu')
    if gpu is None:
        return []
    if not isinstance(gpu, dict):
        raise GPUDataError('gpu: expected an object, got %s'
                           % type(gpu).__name__)
    cards = gpu.get('cards')
    if cards is None:
        return []
    if not isinstance(cards, list):
        raise GPUDataError('gpu.cards: expected a list, got %s'
                           % type(cards).__name__)
    return cards


class _Malformed(Exception):
    pass


def _get(obj: Mapping[str, Any], key: str, kind: type, where: str,
         default: Any = None) -> Any:
    value = obj.get(key)
    if value is None:
        return default
    wrong_kind = not isinstance(value, kind)
    if wrong_kind or (kind is int and isinstance(value, bool)):
        raise _Malformed('%s.%s is %r, expected %s'
                         % (where, key, value, _KIND_NAMES[kind]))
    return value


_KIND_NAMES = {str: 'a string', int: 'an integer', dict: 'an object',
               list: 'a list'}


def _hex_id(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = _get(raw, key, str, where)
    if value is None:
        return None
    value = value.lower()
    if value.startswith('0x'):
        value = value[2:]
    if not _ID.match(value):
        raise _Malformed('%s.%s is %r, expected 4 hex digits'
                         % (where, key, raw[key]))
    return value


def _describe(raw: object) -> str:
    if not isinstance(raw, dict):
        return repr(raw)[:60]
    return ' '.join(str(raw.get(k)) for k in ('vendor', 'product')
                    if raw.get(k)) or str(raw.get('driver') or 'unknown')


def _unpassable(card: GPUCard, has_nvidia: bool) -> str | None:
    """Why a well-formed card cannot go to a container, or None."""
    if card.vendor_id in _VIRTUAL_VENDORS or card.driver in _VIRTUAL_DRIVERS:
        return ('emulated display device of a virtual machine (%s), not a '
                'physical GPU' % (card.driver or card.vendor_id))
    if not card.driver:
        return 'no kernel driver bound to it'
    if card.driver in _NOT_FOR_CONTAINERS:
        return _NOT_FOR_CONTAINERS[card.driver]
    if not card.render_name and not has_nvidia:
        return ('no render node: a display-only card (like a BMC\'s VGA), '
                'nothing to compute on')
    return None


def _card(raw: object, where: str) -> tuple[GPUCard | None, str | None]:
    """One LXD card -> (GPUCard, None) or (None, reason)."""
    if not isinstance(raw, dict):
        raise _Malformed('%s is %r, expected an object' % (where, raw))
    address = _get(raw, 'pci_address', str, where)
    vendor_id = _hex_id(raw, 'vendor_id', where)
    product_id = _hex_id(raw, 'product_id', where)
    if not address:
        return None, 'no PCI address (USB or platform framebuffer)'
    try:
        address = normalize_pci(address)
    except GPUDataError as e:
        raise _Malformed('%s.pci_address: %s' % (where, e))
    if not vendor_id or not product_id:
        return None, 'no PCI vendor/product id'
    drm = _get(raw, 'drm', dict, where, {})
    sriov = _get(raw, 'sriov', dict, where, {})
    nvidia = _get(raw, 'nvidia', dict, where)
    nv = nvidia or {}
    vfs = _get(sriov, 'vfs', list, where + '.sriov', [])
    vf_addresses = []
    for i, vf in enumerate(vfs):
        vf_where = '%s.sriov.vfs[%d]' % (where, i)
        if not isinstance(vf, dict):
            raise _Malformed('%s is %r, expected an object' % (vf_where, vf))
        vf_address = _get(vf, 'pci_address', str, vf_where)
        if vf_address:
            try:
                vf_addresses.append(normalize_pci(vf_address))
            except GPUDataError as e:
                raise _Malformed('%s.pci_address: %s' % (vf_where, e))
    mdev = _get(raw, 'mdev', dict, where, {})
    nv_where = where + '.nvidia'
    card = GPUCard(
        pci_address=address, vendor_id=vendor_id, product_id=product_id,
        vendor=_get(raw, 'vendor', str, where, ''),
        product=_get(raw, 'product', str, where, ''),
        numa_node=_get(raw, 'numa_node', int, where),
        driver=_get(raw, 'driver', str, where, ''),
        driver_version=_get(raw, 'driver_version', str, where, ''),
        drm_id=_get(drm, 'id', int, where + '.drm'),
        card_name=_get(drm, 'card_name', str, where + '.drm'),
        render_name=_get(drm, 'render_name', str, where + '.drm'),
        sriov_vfs=_get(sriov, 'current_vfs', int, where + '.sriov', 0),
        sriov_max_vfs=_get(sriov, 'maximum_vfs', int, where + '.sriov', 0),
        vf_addresses=tuple(vf_addresses),
        mdev_types=tuple(sorted(mdev)),
        nvidia_uuid=_get(nv, 'uuid', str, nv_where),
        nvidia_model=_get(nv, 'model', str, nv_where),
        nvidia_brand=_get(nv, 'brand', str, nv_where),
        nvidia_card_name=_get(nv, 'card_name', str, nv_where),
        cuda_version=_get(nv, 'cuda_version', str, nv_where),
        nvrm_version=_get(nv, 'nvrm_version', str, nv_where),
        compute_capability=_get(nv, 'architecture', str, nv_where) or None,
    )
    reason = _unpassable(card, nvidia is not None)
    return (None, reason) if reason else (card, None)


def discover(resources: object) -> Discovery:
    """LXD resources -> Discovery(cards, skipped).

    ``resources``: the ``GET /1.0/resources`` answer or its ``gpu`` object
    (dict or JSON text). A malformed card is skipped with the field named,
    so one odd card does not hide the others; a malformed section raises
    GPUDataError.
    """
    cards: list[GPUCard] = []
    skipped: list[SkippedCard] = []
    seen: set[str] = set()
    for i, raw in enumerate(_gpu_section(resources)):
        where = 'gpu.cards[%d]' % i
        try:
            card, reason = _card(raw, where)
        except _Malformed as e:
            card, reason = None, 'malformed LXD data: %s' % e
        if card is not None and card.pci_address in seen:
            card, reason = None, 'listed twice by LXD'
        if card is None:
            get = raw.get if isinstance(raw, dict) else (lambda k: None)
            skipped.append(SkippedCard(
                pci_address=_text_or_none(get('pci_address')),
                vendor_id=_text_or_none(get('vendor_id')),
                product_id=_text_or_none(get('product_id')),
                description=_describe(raw), reason=reason or 'unknown'))
            continue
        seen.add(card.pci_address)
        cards.append(card)
    return Discovery(tuple(cards), tuple(skipped))


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def cards(resources: object) -> list[GPUCard]:
    """The cards of a member a container could be given."""
    return list(discover(resources).cards)


def enrich(cards: Iterable[GPUCard],
           nvml_facts: Mapping[str, NvmlFacts] | None) -> list[GPUCard]:
    """Cards + NVML facts (normalised PCI address -> NvmlFacts).

    ``nvml_facts`` None: NVML is not there (not an NVIDIA host, or facts of
    another member's host): cards are returned as LXD sees them. An NVIDIA
    card that NVML does not list while NVML works is marked unhealthy: it
    fell off the bus or was excluded.
    """
    if nvml_facts is None:
        return list(cards)
    out = []
    for card in cards:
        facts = nvml_facts.get(card.pci_address)
        if facts is None:
            if card.vendor_id == NVIDIA and card.driver == 'nvidia':
                card = dataclasses.replace(
                    card, health=card.health + ('not seen by NVML',))
            out.append(card)
            continue
        out.append(dataclasses.replace(
            card,
            nvml_seen=True,
            nvidia_uuid=card.nvidia_uuid or facts.uuid,
            nvidia_model=card.nvidia_model or facts.name,
            memory_mib=facts.memory_mib,
            compute_capability=(facts.compute_capability or
                                card.compute_capability),
            mig_enabled=facts.mig_enabled,
            mig_devices=tuple(facts.mig_devices),
            health=card.health + tuple(facts.health)))
    return out
