import os

import fixtures
from oslo_config import generator
import testtools

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


class SampleConfigTest(testtools.TestCase):

    def test_sample_in_etc_is_current(self):
        out = os.path.join(self.useFixture(fixtures.TempDir()).path, 'conf')
        generator.main(['--config-file', os.path.join(
            ROOT, 'etc', 'nova-lxd-config-generator.conf'),
            '--output-file', out])
        with open(out) as fresh, open(os.path.join(
                ROOT, 'etc', 'nova-lxd.conf.sample')) as kept:
            self.assertEqual(kept.read(), fresh.read(),
                             'etc/nova-lxd.conf.sample is stale: run '
                             'tox -e genconfig')
