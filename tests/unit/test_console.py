"""The console log is kept, as LXD hands each line out once."""

from unittest import mock

from nova import exception
from nova import test
from oslo_utils.fixture import uuidsentinel as uuids

from nova_lxd import console
from nova_lxd.lxd import errors
from tests.unit import fakes


class ConsoleLogsTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.lxd = mock.Mock()
        self.logs = console.ConsoleLogs(self.lxd)
        self.instance = fakes.instance(
            uuid=uuids.server)

    def test_what_was_read_is_kept(self):
        self.lxd.console_log.side_effect = ['booted\n', '', 'halting\n']
        self.assertEqual('booted\n', self.logs.output(self.instance))
        self.assertEqual('booted\n', self.logs.output(self.instance))
        self.assertEqual('booted\nhalting\n',
                         self.logs.output(self.instance))
        self.lxd.console_log.assert_called_with(self.instance.name)

    def test_only_the_last_100_kib(self):
        self.lxd.console_log.side_effect = ['a' * console.MAX_CONSOLE_BYTES,
                                            'bcd']
        self.logs.output(self.instance)
        log = self.logs.output(self.instance)
        self.assertEqual(console.MAX_CONSOLE_BYTES, len(log))
        self.assertTrue(log.endswith('abcd'))

    def test_no_container(self):
        self.lxd.console_log.side_effect = errors.LXDNotFound(reason='gone')
        self.assertRaises(exception.InstanceNotFound, self.logs.output,
                          self.instance)
