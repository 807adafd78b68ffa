"""NVML facts of this host's NVIDIA cards: memory, MIG slices, health.

LXD reports none of these. ``collect()`` is the only place that loads
NVML; ``read_facts(lib)`` does the reading through whatever module object
it is given (pynvml, or a fake in tests). NVML sees only the host it runs
on: the facts belong to the member whose host runs nova-compute.
"""

import re

from oslo_log import log as logging

from nova_lxd.gpu import discovery

LOG = logging.getLogger(__name__)

# XIDs after which NVIDIA's XID catalogue says the GPU needs a reset (or a
# node drain); application faults (13, 31, 43, 94 ...) do not count.
CRITICAL_XIDS = {
    48: 'double-bit ECC error',
    62: 'internal micro-controller halt',
    64: 'ECC page retirement or row remapping failure',
    74: 'NVLink error',
    79: 'fallen off the bus',
    95: 'uncontained ECC error',
    119: 'GSP RPC timeout',
    120: 'GSP error',
}

# NVML's constants (nvml.h), for module objects that lack them.
_NOT_SUPPORTED, _NOT_FOUND, _TIMEOUT = 3, 6, 10
_DRIVER_NOT_LOADED, _LIBRARY_NOT_FOUND = 9, 12
_GPU_IS_LOST, _RESET_REQUIRED = 15, 16
_UNCORRECTED, _VOLATILE = 1, 0
_MIG_ENABLE, _FEATURE_ENABLED = 1, 1
_XID_EVENT = 0x8

_MIG_NAME = re.compile(r'\bMIG\s+(\d+g\.\d+gb(?:\+\w+)*)', re.IGNORECASE)


def _const(lib, name, default):
    return getattr(lib, name, default)


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _code(error):
    return getattr(error, 'value', None)


class _Card:
    """Calls on one card; a lost card becomes a health reason."""

    def __init__(self, lib, handle):
        self.lib, self.handle, self.health = lib, handle, []

    def ask(self, call, *args):
        try:
            return getattr(self.lib, call)(self.handle, *args)
        except self.lib.NVMLError as e:
            code = _code(e)
            if code == _const(self.lib, 'NVML_ERROR_GPU_IS_LOST',
                              _GPU_IS_LOST):
                self._sick('lost: NVML says the GPU is lost')
            elif code == _const(self.lib, 'NVML_ERROR_RESET_REQUIRED',
                                _RESET_REQUIRED):
                self._sick('needs a reset (NVML)')
            elif code not in (_NOT_SUPPORTED, _NOT_FOUND):
                LOG.debug('NVML %s: %s', call, e)
            return None

    def _sick(self, reason):
        if reason not in self.health:
            self.health.append(reason)


def _mig_profile(lib, mig_handle, name):
    found = _MIG_NAME.search(name or '')
    if found:
        return found.group(1).lower()
    # Older drivers name the slice like its parent: build '1g.10gb'.
    try:
        attrs = lib.nvmlDeviceGetAttributes(mig_handle)
        return '%dg.%dgb' % (attrs.gpuInstanceSliceCount,
                             round(attrs.memorySizeMB / 1024))
    except (lib.NVMLError, AttributeError):
        return None


def _mig_devices(lib, card, pci):
    count = card.ask('nvmlDeviceGetMaxMigDeviceCount') or 0
    slices = []
    for index in range(count):
        mig = card.ask('nvmlDeviceGetMigDeviceHandleByIndex', index)
        if mig is None:
            continue            # an empty slot: NVML_ERROR_NOT_FOUND
        sub = _Card(lib, mig)
        uuid = _text(sub.ask('nvmlDeviceGetUUID'))
        profile = _mig_profile(lib, mig, _text(sub.ask('nvmlDeviceGetName')))
        memory = sub.ask('nvmlDeviceGetMemoryInfo')
        if not uuid or not profile:
            LOG.warning('MIG device %d of GPU %s has no UUID or profile in '
                        'NVML; it is not offered', index, pci)
            continue
        slices.append(discovery.MigDevice(
            uuid=uuid, profile=profile, parent_pci=pci,
            memory_mib=memory.total // 2 ** 20 if memory else None))
    return tuple(slices)


def _health(lib, card, xids):
    ecc = card.ask('nvmlDeviceGetTotalEccErrors',
                   _const(lib, 'NVML_MEMORY_ERROR_TYPE_UNCORRECTED',
                          _UNCORRECTED),
                   _const(lib, 'NVML_VOLATILE_ECC', _VOLATILE))
    if ecc:
        card._sick('%d uncorrected ECC errors since the driver loaded' % ecc)
    if card.ask('nvmlDeviceGetRetiredPagesPendingStatus') == _const(
            lib, 'NVML_FEATURE_ENABLED', _FEATURE_ENABLED):
        card._sick('retired memory pages pending: reset the GPU')
    rows = card.ask('nvmlDeviceGetRemappedRows')
    if rows:
        _corrected, _uncorrected, pending, failure = rows
        if failure:
            card._sick('row remapping failed: replace or RMA the GPU')
        elif pending:
            card._sick('row remapping pending: reset the GPU')
    for xid in sorted(xids):
        card._sick('XID %d (%s)' % (xid, CRITICAL_XIDS.get(xid, 'critical')))


def read_facts(lib, xids=None):
    """NVML (pynvml-like module, initialised) -> {pci: NvmlFacts}.

    ``xids``: critical XIDs seen so far, {pci: {xid, ...}}. A card NVML
    cannot even address is left out; ``discovery.enrich`` then marks it.
    """
    xids = xids or {}
    facts = {}
    for index in range(lib.nvmlDeviceGetCount()):
        try:
            handle = lib.nvmlDeviceGetHandleByIndex(index)
            pci = discovery.normalize_pci(
                _text(lib.nvmlDeviceGetPciInfo(handle).busId))
        except (lib.NVMLError, discovery.GPUDataError) as e:
            LOG.warning('NVML cannot address GPU %d: %s', index, e)
            continue
        card = _Card(lib, handle)
        memory = card.ask('nvmlDeviceGetMemoryInfo')
        capability = card.ask('nvmlDeviceGetCudaComputeCapability')
        mig_mode = card.ask('nvmlDeviceGetMigMode')
        mig_enabled = None
        if mig_mode is not None:
            mig_enabled = mig_mode[0] == _const(
                lib, 'NVML_DEVICE_MIG_ENABLE', _MIG_ENABLE)
        slices = _mig_devices(lib, card, pci) if mig_enabled else ()
        _health(lib, card, xids.get(pci, ()))
        facts[pci] = discovery.NvmlFacts(
            pci_address=pci,
            uuid=_text(card.ask('nvmlDeviceGetUUID')),
            name=_text(card.ask('nvmlDeviceGetName')),
            memory_mib=memory.total // 2 ** 20 if memory else None,
            compute_capability=('%d.%d' % tuple(capability)
                                if capability else None),
            mig_enabled=mig_enabled,
            mig_devices=slices,
            health=tuple(card.health))
    return facts


class Collector:
    """NVML kept open, so that critical XID events are not missed.

    XIDs are only delivered to a listener registered before they happen,
    so the listener lives as long as the process. A card with a critical
    XID stays unhealthy until nova-compute restarts (after the GPU reset).
    """

    def __init__(self, lib=None):
        self._lib = lib
        self._ready = False
        self._events = None
        self._xids = {}
        self._said = set()

    def _say_once(self, why):
        if why not in self._said:
            self._said.add(why)
            LOG.info('No NVML facts (GPU memory, MIG slices, health) on this '
                     'host: %s', why)

    def _load(self):
        if self._lib is None:
            try:
                import pynvml
            except ImportError:
                self._say_once('the nvidia-ml-py package is not installed')
                return None
            self._lib = pynvml
        return self._lib

    def _start(self, lib):
        try:
            lib.nvmlInit()
        except lib.NVMLError as e:
            code = _code(e)
            if code == _const(lib, 'NVML_ERROR_LIBRARY_NOT_FOUND',
                              _LIBRARY_NOT_FOUND):
                self._say_once('no libnvidia-ml.so.1 (no NVIDIA driver)')
            elif code == _const(lib, 'NVML_ERROR_DRIVER_NOT_LOADED',
                                _DRIVER_NOT_LOADED):
                self._say_once('the NVIDIA kernel driver is not loaded')
            else:
                self._say_once('NVML did not start: %s' % e)
            return False
        self._events = self._listen(lib)
        return True

    def _listen(self, lib):
        try:
            events = lib.nvmlEventSetCreate()
            for index in range(lib.nvmlDeviceGetCount()):
                try:
                    lib.nvmlDeviceRegisterEvents(
                        lib.nvmlDeviceGetHandleByIndex(index),
                        _const(lib, 'nvmlEventTypeXidCriticalError',
                               _XID_EVENT), events)
                except lib.NVMLError as e:
                    LOG.debug('No XID events from GPU %d: %s', index, e)
            return events
        except (lib.NVMLError, AttributeError) as e:
            LOG.debug('No NVML XID events: %s', e)
            return None

    def _drain_xids(self, lib):
        if self._events is None:
            return
        for _ in range(10000):
            try:
                event = lib.nvmlEventSetWait_v2(self._events, 0)
            except lib.NVMLError:
                return              # NVML_ERROR_TIMEOUT: nothing waiting
            xid = int(event.eventData)
            if xid not in CRITICAL_XIDS:
                continue
            try:
                pci = discovery.normalize_pci(
                    _text(lib.nvmlDeviceGetPciInfo(event.device).busId))
            except (lib.NVMLError, discovery.GPUDataError):
                continue
            if xid not in self._xids.setdefault(pci, set()):
                LOG.warning('GPU %s: XID %d (%s); it is withdrawn from '
                            'Placement until nova-compute restarts',
                            pci, xid, CRITICAL_XIDS[xid])
            self._xids[pci].add(xid)

    def collect(self):
        """{pci: NvmlFacts}; {} when NVML sees no GPU; None without NVML."""
        lib = self._load()
        if lib is None:
            return None
        if not self._ready:
            self._ready = self._start(lib)
            if not self._ready:
                return None
        try:
            self._drain_xids(lib)
            facts = read_facts(lib, self._xids)
        except lib.NVMLError as e:
            self._say_once('NVML failed: %s' % e)
            return None
        if not facts:
            self._say_once('NVML sees no GPU')
        return facts


_collector = None


def collect():
    """This host's NVML facts, or None (no NVML library or driver)."""
    global _collector
    if _collector is None:
        _collector = Collector()
    return _collector.collect()
