"""What the installed wheel gives Nova (tox installs it), and that the
driver imports from a checkout too (as DevStack installs it)."""

from importlib import metadata
import os
import subprocess
import sys

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


class ImportTest(testtools.TestCase):

    def test_the_driver_imports_alone_from_a_checkout(self):
        # As DevStack installs it (pip -e): nothing imported before it.
        # os-vif refuses imports of its internals from outside its own
        # folder (site-packages), so a checkout shows what a wheel hides.
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        found = subprocess.run(
            [sys.executable, '-c',
             'import nova_lxd.driver, sys; print(sys.modules['
             '"nova_lxd.driver"].__file__)'],
            cwd=root, capture_output=True, text=True)
        self.assertEqual(0, found.returncode, found.stderr[-2000:])
        self.assertEqual(os.path.join(root, 'nova_lxd', 'driver.py'),
                         found.stdout.strip())
