import io
import json
import os
import re
import shutil
import tempfile
from unittest import mock

import testtools
from testtools import matchers

from nova_lxd.cmd import gpus
from tests.unit import data


class GpusCommandTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.conf = self._write('nova.conf', '[lxd]\n')

    def _write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def _run(self, *argv, conf=None):
        out, err = io.StringIO(), io.StringIO()
        with mock.patch('sys.stderr', err):
            rc = gpus.main(['--config-file', conf or self.conf] + list(argv),
                           out=out)
        return rc, out.getvalue(), err.getvalue()

    def test_table_of_real_fixture(self):
        rc, out, _ = self._run('--resources',
                               os.path.join(data.GPU_DIR, data.ASPEED_RTX),
                               '--member', 'lxd1')
        self.assertEqual(0, rc)
        self.assertIn('Member lxd1 (no NVML facts)', out)
        self.assertThat(out, matchers.MatchesRegex(
            r'.*0000:03:00.0  10de:1e04 GeForce RTX 2080 Ti +whole  '
            r'lxd1_gpu_10de_1e04  PGPU 1  \?        ok\n', re.DOTALL))
        self.assertIn('skipped: no render node', out)
        self.assertIn('PGPU total 1 reserved 0 max_unit 1', out)
        self.assertIn('CUSTOM_GPU_CUDA_COMPUTE_CAPABILITY_V7_5', out)

    def test_json_with_options_from_nova_conf(self):
        conf = self._write('gpu.conf', '[lxd]\ngpu_modes = *=shared:3\n'
                           'gpu_traits = 10de:1287=CUSTOM_LAB\n')
        rc, out, _ = self._run('--resources',
                               os.path.join(data.GPU_DIR, data.VIRTIO_GT730),
                               '--member', 'm', '--json', conf=conf)
        self.assertEqual(0, rc)
        (member,) = json.loads(out)['members']
        (card,) = member['cards']
        self.assertEqual(('shared:3', {'CUSTOM_SHARED_GPU': 3}, ['ok']),
                         (card['mode'], card['units'], card['health']))
        self.assertIn('CUSTOM_LAB', card['traits'])
        (provider,) = member['providers']
        self.assertEqual('m_gpu_10de_1287', provider['name'])
        self.assertEqual(1, provider['inventory']['CUSTOM_SHARED_GPU'][
            'max_unit'])
        self.assertIn('CUSTOM_LAB', provider['traits'])
        self.assertEqual(['1af4'], [s['vendor_id']
                                    for s in member['skipped']])

    def test_no_gpu(self):
        path = self._write('r.json', '{"cpu": {}, "memory": {}}')
        rc, out, _ = self._run('--resources', path, '--member', 'x')
        self.assertEqual((0, 'Member x (no NVML facts)\n  no GPU\n'),
                         (rc, out))

    def test_local_nvml_facts(self):
        pci = data.pci_of(0)
        path = self._write('r.json', json.dumps(data.nvidia_host(1)))
        facts = {pci: data.facts(pci, slices=data.h200_slices(0))}
        conf = self._write('mig.conf', '[lxd]\ngpu_modes = 10de:2335=mig\n')
        with mock.patch('nova_lxd.gpu.nvml.collect', return_value=facts):
            rc, out, _ = self._run('--resources', path, '--member', 'h',
                                   '--nvml', conf=conf)
        self.assertEqual(0, rc)
        self.assertIn('CUSTOM_MIG_1G_18GB total 7', out)
        self.assertIn('CUSTOM_GPU_MEMORY_141GB', out)

    def test_errors_are_one_line_and_exit_2(self):
        bad_conf = self._write('bad.conf', '[lxd]\ngpu_modes = *=turbo\n')
        fixture = os.path.join(data.GPU_DIR, data.ASPEED_RTX)
        cases = [
            ((fixture,), bad_conf, '[lxd] gpu_modes'),
            ((self._write('x.json', '{"gpu": []}'),), None, 'gpu:'),
            ((self._write('y.json', 'nope'),), None, 'not JSON'),
            ((os.path.join(self.dir, 'absent.json'),), None, 'absent.json'),
        ]
        for (path,), conf, words in cases:
            rc, out, err = self._run('--resources', path, conf=conf)
            self.assertEqual((2, ''), (rc, out))
            self.assertIn(words, err)
            self.assertTrue(err.startswith('nova-lxd-gpus: '))

    def test_lxd_source_shows_who_holds_each_card(self):
        recorded = data.load(data.ASPEED_RTX)
        lxd = mock.Mock(endpoint='https://127.0.0.2:8443')
        lxd.members.return_value = {'lxd2': 'Online', 'lxd1': 'Online'}
        lxd.resources.side_effect = lambda m: (
            {'gpu': recorded} if m == 'lxd1' else {'gpu': {'cards': []}})
        lxd.instances_of_all_projects.return_value = [
            {'name': 'instance-00000001', 'location': 'lxd1',
             'config': {'user.nova.instance_uuid': 'u1'},
             'devices': {'nova-gpu-0': {'type': 'gpu',
                                        'pci': '0000:82:00.0'}}},
            {'name': 'notebook', 'location': 'lxd1', 'project': 'team-a',
             'config': {},
             'devices': {'g': {'type': 'gpu', 'pci': '0000:82:00.0'}}}]
        with mock.patch('nova_lxd.lxd.client.LXD', return_value=lxd):
            rc, out, _ = self._run('--json')
        self.assertEqual(0, rc)
        lxd1, lxd2 = json.loads(out)['members']
        self.assertEqual(('lxd1', 'lxd2'), (lxd1['member'], lxd2['member']))
        self.assertEqual(
            {'0000:03:00.0': [],
             '0000:82:00.0': ['instance-00000001', 'team-a/notebook']},
            {c['pci_address']: c['held_by'] for c in lxd1['cards']})
        # One listing serves every member; no NVML over HTTPS.
        self.assertEqual(1, lxd.instances_of_all_projects.call_count)
        self.assertFalse(lxd1['nvml'])

    def test_lxd_unreachable_is_one_line(self):
        rc, out, err = self._run(conf=self._write(
            'x.conf', '[lxd]\nendpoint = https://127.0.0.2:1\n'))
        self.assertEqual((2, ''), (rc, out))
        self.assertTrue(err.startswith('nova-lxd-gpus: '))
        self.assertIn('client_cert', err)

    def test_file_source_interface(self):
        source = gpus.FileSource('f.json', 'm1')
        self.assertEqual(['m1'], source.members())
        self.assertIsNone(source.nvml_facts('m1'))
        self.assertIsNone(gpus.Source().nvml_facts('m1'))
