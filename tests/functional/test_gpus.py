"""GPUs through Nova's API onto the real cluster, with one member's GPU
source replaced by a recording.

Member lxd1's ``GET /1.0/resources`` answers with the GPU section recorded
from a real host (ASPEED BMC + RTX 2080 Ti + GTX 1080 Ti, see
tests/unit/data/gpu/README.md); everything else is the real test bed.
LXD validates the gpu device the driver writes when the container is
created; starting it needs the real card, which these machines lack, so
the boot must fail with a clear fault and leave nothing behind.
"""

import io
import json

import fixtures

from nova_lxd.cmd import gpus
from nova_lxd.lxd import client
from tests.functional import base
from tests.unit import data as gpu_data

RTX = 'lxd1_gpu_10de_1e04'
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
