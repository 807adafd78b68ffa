#!/usr/bin/env python3
"""gpu_probe.py: what nova-lxd's GPU code sees on this host, through NVML.

For a machine with NVIDIA GPUs, LXD or not: prints NVML's facts
(nova_lxd.gpu.nvml), the cards discovery builds from them, the providers
gpu_providers() would report to Placement, and, with --assign, the gpu
devices assignment would write, as text or --json. Needs the repository,
its requirements and nvidia-ml-py; exits non-zero, saying why, when NVML
is missing or does not start.

Card records come from --resources (a saved ``lxc query /1.0/resources``),
else from a local LXD's socket when there is one, else from NVML's PCI
information alone (the output says which).

    tools/gpu_probe.py [--json] [--resources FILE] [--gpu-modes 10de:2335=mig]
                    [--assign PGPU=2] [--assign CUSTOM_MIG_1G_18GB=1]
"""

import argparse
import dataclasses
import http.client
import json
import os
import socket
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

try:
    from nova_lxd.gpu import assignment  # noqa: E402
    from nova_lxd.gpu import discovery  # noqa: E402
    from nova_lxd.gpu import nvml  # noqa: E402
    from nova_lxd.gpu import options  # noqa: E402
    from nova_lxd.gpu import providers  # noqa: E402
except ImportError as e:
    sys.exit('gpu_probe.py: %s: install the repository\'s requirements first '
             '(pip install -r requirements.txt)' % e)

LXD_SOCKETS = ('/var/snap/lxd/common/lxd/unix.socket',
               '/var/lib/lxd/unix.socket')
# What an LXD 5.0 server and a CDI-capable one (5.21, 6.x) offer for GPUs.
LXD_5_0 = ('gpu_devices', 'gpu_mdev', 'gpu_sriov', 'gpu_mig',
           'gpu_mig_uuid', 'nvidia_runtime', 'nvidia_runtime_config')
LXD_CDI = LXD_5_0 + ('gpu_cdi',)


class ProbeError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _ask(lib, call, *args):
    """An NVML call this probe can do without: None if it fails."""
    try:
        return getattr(lib, call)(*args)
    except (AttributeError, lib.NVMLError):
        return None


def load_nvml(lib=None):
    """pynvml, initialised; ProbeError when NVML is not there."""
    if lib is None:
        try:
            import pynvml as lib
        except ImportError:
            raise ProbeError(2, 'NVML is missing: the nvidia-ml-py package '
                                'is not installed (pip install '
                                'nvidia-ml-py)')
    try:
        lib.nvmlInit()
    except lib.NVMLError as e:
        raise ProbeError(3, 'NVML did not start: %s (no NVIDIA driver '
                            'loaded, or no libnvidia-ml.so.1)' % e)
    return lib


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__('localhost', timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def lxd_resources(paths=LXD_SOCKETS):
    """(GET /1.0/resources of the local LXD, socket) or (None, why)."""
    why = 'no LXD socket at ' + ' or '.join(paths)
    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            conn = _UnixHTTP(path)
            conn.request('GET', '/1.0/resources')
            return json.loads(conn.getresponse().read())['metadata'], path
        except (OSError, ValueError, KeyError, http.client.HTTPException) \
                as e:
            why = 'LXD at %s did not answer: %s' % (path, e)
    return None, why


def _numa_node(pci):
    try:
        with open('/sys/bus/pci/devices/%s/numa_node' % pci) as f:
            node = int(f.read())
    except (OSError, ValueError):
        return None
    return node if node >= 0 else None


def nvml_resources(lib):
    """Minimal LXD-shaped card records from NVML's PCI information.

    Fields LXD would add (DRM nodes, vendor and product names from
    pci.ids, SR-IOV) are absent; enough for discovery and inventory.
    """
    version = _text(_ask(lib, 'nvmlSystemGetDriverVersion')) or ''
    cuda = _ask(lib, 'nvmlSystemGetCudaDriverVersion')
    cards = []
    for index in range(lib.nvmlDeviceGetCount()):
        handle = lib.nvmlDeviceGetHandleByIndex(index)
        pci = lib.nvmlDeviceGetPciInfo(handle)
        address = discovery.normalize_pci(_text(pci.busId))
        ids = getattr(pci, 'pciDeviceId', None)
        name = _text(_ask(lib, 'nvmlDeviceGetName', handle)) or ''
        capability = _ask(lib, 'nvmlDeviceGetCudaComputeCapability', handle)
        minor = _ask(lib, 'nvmlDeviceGetMinorNumber', handle)
        card = {'pci_address': address, 'driver': 'nvidia',
                'driver_version': version, 'vendor': 'NVIDIA Corporation',
                'product': name, 'numa_node': _numa_node(address),
                'nvidia': {
                    'uuid': _text(_ask(lib, 'nvmlDeviceGetUUID', handle)),
                    'model': name, 'nvrm_version': version,
                    'architecture': ('%d.%d' % tuple(capability)
                                     if capability else None),
                    'cuda_version': ('%d.%d' % (cuda // 1000,
                                                cuda % 1000 // 10)
                                     if cuda else None),
                    'card_name': ('nvidia%d' % minor
                                  if minor is not None else None)}}
        if ids:
            card['vendor_id'] = '%04x' % (ids & 0xffff)
            card['product_id'] = '%04x' % (ids >> 16)
        card['nvidia'] = {k: v for k, v in card['nvidia'].items()
                          if v is not None}
        cards.append({k: v for k, v in card.items() if v is not None})
    return {'gpu': {'cards': cards, 'total': len(cards)}}


def nvml_order(lib):
    """PCI addresses in NVML index order (CDI index names follow it)."""
    return [discovery.normalize_pci(_text(lib.nvmlDeviceGetPciInfo(
        lib.nvmlDeviceGetHandleByIndex(i)).busId))
        for i in range(lib.nvmlDeviceGetCount())]


def _asks(texts):
    asks = []
    for text in texts:
        rc, _, amount = text.partition('=')
        if not amount.isdigit():
            raise ProbeError(2, '--assign %r: expected CLASS=N, like PGPU=2'
                             % text)
        asks.append((rc.strip().upper(), int(amount)))
    return asks


def _specs(runtime):
    """A flavor's lxd: specs as nvidia_config reads them (no Nova here)."""
    return types.SimpleNamespace(nvidia_runtime=runtime,
                                 nvidia_driver_capabilities=None,
                                 nvidia_require_cuda=None)


def assign_view(member, cards, config, specs, asks):
    """The devices assign() writes for ``asks`` on an empty member."""
    allocations, providers = {}, {}
    for rc, amount in asks:
        spec = next((s for s in specs if rc in s.units), None)
        if spec is None:
            return {'error': 'no provider offers %s' % rc}
        rp = 'probe-' + spec.name
        providers[rp] = spec.name
        allocations.setdefault(rp, {'resources': {}})['resources'][rc] = \
            amount
    empty = assignment.ledger([], member)
    view = {}
    for label, extensions, runtime in (('lxd-5.0', LXD_5_0, False),
                                       ('lxd-5.0+nvidia_runtime', LXD_5_0,
                                        True),
                                       ('cdi+nvidia_runtime', LXD_CDI,
                                        True)):
        try:
            devices = assignment.assign(
                cards, allocations, providers, empty, member, 'probe',
                config, assignment.shapes(extensions, runtime))
            # As with [lxd] allow_nvidia_runtime = True.
            config_keys = assignment.nvidia_config(
                _specs(runtime), extensions,
                mig=any(d.get('gputype') == 'mig' for d in devices),
                allow_runtime=True)
        except assignment.GPUAssignmentError as e:
            view[label] = {'error': str(e)}
            continue
        view[label] = {'devices': devices, 'config': config_keys,
                       'profile': assignment.profile_name(config_keys)}
    return view


def _resources(args, lib):
    """(resources, where they come from, note)."""
    if args.resources:
        with open(args.resources) as f:
            return json.load(f), 'file ' + args.resources, ''
    resources, where = ((None, '--no-lxd given') if args.no_lxd
                        else lxd_resources())
    if resources is not None:
        return resources, 'LXD at ' + where, ''
    return nvml_resources(lib), 'NVML', (
        'GET /1.0/resources unavailable (%s): card records built from '
        'NVML\'s PCI information only' % where)


def probe(args, lib):
    """Everything the probe shows, as plain data."""
    facts = nvml.Collector(lib).collect()
    if facts is None:
        raise ProbeError(3, 'NVML started but gave no facts; see the log '
                            'line above')
    resources, source, note = _resources(args, lib)
    config = options.parse(args.gpu_devices, args.gpu_modes, args.gpu_traits)
    found = discovery.discover(resources)
    cards = discovery.enrich(found.cards, facts)
    plans = providers.card_plans(args.member, cards, config)
    specs = providers.gpu_providers(args.member, cards, config, plans=plans)
    order = nvml_order(lib)
    view = {
        'member': args.member, 'source': source, 'note': note,
        'nvml': {pci: dataclasses.asdict(f) for pci, f in
                 sorted(facts.items())},
        'nvml_index_order': order,
        'nvml_order_is_pci_order': order == sorted(order),
        'cards': [dict(dataclasses.asdict(c), model=c.model,
                       model_name=c.name) for c in cards],
        'skipped': [dataclasses.asdict(s) for s in found.skipped],
        'plans': [{'pci_address': p.card.pci_address,
                   'exposed': p.exposed, 'reason': p.reason,
                   'mode': p.mode, 'provider': p.provider,
                   'units': dict(p.units), 'notes': list(p.notes)}
                  for p in plans],
        'providers': [{'name': s.name, 'model': s.model,
                       'model_name': s.model_name,
                       'inventory': {rc: dataclasses.asdict(u)
                                     for rc, u in s.inventory},
                       'traits': sorted(s.traits), 'cards': list(s.cards)}
                      for s in specs],
    }
    if args.assign:
        view['assign'] = assign_view(args.member, cards, config, specs,
                                     _asks(args.assign))
    return view


def render(view, out):
    w = out.write
    w('Member %s, cards from %s\n' % (view['member'], view['source']))
    if view['note']:
        w('  note: %s\n' % view['note'])
    w('NVML (index order %s PCI order):\n'
      % ('is' if view['nvml_order_is_pci_order'] else 'is NOT'))
    for pci, f in view['nvml'].items():
        w('  %s %s %s %s MiB cc %s mig %s health %s\n'
          % (pci, f['uuid'], f['name'], f['memory_mib'],
             f['compute_capability'], f['mig_enabled'],
             '; '.join(f['health']) or 'ok'))
        for m in f['mig_devices']:
            w('    MIG %s %s (%s MiB)\n' % (m['profile'], m['uuid'],
                                            m['memory_mib']))
    w('Cards:\n')
    for c in view['cards']:
        w('  %s %s %s numa %s driver %s cuda %s\n'
          % (c['pci_address'], c['model'], c['model_name'] or '?',
             c['numa_node'], c['driver_version'], c['cuda_version']))
    for s in view['skipped']:
        w('  skipped %s: %s\n' % (s['pci_address'], s['reason']))
    w('Plans:\n')
    for p in view['plans']:
        w('  %s %s\n' % (p['pci_address'], (
            '%s -> %s %s' % (p['mode'], p['provider'], p['units'])
            if p['exposed'] else 'not exposed: ' + p['reason'])))
        for note in p['notes']:
            w('    note: %s\n' % note)
    w('Providers:\n')
    for s in view['providers']:
        w('  %s (%s %s) cards %s\n' % (s['name'], s['model'],
                                       s['model_name'],
                                       ', '.join(s['cards'])))
        for rc, units in sorted(s['inventory'].items()):
            w('    %s total %d unhealthy %d max_unit %d\n'
              % (rc, units['total'], units['unhealthy'],
                 units['max_unit']))
        w('    traits: %s\n' % ' '.join(s['traits']))
    for label, result in sorted(view.get('assign', {}).items()):
        w('Assign on %s:\n' % label)
        for key, value in sorted(result.items()):
            w('  %s: %s\n' % (key, json.dumps(value, sort_keys=True)))


def _parser():
    parser = argparse.ArgumentParser(
        prog='gpu_probe.py',
        description='What nova-lxd sees of this host\'s NVIDIA GPUs, '
                    'through NVML.')
    parser.add_argument('--json', action='store_true', help='print JSON')
    parser.add_argument('--member', default=socket.gethostname(),
                        help='member name for provider names (default: '
                             'this host\'s name)')
    parser.add_argument('--resources', metavar='FILE',
                        help='this host\'s GET /1.0/resources, saved')
    parser.add_argument('--no-lxd', action='store_true',
                        help='do not ask a local LXD; build cards from NVML')
    parser.add_argument('--gpu-devices', type=_list, default=['*'],
                        help='as [lxd] gpu_devices (comma-separated)')
    parser.add_argument('--gpu-modes', type=_list, default=[],
                        help='as [lxd] gpu_modes, e.g. 10de:2335=mig')
    parser.add_argument('--gpu-traits', type=_list, default=[],
                        help='as [lxd] gpu_traits')
    parser.add_argument('--assign', action='append', default=[],
                        metavar='CLASS=N',
                        help='show the devices assign() writes for CLASS=N '
                             '(repeatable)')
    return parser


def _list(text):
    return [p for p in text.split(',') if p.strip()]


def main(argv=None, out=None, lib=None):
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        view = probe(args, load_nvml(lib))
    except ProbeError as e:
        sys.stderr.write('gpu_probe.py: %s\n' % e)
        return e.code
    except (OSError, ValueError, options.GpuConfigError,
            discovery.GPUDataError) as e:
        sys.stderr.write('gpu_probe.py: %s\n' % e)
        return 2
    if args.json:
        json.dump(view, out, indent=2, sort_keys=True, default=list)
        out.write('\n')
    else:
        render(view, out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
