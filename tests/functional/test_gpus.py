"""GPUs through Nova's API onto the real cluster, with one member's GPU
source replaced by a recording.

Member lxd1's ``GET /1.0/resources`` answers with the GPU section recorded
from a real host (ASPEED BMC + RTX 2080 Ti + GTX 1080 Ti, see
tests/unit/data/gpu/README.md); everything else is the real test bed.
LXD validates the gpu device the driver writes when the container is
created; starting it needs the real card, which these machines lack, so
the boot must fail with a clear fault and leave nothing behind.
"""

import contextlib
import io
import json
import threading
import types

import fixtures
from nova.compute import provider_tree
import nova.conf
from oslo_utils.fixture import uuidsentinel as uuids

from nova_lxd.cmd import gpus
from nova_lxd import constants
from nova_lxd import container
from nova_lxd.extra_specs import LXDSpecs
from nova_lxd.gpu import assignment
from nova_lxd.gpu import devices
from nova_lxd.gpu import options
from nova_lxd.lxd import client
from nova_lxd.lxd import tls
from tests import certs
from tests.functional import base
from tests.unit import data as gpu_data
from tests.unit import fakes

CONF = nova.conf.CONF
RTX = 'lxd1_gpu_10de_1e04'
RTX_PCI = '0000:03:00.0'
GTX = 'lxd1_gpu_10de_1b06'


class GPUTest(base.LXDServicesTestCase):

    def setUp(self):
        super().setUp()
        recorded = gpu_data.load(gpu_data.ASPEED_RTX)
        real_resources = client.LXD.resources

        def resources(lxd, member):
            found = real_resources(lxd, member)
            return dict(found, gpu=recorded) if member == 'lxd1' else found
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.resources', resources))
        self.use_https()
        self.compute = self.start_service('compute', host='compute1')
        self.lxd = self.bed.client()

    def test_member_gpus_are_providers_with_traits(self):
        root = self._get_provider_uuid_by_name('lxd1')
        for name, product, model in (
                (RTX, '1E04', 'GEFORCE_RTX_2080_TI'),
                (GTX, '1B06', 'GEFORCE_GTX_1080_TI')):
            provider = self.placement.get(
                '/resource_providers?name=%s' % name,
                version='1.14').body['resource_providers'][0]
            self.assertEqual(root, provider['parent_provider_uuid'])
            inventory = self._get_provider_inventory(provider['uuid'])
            self.assertEqual(1, inventory['PGPU']['total'])
            traits = self._get_provider_traits(provider['uuid'])
            self.assertIn('CUSTOM_GPU_VENDOR_10DE', traits)
            self.assertIn('CUSTOM_GPU_10DE_' + product, traits)
            self.assertIn('CUSTOM_GPU_MODEL_' + model, traits)
        # The BMC's display-only card is no provider; lxd2 has no GPU.
        names = {p['name'] for p in self._get_all_providers()}
        self.assertEqual({'lxd1', 'lxd2', RTX, GTX}, names)

    def rtx_flavor(self):
        return self._create_flavor(
            name='gpu.rtx', vcpu=1, memory_mb=256, disk=1, ephemeral=0,
            extra_spec={'resources:PGPU': '1',
                        'trait:CUSTOM_GPU_10DE_1E04': 'required'})

    def image(self):
        return self.glance.create(None, {
            'name': 'busybox', 'status': 'active', 'disk_format': 'raw',
            'container_format': 'bare'},
            data=self.bed.marked_image('gpu'))['id']

    def test_card_held_by_another_container_is_never_given(self):
        # Placement does not know the operator's container; LXD (the
        # ledger) does.
        self.hold_rtx('operator-gpu')

        server = self._create_server(image_uuid=self.image(),
                                     flavor_id=self.rtx_flavor(),
                                     networks='none',
                                     expected_state='ERROR')
        message = server['fault']['message']
        self.assertIn('1 x PGPU of GPU model 10de:1e04 asked, 0 free',
                      message)
        # The holder is named to the operator (the log), not the tenant.
        self.assertNotIn('operator-gpu', message)
        self.assertIn('held by: operator-gpu (0000:03:00.0)',
                      self.stdlog.logger.output)
        self.assertEqual({'operator-gpu'},
                         {i.name for i in self.lxd.instances.all()})

    def hold_rtx(self, name, client=None):
        """An operator's own container on lxd1 with the RTX 2080 Ti."""
        held = (client or self.lxd).instances.create(
            {'name': name, 'profiles': [],
             'source': {'type': 'image', 'alias': self.bed.image},
             'devices': {
                 'root': {'type': 'disk', 'path': '/',
                          'pool': self.bed.pool},
                 'card': {'type': 'gpu', 'gputype': 'physical',
                          'pci': '0000:03:00.0'}}},
            target='lxd1', wait=True)
        self.addCleanup(held.delete, wait=True)

    def test_operator_command_shows_the_cluster_and_who_holds_what(self):
        self.hold_rtx('operator-gpu')
        conf = self.useFixture(fixtures.TempDir()).join('nova.conf')
        with open(conf, 'w') as f:
            f.write('[lxd]\nendpoint = %s\nclient_cert = %s\n'
                    'client_key = %s\nserver_cert = %s\n' % (
                        self.bed.endpoint, self.bed.client_cert,
                        self.bed.client_key, self.bed.server_cert))
        out = io.StringIO()
        self.assertEqual(0, gpus.main(['--config-file', conf, '--json'],
                                      out=out))
        views = {v['member']: v for v in json.loads(out.getvalue())[
            'members']}
        self.assertEqual(set(self.bed.members), set(views))
        self.assertEqual(
            {'0000:03:00.0': ['operator-gpu'], '0000:82:00.0': []},
            {c['pci_address']: c['held_by'] for c in views['lxd1']['cards']})
        self.assertEqual([], views['lxd2']['cards'])

    def test_card_held_in_another_project_is_never_given(self):
        # The operator's container is in a project of its own; the driver
        # works in the default one and must still see it.
        project = 'nova-lxd-test-ops'
        self.addCleanup(self.lxd.projects.create(project, config={
            'features.images': 'false', 'features.profiles': 'false'}).delete)
        self.hold_rtx('notebook', self.bed.client(project=project))

        server = self._create_server(image_uuid=self.image(),
                                     flavor_id=self.rtx_flavor(),
                                     networks='none',
                                     expected_state='ERROR')
        self.assertIn('held by: %s/notebook (0000:03:00.0)' % project,
                      self.stdlog.logger.output)
        for name in (project, 'notebook'):
            self.assertNotIn(name, server['fault']['message'])

    def test_boot_names_the_allocated_card_and_leaves_nothing(self):
        written = []
        real_change_state = client.LXD.change_state

        def change_state(lxd, name, action, **kwargs):
            if action == 'start':
                written.append(lxd.instance(name)['devices'])
            return real_change_state(lxd, name, action, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.change_state', change_state))
        before = {i.name for i in self.lxd.instances.all()}
        server = self._create_server(image_uuid=self.image(),
                                     flavor_id=self.rtx_flavor(),
                                     networks='none', expected_state='ERROR')
        # LXD accepted (validated) the device naming exactly that card.
        (devices,) = written
        self.assertEqual({'type': 'gpu', 'gputype': 'physical',
                          'pci': '0000:03:00.0'}, devices['nova-gpu-0'])
        self.assertEqual(1, len([d for d in devices.values()
                                 if d['type'] == 'gpu']))
        self.assertIn('LXD:', server['fault']['message'])
        self.assertEqual(before, {i.name for i in self.lxd.instances.all()})

    def rtx_holders(self):
        """The containers whose own devices name the RTX 2080 Ti."""
        return sorted(i.name for i in self.lxd.instances.all()
                      if any(d.get('type') == 'gpu' and
                             d.get('pci') == RTX_PCI
                             for d in i.devices.values()))

    def race(self, theirs_first=False):
        """Another nova-compute spawns on lxd1 while ours does.

        Another deployment sharing the cluster: its own Placement counted
        the RTX free, its own lock knows nothing of this process's. Both
        pick before either creates (the barrier). ``theirs_first``: our
        create waits for theirs. Returns (their outcome, [(container
        started, the RTX's holders then)], our server).
        """
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.gpu.devices.lockutils', types.SimpleNamespace(
                lock=lambda name: contextlib.nullcontext())))
        self.picked, self.names = {}, {}
        both_picked = threading.Barrier(2)
        real_pick = devices.GPUs._pick

        def pick(gpus, instance, specs, allocations):
            part = real_pick(gpus, instance, specs, allocations)
            if instance.uuid not in self.picked:
                self.names[instance.uuid] = container.name(instance)
                self.picked[instance.uuid] = part.devices[
                    'nova-gpu-0']['pci']
                both_picked.wait(120)
            return part
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.gpu.devices.GPUs._pick', pick))
        starts = []
        real_change_state = client.LXD.change_state

        def change_state(lxd, name, action, **kwargs):
            if action == 'start':
                starts.append((name, self.rtx_holders()))
            return real_change_state(lxd, name, action, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.change_state', change_state))
        theirs_created = threading.Event()
        real_create = client.LXD.create_instance

        def create_instance(lxd, body, member):
            if theirs_first and body['name'] != self.theirs.name:
                theirs_created.wait(120)
            real_create(lxd, body, member)
            if body['name'] == self.theirs.name:
                theirs_created.set()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD.create_instance', create_instance))

        # The other service: its own client, GPU room and provider tree.
        other = client.LXD(CONF.lxd)
        other_gpus = devices.GPUs(other, options.from_conf(CONF), None)
        tree = provider_tree.ProviderTree()
        tree.new_root('lxd1', uuids.other_lxd1)
        other_gpus.update_providers(tree, 'lxd1', other.resources('lxd1'))
        allocations = {tree.data(RTX).uuid: {'resources': {'PGPU': 1}}}
        self.theirs = theirs = fakes.instance(
            uuid=uuids.theirs, node='lxd1', id=0xb0b)
        outcome = []

        def their_spawn():
            try:
                with other_gpus.claimed(theirs, LXDSpecs(),
                                        allocations) as part:
                    other.create_instance({
                        'name': theirs.name, 'profiles': [],
                        'source': {'type': 'image', 'alias': self.bed.image},
                        'config': {constants.INSTANCE_UUID_KEY: theirs.uuid},
                        'devices': dict(part.devices, root={
                            'type': 'disk', 'path': '/',
                            'pool': self.bed.pool})}, 'lxd1')
                outcome.append('kept')
            except assignment.GPUsTaken:
                other.delete_owned(theirs.name, constants.INSTANCE_UUID_KEY,
                                   theirs.uuid)
                outcome.append('given up')
        self.addCleanup(other.delete_owned, theirs.name,
                        constants.INSTANCE_UUID_KEY, theirs.uuid)
        thread = threading.Thread(target=their_spawn)
        thread.start()
        server = self._create_server(image_uuid=self.image(),
                                     flavor_id=self.rtx_flavor(),
                                     networks='none', expected_state='ERROR')
        thread.join(120)
        # The race happened: both picked the one RTX.
        self.assertEqual([RTX_PCI, RTX_PCI], list(self.picked.values()))
        (theirs_kept,) = outcome
        return theirs_kept, starts, server

    def test_two_services_racing_for_the_card_give_it_once(self):
        # LXD ends with the card in one container, never in two at once:
        # whichever LXD created first keeps it.
        outcome, starts, server = self.race()
        ours = self.names[server['id']]
        if outcome == 'kept':
            # Ours gave it up: never started, told why, nothing left.
            self.assertEqual([], starts)
            self.assertEqual([self.theirs.name], self.rtx_holders())
            self.assertIn('0 free', server['fault']['message'])
        else:
            # Theirs gave it up: ours started with the card alone (and
            # failed there: these machines have no RTX).
            self.assertEqual([(ours, [ours])], starts)
            self.assertIn('LXD:', server['fault']['message'])
            self.assertEqual([], self.rtx_holders())

    def test_the_later_created_gives_the_card_up_and_picks_again(self):
        outcome, starts, server = self.race(theirs_first=True)
        self.assertEqual('kept', outcome)
        self.assertEqual([], starts)
        # Ours saw theirs after its create, was removed and picked again:
        # no card left; the tenant is told so, the operator who took it.
        self.assertIn('1 x PGPU of GPU model 10de:1e04 asked, 0 free',
                      server['fault']['message'])
        self.assertNotIn(self.theirs.name, server['fault']['message'])
        self.assertIn('also taken by %s at the same time' % self.theirs.name,
                      self.stdlog.logger.output)
        self.assertIn('trying again (1 of 3)', self.stdlog.logger.output)
        self.assertEqual([self.theirs.name], self.rtx_holders())

    def test_refused_when_the_certificate_sees_only_some_projects(self):
        # LXD answers a certificate restricted to some projects with those
        # projects' containers only: the RTX held in another project would
        # look free. GPU servers are refused instead; others still boot.
        project = 'nova-lxd-test-ops'
        self.addCleanup(self.lxd.projects.create(project, config={
            'features.images': 'false', 'features.profiles': 'false'}).delete)
        self.hold_rtx('notebook', self.bed.client(project=project))
        cert, key = certs.write_self_signed(
            self.useFixture(fixtures.TempDir()).path, 'nova-restricted')
        with open(cert, 'rb') as f:
            self.lxd.certificates.create('', f.read(),
                                         name='nova-lxd-test-restricted',
                                         projects=['default'],
                                         restricted=True)
        self.addCleanup(self.lxd.certificates.get(
            tls.certificate_fingerprint(cert)).delete)
        self.flags(client_cert=cert, client_key=key, group='lxd')
        self.compute = self.restart_compute_service(self.compute)
        before = {i.name for i in self.lxd.instances.all()}

        server = self._create_server(image_uuid=self.image(),
                                     flavor_id=self.rtx_flavor(),
                                     networks='none', expected_state='ERROR')
        self.assertIn("cannot list every project's containers",
                      server['fault']['message'])
        self.assertEqual(before, {i.name for i in self.lxd.instances.all()})
