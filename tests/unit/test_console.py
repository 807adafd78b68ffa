"""The console log is kept, as LXD hands each line out once."""

from unittest import mock

import fixtures
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
        self.lxd.console_log.side_effect = [b'booted\n', b'', b'halting\n']
        self.assertEqual(b'booted\n', self.logs.output(self.instance))
        self.assertEqual(b'booted\n', self.logs.output(self.instance))
        self.assertEqual(b'booted\nhalting\n',
                         self.logs.output(self.instance))
        self.lxd.console_log.assert_called_with(self.instance.name)

    def test_only_the_last_100_kib(self):
        self.lxd.console_log.side_effect = [b'a' * console.MAX_CONSOLE_BYTES,
                                            b'bcd']
        self.logs.output(self.instance)
        log = self.logs.output(self.instance)
        self.assertEqual(console.MAX_CONSOLE_BYTES, len(log))
        self.assertTrue(log.endswith(b'abcd'))

    def test_utf8_output_reaches_nova_as_bytes(self):
        # Nova's compute manager encodes text as latin-1 (a guest's UTF-8
        # made it fail) and decodes bytes as ASCII, replacing the rest.
        self.lxd.console_log.return_value = (
            '[  OK  ] Started \u2026\n'.encode())
        output = self.logs.output(self.instance)
        self.assertEqual(b'[  OK  ] Started \xe2\x80\xa6\n', output)

    def test_no_container(self):
        self.lxd.console_log.side_effect = errors.LXDNotFound(reason='gone')
        self.assertRaises(exception.InstanceNotFound, self.logs.output,
                          self.instance)

    def test_keep_reads_before_a_start_and_never_fails(self):
        self.lxd.console_log.side_effect = [b'first run\n',
                                            errors.LXDError(reason='x'),
                                            b'second run\n']
        self.logs.keep(self.instance)
        self.logs.keep(self.instance)
        self.assertEqual(b'first run\nsecond run\n',
                         self.logs.output(self.instance))

    def test_bounded_in_total_the_least_recent_forgotten_first(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.console.MAX_TOTAL_BYTES', 10))
        one, two, three = (fakes.instance(uuid=u) for u in (
            uuids.one, uuids.two, uuids.three))
        self.lxd.console_log.side_effect = [b'1111', b'2222', b'11',
                                            b'3333', b'', b'']
        for instance in (one, two, one, three):
            self.logs.output(instance)
        # one (6 bytes, read again) stays; two, read before, goes.
        self.assertEqual(b'111111', self.logs.output(one))
        self.assertEqual(b'', self.logs.output(two))
        self.assertLessEqual(self.logs._total, 10)

    def test_forgotten_with_its_server(self):
        self.lxd.console_log.return_value = b'secret\n'
        self.logs.output(self.instance)
        self.assertEqual(b'secret\n', self.logs.forget(self.instance))
        self.assertEqual(0, self.logs._total)
        self.assertEqual(b'', self.logs.forget(self.instance))
