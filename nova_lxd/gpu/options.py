"""The operator's GPU options (``[lxd] gpu_*``) and their parser (pure).

They live in the ``[lxd]`` group, next to the options that say which
members this service manages, so that one section configures the driver
and ``conf.list_opts`` keeps one group. The parser turns them into a
GpuConfig and refuses, naming the option, what it does not understand:
a typo must not silently put cards in the wrong mode.
"""

from collections.abc import Iterable
from collections.abc import Iterator
import dataclasses
import re
from typing import Any

import os_traits
from oslo_config import cfg

from nova_lxd.gpu import discovery

GROUP = 'lxd'
ALL = '*'

gpu_opts = [
    cfg.ListOpt(
        'gpu_devices',
        default=[ALL],
        help='Which GPUs of each member are reported to Placement and can '
             'be given to containers. Entries: "*" (every card of NVIDIA, '
             'AMD or Intel a container can use), a PCI address '
             '(0000:41:00.0) or a model as vendor:product id (10de:2335, '
             'see "lspci -nn"). A card of another vendor is exposed only '
             'when named. Cards LXD cannot pass to a container (display-'
             'only BMC cards, emulated VM displays, cards bound to '
             'vfio-pci) are never exposed; "nova-lxd-gpus" shows why. '
             'Empty: no GPU is reported. Example: '
             'gpu_devices = 10de:2335,0000:c1:00.0'),
    cfg.ListOpt(
        'gpu_modes',
        default=[],
        help='How cards are offered, as selector=mode entries. Selector: a '
             'PCI address, a vendor:product model, or "*" (the most '
             'specific entry wins, whatever the order). Modes: "whole" '
             '(default; resource class PGPU, one unit per card), '
             '"shared:<slots>" (time-sliced; resource class '
             'CUSTOM_SHARED_GPU, <slots> units per card, at most one of '
             'them per container), "mig" (NVIDIA MIG; one resource class '
             'per slice profile, e.g. CUSTOM_MIG_1G_10GB, one unit per '
             'slice: make the slices with nvidia-smi first). Example: '
             'gpu_modes = 10de:2335=mig,0000:41:00.0=shared:4'),
    cfg.ListOpt(
        'gpu_traits',
        default=[],
        help='Extra traits for the GPU providers, as selector=TRAIT entries, '
             'several traits joined with "+". Selector: a vendor:product '
             'model or "*"; traits are per model because one provider holds '
             'all cards of a model. A trait is a custom one (its name starts '
             'with CUSTOM) or a standard os-traits name. The driver removes '
             'traits whose names start with CUSTOM_GPU when they leave this '
             'option; others, once set, stay until '
             'removed with "openstack resource provider trait set". '
             'Example: gpu_traits = 10de:2335=CUSTOM_GPU_NVLINK+CUSTOM_TEAM_A,'
             '*=CUSTOM_RACK_7'),
]

_MODEL = re.compile(r'^[0-9a-f]{4}:[0-9a-f]{4}$')
_TRAIT = re.compile(r'^[A-Z0-9_]{1,255}$')


class GpuConfigError(ValueError):
    """An option value the driver does not understand; names the option."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__('[%s] %s: %s' % (GROUP, option, message))


@dataclasses.dataclass(frozen=True)
class Mode:
    kind: str = 'whole'     # 'whole' | 'shared' | 'mig'
    slots: int = 1

    def __str__(self) -> str:
        return 'shared:%d' % self.slots if self.kind == 'shared' else self.kind


WHOLE = Mode()


def _selector(option: str, text: str, allow_pci: bool = True) -> str:
    """'*', '10de:2335' or a PCI address (normalised)."""
    text = text.strip().lower()
    if text == ALL or _MODEL.match(text):
        return text
    if allow_pci and '.' in text:
        try:
            return discovery.normalize_pci(text)
        except discovery.GPUDataError:
            pass
    if not allow_pci and '.' in text:
        raise GpuConfigError(option, '%r: traits are per model (one provider '
                                     'holds all cards of a model); use '
                                     'vendor:product or "*"' % text)
    wanted = ('"*", a vendor:product model like 10de:2335 or a PCI address '
              'like 0000:41:00.0' if allow_pci else
              '"*" or a vendor:product model like 10de:2335')
    raise GpuConfigError(option, '%r is not %s' % (text, wanted))


def _pairs(option: str,
           entries: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    for entry in entries:
        if not entry.strip():
            continue
        key, sep, value = entry.partition('=')
        if not sep or not value.strip():
            raise GpuConfigError(option, '%r is not selector=value' % entry)
        yield entry, key, value.strip()


def _mode(option: str, entry: str, text: str) -> Mode:
    kind, _, slots = text.lower().partition(':')
    if kind in ('whole', 'mig') and not slots:
        return Mode(kind)
    if kind == 'shared':
        if not slots.isdigit() or not 2 <= int(slots) <= 1024:
            raise GpuConfigError(
                option, '%r: shared needs a slot count from 2 to 1024, '
                        'like shared:4 (one slot is "whole")' % entry)
        return Mode('shared', int(slots))
    raise GpuConfigError(option, '%r: mode must be whole, shared:<slots> '
                                 'or mig' % entry)


def _traits(option: str, entry: str, text: str) -> frozenset[str]:
    traits = set()
    for trait in text.split('+'):
        trait = trait.strip()
        if not _TRAIT.match(trait):
            raise GpuConfigError(option, '%r: %r is not a trait name '
                                         '(A-Z, 0-9, _)' % (entry, trait))
        if not os_traits.is_custom(trait) and trait not in _standard():
            raise GpuConfigError(
                option, '%r: %s is neither CUSTOM_ nor a standard trait of '
                        'os-traits' % (entry, trait))
        traits.add(trait)
    return frozenset(traits)


_STANDARD: list[frozenset[str]] = []


def _standard() -> frozenset[str]:
    if not _STANDARD:
        _STANDARD.append(frozenset(os_traits.get_traits()))
    return _STANDARD[0]


@dataclasses.dataclass(frozen=True)
class GpuConfig:
    """What the operator asked, ready for the providers."""

    devices: frozenset[str] = frozenset([ALL])
    modes: tuple[tuple[str, Mode], ...] = ()
    traits: tuple[tuple[str, frozenset[str]], ...] = ()

    def listed(self, card: discovery.GPUCard) -> bool:
        """Whether the operator named the card (its address or model)."""
        return bool({card.pci_address, card.model} & self.devices)

    def exposes_all(self) -> bool:
        return ALL in self.devices

    def mode_of(self, card: discovery.GPUCard) -> Mode:
        modes = dict(self.modes)
        for key in (card.pci_address, card.model, ALL):
            if key in modes:
                return modes[key]
        return WHOLE

    def traits_of(self, model: str) -> frozenset[str]:
        found: frozenset[str] = frozenset()
        for key, traits in self.traits:
            if key in (model, ALL):
                found |= traits
        return found


def parse(devices: Iterable[str] = (ALL,), modes: Iterable[str] = (),
          traits: Iterable[str] = ()) -> GpuConfig:
    """Option values (lists of strings) -> GpuConfig, or GpuConfigError."""
    selected = frozenset(_selector('gpu_devices', d) for d in devices
                         if d.strip())
    parsed_modes: dict[str, Mode] = {}
    for entry, key, value in _pairs('gpu_modes', modes):
        key = _selector('gpu_modes', key)
        if key in parsed_modes:
            raise GpuConfigError('gpu_modes', '%s is given twice' % key)
        parsed_modes[key] = _mode('gpu_modes', entry, value)
    parsed_traits: dict[str, frozenset[str]] = {}
    for entry, key, value in _pairs('gpu_traits', traits):
        key = _selector('gpu_traits', key, allow_pci=False)
        parsed_traits[key] = (parsed_traits.get(key, frozenset()) |
                              _traits('gpu_traits', entry, value))
    return GpuConfig(devices=selected,
                     modes=tuple(sorted(parsed_modes.items())),
                     traits=tuple(sorted(parsed_traits.items())))


def from_conf(conf: Any) -> GpuConfig:
    """GpuConfig from nova.conf (``conf.lxd``), or GpuConfigError."""
    group = getattr(conf, GROUP)
    return parse(group.gpu_devices, group.gpu_modes, group.gpu_traits)


DEFAULT = GpuConfig()
