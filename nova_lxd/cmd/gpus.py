"""nova-lxd-gpus: the GPUs of LXD members as Placement will see them.

Per member and card: exposed or why not, mode, provider, units, health,
and which containers hold it; per provider: inventory and traits,
computed by the same code the driver runs, with the ``[lxd]`` options of
nova.conf. Members' data comes from a Source: LXD itself (reached as
nova-compute reaches it), or a recorded ``GET /1.0/resources`` file.
"""

import argparse
import json
import socket
import sys

from oslo_config import cfg
from oslo_utils import uuidutils

from nova.compute import provider_tree as nova_provider_tree
from nova import exception

from nova_lxd import conf as lxd_conf
from nova_lxd.gpu import assignment
from nova_lxd.gpu import discovery
from nova_lxd.gpu import nvml
from nova_lxd.gpu import options
from nova_lxd.gpu import providers
from nova_lxd.lxd import client


class Source:
    """Where members' GPU data comes from."""

    def members(self):
        raise NotImplementedError()

    def resources(self, member):
        """``GET /1.0/resources`` of the member (or its gpu object)."""
        raise NotImplementedError()

    def nvml_facts(self, member):
        """{pci: NvmlFacts} of the member's host, or None if unknown."""
        return None

    def instances(self):
        """LXD's instances of every project (the ledger), or None."""
        return None


class FileSource(Source):
    """One member's resources, recorded to a JSON file."""

    def __init__(self, path, member, local_nvml=False):
        self.path, self.member, self.local_nvml = path, member, local_nvml

    def members(self):
        return [self.member]

    def resources(self, member):
        with open(self.path) as f:
            try:
                return json.load(f)
            except ValueError as e:
                raise discovery.GPUDataError('%s: not JSON (%s)'
                                             % (self.path, e))

    def nvml_facts(self, member):
        return nvml.collect() if self.local_nvml else None


class LXDSource(Source):
    """The cluster as nova-compute sees it, through the ``[lxd]`` options.

    Every member, or the one asked for; NVML facts only for the member
    behind a local socket (NVML sees this host's cards).
    """

    def __init__(self, lxd_conf, member=None, local_nvml=False):
        self.lxd = client.LXD(lxd_conf)
        self.member, self.local_nvml = member, local_nvml
        self._instances = None

    def members(self):
        return [self.member] if self.member else sorted(self.lxd.members())

    def resources(self, member):
        return self.lxd.resources(member)

    def nvml_facts(self, member):
        local = member == self.lxd.local_member
        return nvml.collect() if self.local_nvml and local else None

    def instances(self):
        if self._instances is None:
            self._instances = self.lxd.instances_of_all_projects()
        return self._instances


def member_view(member, resources, facts, config, instances=None):
    """Everything the command shows of one member, as plain data.

    ``instances``: LXD's instance list, for who holds which card; None
    when not known (a recorded file).
    """
    found = discovery.discover(resources)
    cards = discovery.enrich(found.cards, facts)
    held = None
    if instances is not None:
        held = assignment.holders(member, cards, config,
                                  assignment.ledger(instances, member))
    plans = providers.card_plans(member, cards, config)
    specs = providers.gpu_providers(member, cards, config, plans=plans)
    tree = nova_provider_tree.ProviderTree()
    tree.new_root(member, uuidutils.generate_uuid())
    # A fresh tree, nothing allocated: what a first report would write.
    providers.update_provider_tree(tree, member, specs, usage={})
    shown = []
    for spec in specs:
        if tree.exists(spec.name):
            data = tree.data(spec.name)
            shown.append({'name': spec.name, 'model': spec.model,
                          'model_name': spec.model_name,
                          'cards': list(spec.cards),
                          'inventory': data.inventory,
                          'traits': sorted(data.traits)})
    traits = {p['name']: p['traits'] for p in shown}
    return {
        'member': member,
        'nvml': facts is not None,
        'cards': [_card_view(p, traits.get(p.provider, []), held)
                  for p in plans],
        'skipped': [{'pci_address': s.pci_address, 'vendor_id': s.vendor_id,
                     'product_id': s.product_id,
                     'description': s.description, 'reason': s.reason}
                    for s in found.skipped],
        'providers': shown,
    }


def _card_view(plan, traits, held):
    card = plan.card
    return {'pci_address': card.pci_address, 'model': card.model,
            'name': card.name, 'numa_node': card.numa_node,
            'driver': card.driver, 'memory_mib': card.memory_mib,
            'compute_capability': card.compute_capability,
            'exposed': plan.exposed, 'reason': plan.reason,
            'mode': plan.mode, 'provider': plan.provider,
            'units': dict(plan.units),
            'mig_devices': [{'uuid': m.uuid, 'profile': m.profile}
                            for m in card.mig_devices],
            'health': list(card.health) or ['ok'],
            'traits': traits, 'notes': list(plan.notes),
            'held_by': (None if held is None
                        else held.get(card.pci_address, []))}


def _units(units):
    return ', '.join('%s %d' % item for item in sorted(units.items())) or '-'


def _table(rows, out):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write('  ' + '  '.join(c.ljust(w) for c, w in
                                   zip(row, widths)).rstrip() + '\n')


def render_text(views, out):
    for view in views:
        out.write('Member %s%s\n' % (view['member'], '' if view['nvml'] else
                                     ' (no NVML facts)'))
        rows = [('PCI', 'MODEL', 'MODE', 'PROVIDER', 'UNITS', 'HELD BY',
                 'HEALTH')]
        for c in view['cards']:
            model = ('%s %s' % (c['model'], c['name'])).strip()
            held = ('?' if c['held_by'] is None
                    else ', '.join(c['held_by']) or '-')
            if not c['exposed']:
                rows.append((c['pci_address'], model, '-', '-', '-', held,
                             'not exposed: ' + c['reason']))
                continue
            rows.append((c['pci_address'], model, c['mode'], c['provider'],
                         _units(c['units']), held, '; '.join(c['health'])))
        for s in view['skipped']:
            model = '%s:%s %s' % (s['vendor_id'] or '?',
                                  s['product_id'] or '?', s['description'])
            rows.append((s['pci_address'] or '-', model, '-', '-', '-', '-',
                         'skipped: ' + s['reason']))
        if len(rows) == 1:
            out.write('  no GPU\n')
        else:
            _table(rows, out)
        for c in view['cards']:
            for note in c['notes']:
                out.write('  note %s: %s\n' % (c['pci_address'], note))
        for p in view['providers']:
            out.write('  provider %s (%s %s)\n' % (p['name'], p['model'],
                                                   p['model_name']))
            for rc, rec in sorted(p['inventory'].items()):
                out.write('    %s total %d reserved %d max_unit %d\n'
                          % (rc, rec['total'], rec['reserved'],
                             rec['max_unit']))
            out.write('    traits: %s\n' % ' '.join(p['traits']))


def _config(files):
    conf = cfg.ConfigOpts()
    lxd_conf.register_opts(conf)
    conf(args=[], project='nova', default_config_files=files or None)
    return conf


def _parser():
    parser = argparse.ArgumentParser(
        prog='nova-lxd-gpus',
        description='Show the GPUs of an LXD member as Placement will see '
                    'them, with the [lxd] gpu_* options of nova.conf.')
    parser.add_argument('--resources', metavar='FILE',
                        help='JSON of the member\'s GET /1.0/resources '
                             '(lxc query /1.0/resources), or its gpu object, '
                             'instead of asking LXD; who holds which card '
                             'is then unknown')
    parser.add_argument('--member', metavar='NAME',
                        help='LXD member name (provider names start with '
                             'it); default: every member of the cluster, or '
                             'this host\'s name with --resources')
    parser.add_argument('--config-file', metavar='FILE', action='append',
                        default=[],
                        help='nova.conf to read (repeatable); default: '
                             'Nova\'s usual places, e.g. /etc/nova/nova.conf')
    parser.add_argument('--nvml', action='store_true',
                        help='merge this host\'s NVML facts (memory, MIG '
                             'slices, health): only when FILE is this '
                             'host\'s resources')
    parser.add_argument('--json', action='store_true',
                        help='print JSON instead of a table')
    return parser


def main(argv=None, out=None):
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        conf = _config(args.config_file)
        config = options.from_conf(conf)
        if args.resources:
            source = FileSource(args.resources,
                                args.member or socket.gethostname(),
                                local_nvml=args.nvml)
        else:
            source = LXDSource(conf.lxd, args.member, local_nvml=args.nvml)
        views = [member_view(m, source.resources(m), source.nvml_facts(m),
                             config, source.instances())
                 for m in source.members()]
    except (options.GpuConfigError, discovery.GPUDataError, OSError,
            cfg.Error, exception.NovaException) as e:
        sys.stderr.write('nova-lxd-gpus: %s\n' % e)
        return 2
    if args.json:
        json.dump({'members': views}, out, indent=2, sort_keys=True)
        out.write('\n')
    else:
        render_text(views, out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
