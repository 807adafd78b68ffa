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


class DiagnosticsTest(testtools.TestCase):

    def test_from_lxd_state(self):
        # GET /1.0/instances/<c>/state of a running busybox container
        # (LXD 5.0.2, test bed), trimmed to the fields used.
        lxd_state = {
            'status': 'Running', 'status_code': 103, 'processes': 2,
            'cpu': {'usage': 16110063},
            'memory': {'usage': 479232, 'usage_peak': 1236992},
            'network': {'lo': {'counters': {'bytes_received': 0,
                                            'bytes_sent': 0}}},
        }
        diags = state.diagnostics(lxd_state)
        self.assertEqual(16110063, diags['cpu_time_ns'])
        self.assertEqual(479232, diags['memory_bytes'])
        self.assertEqual(1236992, diags['memory_peak_bytes'])
        self.assertEqual(0, diags['lo_bytes_received'])
        self.assertEqual(2, diags['processes'])
