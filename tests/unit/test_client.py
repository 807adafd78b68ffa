"""The LXD door's own rules, with pylxd faked."""

from unittest import mock

from nova import test

from nova_lxd.lxd import client
from nova_lxd.lxd import errors


class ChangeStateTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.lxd = object.__new__(client.LXD)
        self.lxd.conf = mock.Mock(timeout=10)
        self.lxd._client = mock.MagicMock()
        self.lxd._run = mock.Mock()
        self.sleep = self.useFixture(test.fixtures.MockPatch(
            'time.sleep')).mock

    def test_waits_while_lxd_still_holds_the_instance_lock(self):
        busy = errors.LXDError(
            reason='Instance is busy running a "update" operation')
        self.lxd._run.side_effect = [busy, busy, None]
        self.lxd.change_state('c1', 'stop', force=True)
        self.assertEqual(3, self.lxd._run.call_count)

    def test_other_errors_and_lasting_busy_are_raised(self):
        self.lxd._run.side_effect = errors.LXDError(reason='no such thing')
        self.assertRaises(errors.LXDError, self.lxd.change_state, 'c1',
                          'start')
        self.assertEqual(1, self.lxd._run.call_count)
        self.lxd._run.reset_mock()
        self.lxd._run.side_effect = errors.LXDError(
            reason='Instance is busy running a "start" operation')
        self.assertRaises(errors.LXDError, self.lxd.change_state, 'c1',
                          'stop')
        self.assertEqual(client.BUSY_RETRIES + 1, self.lxd._run.call_count)
