import testtools

from nova.compute import power_state

from nova_lxd import state


class PowerStateTest(testtools.TestCase):

    def test_lxd_status_codes(self):
        self.assertEqual(power_state.RUNNING, state.power_state_of(103))
        self.assertEqual(power_state.SHUTDOWN, state.power_state_of(102))
        self.assertEqual(power_state.PAUSED, state.power_state_of(110))
        self.assertEqual(power_state.CRASHED, state.power_state_of(112))
        self.assertEqual(power_state.NOSTATE, state.power_state_of(999))
