"""Flavor extra specs of the ``lxd:`` namespace: validation and parsing.

Nova's API loads ``register()`` through the ``nova.api.extra_spec_validators``
entry point. From microversion 2.86 on it then refuses, with HTTP 400, a
``lxd:`` key it does not know and a value these validators do not accept, so
that a typo (``lxd:privilegd``, ``lxd:privileged=maybe``) fails when the
operator sets it, not silently when a server boots.

``lxd_specs()`` is the one place the driver reads these keys from. It
applies the same rules, because flavors created before the validators were
installed, or through an older microversion, can still hold bad values.
"""

from collections.abc import Mapping
import dataclasses
import re
from typing import Any

from nova.api.validation.extra_specs import base
from nova import exception
from oslo_utils import strutils

NAMESPACE = 'lxd'

# What libnvidia-container (LXD's nvidia.driver.capabilities, i.e.
# NVIDIA_DRIVER_CAPABILITIES) knows; anything else stops the container.
NVIDIA_CAPABILITIES = (
    'compute', 'utility', 'video', 'graphics', 'display', 'compat32')
_CAPABILITY = '|'.join(NVIDIA_CAPABILITIES)
NVIDIA_CAPABILITIES_PATTERN = rf'all|(?:{_CAPABILITY})(?:,(?:{_CAPABILITY}))*'

# One CUDA version constraint: an optional "cuda" (the libnvidia-container
# spelling), an optional comparison, a version of one to three numbers.
NVIDIA_REQUIRE_CUDA_PATTERN = (
    r'(?:(?:cuda)?(?P<op>>=|<=|!=|=|<|>))?(?P<version>\d+(?:\.\d+){0,2})')

_BOOL_HINT = ('expected a boolean: true/false, yes/no, on/off, y/n, t/f '
              'or 1/0')


@dataclasses.dataclass
class _Validator(base.ExtraSpecValidator):
    """Nova's validator, with refusals that name the key and say what fits.

    Nova's own messages name only the value ("'maybe' is not a valid
    boolean-like value"); an operator setting several keys at once needs to
    know which one is wrong and what to write instead.
    """

    expected: str = ''

    def validate(self, name: str, value: str) -> None:
        try:
            super().validate(name, value)
        except exception.ValidationError:
            raise exception.ValidationError(
                f"Validation failed; extra spec '{name}' cannot be "
                f"'{value}': {self.expected}.")


def _bool(key: str, description: str) -> _Validator:
    return _Validator(
        name=f'{NAMESPACE}:{key}',
        description=description,
        value={'type': bool, 'description': description},
        expected=_BOOL_HINT,
    )


VALIDATORS = [
    _bool(
        'privileged',
        'Run the container privileged: root in the container is root on '
        'the host, so a break-out owns the host. Only for trusted images '
        'and users. Honoured only when the operator also sets '
        '[lxd] allow_privileged = True on the compute service (and, when '
        '[lxd] privileged_projects is set, only for those projects); the '
        'default is an unprivileged container. Only supported by the LXD '
        'virt driver.'),
    _bool(
        'nesting',
        'Allow containers (LXD, Docker, ...) inside the container (LXD '
        'security.nesting). This loosens the confinement of the container. '
        'Honoured only when the operator also sets '
        '[lxd] allow_nesting = True on the compute service (and, when '
        '[lxd] nesting_projects is set, only for those projects). Only '
        'supported by the LXD virt driver.'),
    _bool(
        'isolated_idmap',
        'Give the container its own range of host uids and gids (LXD '
        'security.idmap.isolated) instead of the range all containers '
        'share, so that a process escaping one container cannot touch the '
        'files or processes of another. Each such container uses 65536 of '
        'the host\'s subordinate ids. Every container gets one anyway '
        'while the operator keeps [lxd] isolated_idmap = True (the '
        'default). Only supported by the LXD virt driver.'),
    _Validator(
        name=f'{NAMESPACE}:max_processes',
        description=(
            'The most processes and threads the container may run at once '
            '(LXD limits.processes), so that a fork bomb stops at its '
            'container. Unset: the operator\'s [lxd] max_processes. Only '
            'supported by the LXD virt driver.'),
        value={'type': int, 'min': 1,
               'description': 'A number of processes.'},
        expected='expected a whole number of processes, 1 or more',
    ),
    _bool(
        'memory_swap',
        'Let the container\'s memory be swapped out to the host\'s swap '
        '(LXD limits.memory.swap). Off when unset: a container\'s memory '
        'stays in RAM and does not use the swap the host\'s other '
        'containers share. Only supported by the LXD virt driver.'),
    _bool(
        'nvidia_runtime',
        'Inject the host\'s NVIDIA user-space driver libraries and tools '
        '(libcuda, nvidia-smi, ...) into the container, so that the image '
        'needs no NVIDIA driver of its own and always matches the host '
        'kernel module (LXD nvidia.runtime, or CDI where the LXD server '
        'supports it). NVIDIA\'s hook then runs as root of the host over '
        'the container\'s files: honoured only when the operator also sets '
        '[lxd] allow_nvidia_runtime = True. Only useful with an NVIDIA GPU '
        'passed to the container. Only supported by the LXD virt driver.'),
    _Validator(
        name=f'{NAMESPACE}:nvidia_driver_capabilities',
        description=(
            'Which parts of the NVIDIA driver lxd:nvidia_runtime injects '
            '(LXD nvidia.driver.capabilities): a comma-separated list of '
            + ', '.join(NVIDIA_CAPABILITIES) + ', or "all". LXD\'s '
            'default, when unset, is "compute,utility" (CUDA and '
            'nvidia-smi). Only supported by the LXD virt driver.'),
        value={
            'type': str,
            'description': 'NVIDIA driver capabilities.',
            'pattern': NVIDIA_CAPABILITIES_PATTERN,
        },
        expected=(
            'expected "all" or a comma-separated list (no spaces) of '
            + ', '.join(NVIDIA_CAPABILITIES)),
    ),
    _Validator(
        name=f'{NAMESPACE}:nvidia_require_cuda',
        description=(
            'The CUDA version the container needs from the host\'s NVIDIA '
            'driver (LXD nvidia.require.cuda). The container does not start '
            'on a host whose driver does not satisfy it. A comparison and '
            'a version, e.g. ">=12.0" or "<13"; a bare version such as '
            '"12.2" means at least that version. The libnvidia-container '
            'spelling "cuda>=12.0" is accepted too. Only supported by the '
            'LXD virt driver.'),
        value={
            'type': str,
            'description': 'A CUDA version constraint.',
            'pattern': NVIDIA_REQUIRE_CUDA_PATTERN,
        },
        expected=(
            'expected a version with an optional comparison (>=, >, <=, <, '
            '=, !=), e.g. ">=12.0" or "12.2"'),
    ),
]

_BY_NAME = {v.name: v for v in VALIDATORS}


def register() -> list[_Validator]:
    """Nova's entry point: the validators of the ``lxd:`` namespace."""
    return VALIDATORS


@dataclasses.dataclass(frozen=True)
class LXDSpecs:
    """What a flavor asks of its LXD container; all off when unset.

    ``nvidia_require_cuda`` is already in the form LXD passes on to
    libnvidia-container (``cuda>=12.0``), whatever spelling the flavor used.
    """

    privileged: bool = False
    nesting: bool = False
    isolated_idmap: bool = False
    max_processes: int | None = None
    memory_swap: bool = False
    nvidia_runtime: bool = False
    nvidia_driver_capabilities: str | None = None
    nvidia_require_cuda: str | None = None


def _cuda_requirement(value: str) -> str:
    # LXD copies nvidia.require.cuda verbatim into NVIDIA_REQUIRE_CUDA;
    # libnvidia-container refuses a constraint without the "cuda" name
    # ("invalid expression") and the container would not start.
    match = re.fullmatch(NVIDIA_REQUIRE_CUDA_PATTERN, value)
    if match is None:       # the validator refused it already
        raise exception.ValidationError(
            f"Validation failed; '{value}' is no CUDA version constraint.")
    return f"cuda{match.group('op') or '>='}{match.group('version')}"


def lxd_specs(extra_specs: Mapping[str, Any] | None) -> LXDSpecs:
    """Read the ``lxd:`` keys of a flavor's extra specs.

    :param extra_specs: the flavor's extra specs (other namespaces are
        ignored).
    :returns: LXDSpecs.
    :raises: nova.exception.ValidationError naming the key and its value
        when the API's validators would refuse it, unknown ``lxd:`` keys
        included: a misspelt security setting must not be ignored silently.
    """
    fields: dict[str, Any] = {}
    for name, value in (extra_specs or {}).items():
        namespace, _, key = name.partition(':')
        if namespace != NAMESPACE:
            continue
        value = str(value)
        validator = _BY_NAME.get(name)
        if validator is None:
            raise exception.ValidationError(
                f"Validation failed; extra spec '{name}' (value '{value}') "
                f"is not a valid extra spec; known: "
                f"{', '.join(sorted(_BY_NAME))}.")
        validator.validate(name, value)
        if validator.value['type'] == bool:
            fields[key] = strutils.bool_from_string(value, strict=True)
        elif validator.value['type'] == int:
            fields[key] = int(value)
        elif key == 'nvidia_require_cuda':
            fields[key] = _cuda_requirement(value)
        else:
            fields[key] = value
    return LXDSpecs(**fields)
