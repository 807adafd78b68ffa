"""The console log is kept.

LXD hands a running container's out once; a stopped one's file is
emptied by the next start.
"""

from unittest import mock

from nova import exception
from nova import test
from oslo_utils.fixture import uuidsentinel as uuids

from nova_lxd import console
from nova_lxd.lxd import errors
from tests.unit import fakes

RUNNING, STOPPED = False, True


class ConsoleLogsTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.lxd = mock.Mock()
        self.logs = console.ConsoleLogs(self.lxd)
        self.instance = fakes.instance(
            uuid=uuids.server)

    def reads(self, *answers):
        self.lxd.console_log.side_effect = list(answers)

    def output(self):
        return self.logs.output(self.instance)

    def test_what_a_running_container_hands_out_is_kept(self):
        self.reads((b'booted\n', RUNNING), (b'', RUNNING),
                   (b'login: ', RUNNING))
        self.assertEqual(b'booted\n', self.output())
        self.assertEqual(b'booted\n', self.output())
        self.assertEqual(b'booted\nlogin: ', self.output())
        self.lxd.console_log.assert_called_with(
            self.instance.name, console.MAX_CONSOLE_BYTES)

    def test_a_stopped_containers_file_is_shown_once_and_kept_once(self):
        # Each read of a stopped container returns the whole file.
        self.reads((b'booted\n', RUNNING), (b'halting\n', STOPPED),
                   (b'halting\n', STOPPED), (b'booted\n', RUNNING))
        self.output()
        self.assertEqual(b'booted\nhalting\n', self.output())
        self.assertEqual(b'booted\nhalting\n', self.output())
        self.assertEqual(b'booted\nhalting\nbooted\n', self.output())

    def test_before_start_keeps_the_file_the_start_empties(self):
        self.reads((b'halting\n', STOPPED), (b'halting\n', STOPPED),
                   (b'booted\n', RUNNING))
        self.logs.before_start(self.instance)
        # The start failed: the same file again is not shown twice.
        self.assertEqual(b'halting\n', self.output())
        self.assertEqual(b'halting\nbooted\n', self.output())

    def test_a_file_never_read_before_its_start_is_kept(self):
        # Stopped and started again without a read in between: what the
        # driver read before the start is kept, then the new run's.
        self.reads((b'run 1\n', STOPPED), (b'run 2\n', STOPPED),
                   (b'run 3\n', RUNNING))
        self.logs.before_start(self.instance)
        self.logs.before_start(self.instance)
        self.assertEqual(b'run 1\nrun 2\nrun 3\n', self.output())

    def test_before_start_of_a_running_or_unread_container_keeps_nothing(self):
        self.reads((b'new\n', RUNNING), errors.LXDNotFound(reason='gone'),
                   errors.LXDError(reason='busy'), (b'', RUNNING))
        self.logs.before_start(self.instance)   # running: left for output
        self.logs.before_start(self.instance)
        self.logs.before_start(self.instance)   # never fails a start
        self.assertEqual(b'', self.output())

    def test_any_bytes_come_back_unchanged(self):
        raw = 'caf\u00e9 \u2026 '.encode() + b'\xff\xfe\x00\x1b[1mbold\r\n'
        self.reads((raw, RUNNING))
        self.assertEqual(raw, self.output())

    def test_only_the_last_100_kib_per_container(self):
        self.reads((b'a' * console.MAX_CONSOLE_BYTES, RUNNING),
                   (b'bcd', STOPPED))
        self.output()
        log = self.output()
        self.assertEqual(console.MAX_CONSOLE_BYTES, len(log))
        self.assertTrue(log.endswith(b'abcd'))

    def test_bounded_in_total_least_recently_read_dropped(self):
        logs = console.ConsoleLogs(self.lxd, per_container=10, total=25)
        one, two, three = (fakes.instance(id=i)
                           for i in (1, 2, 3))
        self.reads((b'1' * 10, RUNNING), (b'2' * 10, RUNNING),
                   (b'', RUNNING), (b'3' * 10, RUNNING))
        logs.output(one)
        logs.output(two)
        logs.output(one)    # two is now the least recently read
        logs.output(three)  # 30 bytes > 25: two goes
        self.assertEqual([one.name, three.name], list(logs._logs))
        self.assertEqual(20, sum(len(log.kept)
                                 for log in logs._logs.values()))

    def test_forget(self):
        self.reads((b'booted\n', RUNNING), (b'', RUNNING))
        self.output()
        self.logs.forget(self.instance)
        self.assertEqual(b'', self.output())

    def test_no_container(self):
        self.reads(errors.LXDNotFound(reason='gone'))
        self.assertRaises(exception.InstanceNotFound, self.output)
