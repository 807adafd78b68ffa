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


class NovaContainersTest(testtools.TestCase):

    @staticmethod
    def listed(name, location, uuid=None, code=103):
        config = {'user.nova.instance_uuid': uuid} if uuid else {}
        return {'name': name, 'location': location, 'config': config,
                'status_code': code}

    def test_ours_on_our_members_with_their_power_state(self):
        listing = [self.listed('i-1', 'lxd1', 'u1'),
                   self.listed('i-2', 'lxd1', 'u2', code=102),
                   self.listed('not-nova', 'lxd1'),
                   self.listed('i-3', 'lxd2', 'u3')]
        self.assertEqual(
            {'i-1': ('u1', power_state.RUNNING),
             'i-2': ('u2', power_state.SHUTDOWN)},
            state.nova_containers(listing, ['lxd1'], clustered=True))

    def test_a_standalone_lxd_has_no_location(self):
        listing = [self.listed('i-1', '', 'u1'),
                   self.listed('i-2', 'none', 'u2')]
        self.assertEqual({'i-1', 'i-2'}, set(state.nova_containers(
            listing, ['host1'], clustered=False)))
        self.assertEqual({}, state.nova_containers(listing, ['host1'],
                                                   clustered=True))


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
