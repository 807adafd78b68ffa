"""tools/tempest's tempest.conf and summary (no cloud, no tempest)."""

import configparser
import io
import os

import subunit
import testtools

from tools import tempest_helper

ENV = {'OS_AUTH_URL': 'http://127.0.0.1:5000/v3', 'OS_USERNAME': 'admin',
       'OS_PASSWORD': 'pw', 'OS_PROJECT_NAME': 'admin',
       'OS_USER_DOMAIN_NAME': 'Default', 'OS_REGION_NAME': 'RegionOne'}


class TempestConfTest(testtools.TestCase):

    def test_the_plugins_flags_and_the_clouds_facts(self):
        conf = tempest_helper.tempest_conf(
            ENV, 'img', 'f1', 'f2', ['compute', 'image', 'network',
                                     'placement', 'identity'], 'cloud-net',
            compute_nodes=2)
        flags = configparser.ConfigParser(interpolation=None)
        flags.read(tempest_helper.FLAGS)
        self.assertTrue(flags.sections())
        for section in flags.sections():
            for key, value in flags.items(section):
                self.assertEqual(value, conf[section][key], key)
        self.assertEqual('False',
                         conf['compute-feature-enabled']['live_migration'])
        self.assertEqual(('img', 'img', 'f1', 'f2', 'cloud-net'), tuple(
            conf['compute'][k] for k in ('image_ref', 'image_ref_alt',
                                         'flavor_ref', 'flavor_ref_alt',
                                         'fixed_network_name')))
        self.assertEqual('2', conf['compute']['min_compute_nodes'])
        available = conf['service_available']
        self.assertEqual(('True', 'True', 'True', 'False', 'False'), tuple(
            available[k] for k in ('nova', 'glance', 'neutron', 'cinder',
                                   'swift')))
        self.assertEqual('http://127.0.0.1:5000/v3',
                         conf['identity']['uri_v3'])
        self.assertEqual('pw', conf['auth']['admin_password'])

    def test_no_network(self):
        conf = tempest_helper.tempest_conf(ENV, 'i', 'a', 'b', ['compute'])
        self.assertNotIn('fixed_network_name', conf['compute'])
        self.assertEqual('False', conf['service_available']['neutron'])
        self.assertEqual('1', conf['compute']['min_compute_nodes'])


def _stream(events):
    out = io.BytesIO()
    writer = subunit.StreamResultToBytes(out)
    for test_id, status, reason in events:
        writer.status(test_id=test_id, test_status='inprogress')
        if reason:
            writer.status(test_id=test_id, file_name='reason',
                          file_bytes=reason.encode(), eof=True,
                          mime_type='text/plain; charset=utf8')
        writer.status(test_id=test_id, test_status=status)
    out.seek(0)
    return out


class SummaryTest(testtools.TestCase):

    def test_counts_failures_and_skip_reasons(self):
        out = io.StringIO()
        code = tempest_helper.summary(_stream([
            ('t.a', 'success', None), ('t.b', 'success', None),
            ('t.c', 'fail', None),
            ('t.d', 'skip', 'Live migration is not available.'),
            ('t.e', 'skip', 'Live migration is not available.'),
            ('t.f', 'skip', 'Cinder is not available.')]), out)
        text = out.getvalue()
        self.assertEqual(1, code)
        self.assertIn('FAILED  t.c\n', text)
        self.assertIn('SKIPPED   2  Live migration is not available.', text)
        self.assertIn('SKIPPED   1  Cinder is not available.', text)
        self.assertEqual('2 passed, 1 failed, 3 skipped',
                         text.splitlines()[-1])

    def test_all_passed_is_zero(self):
        out = io.StringIO()
        self.assertEqual(0, tempest_helper.summary(
            _stream([('t.a', 'success', None)]), out))
        self.assertTrue(os.path.exists(tempest_helper.FLAGS))
