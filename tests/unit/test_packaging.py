"""What the installed wheel gives Nova (tox installs it, not a checkout)."""

from importlib import metadata

import testtools


class WheelTest(testtools.TestCase):

    def test_only_the_loading_shim_is_installed_under_nova(self):
        files = metadata.files('nova-lxd-driver')
        self.assertIsNotNone(files, 'nova-lxd-driver is not installed')
        under_nova = sorted(str(f) for f in files
                            if str(f).startswith('nova/') and
                            not str(f).endswith('.pyc'))
        self.assertEqual(['nova/virt/lxd/__init__.py'], under_nova)

    def test_config_options_entry_point(self):
        entry_points = metadata.entry_points(group='oslo.config.opts')
        (ours,) = [e for e in entry_points if e.name == 'nova_lxd']
        (group, opts), = ours.load()()
        self.assertEqual('lxd', group.name)
        self.assertIn('endpoint', {o.name for o in opts})
