import datetime

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


class InstanceDiagnosticsTest(testtools.TestCase):

    # GET /1.0/instances/<c>?recursion=1 of a running busybox container
    # with a p2p nic (LXD 5.0.2, test bed), trimmed to the fields used.
    FOUND = {
        'status': 'Running', 'status_code': 103,
        'last_used_at': '2026-11-30T18:30:09.993173069Z',
        'expanded_config': {'limits.memory': '256MiB', 'limits.cpu': '1'},
        'state': {
            'status': 'Running', 'status_code': 103,
            'cpu': {'usage': 19286691},
            'memory': {'usage': 3 * 1024 * 1024 + 5},
            'disk': {'root': {'usage': 65536}},
            'network': {
                'eth0': {'type': 'broadcast', 'hwaddr': 'fa:16:3e:11:22:33',
                         'counters': {'bytes_received': 1500,
                                      'bytes_sent': 900,
                                      'packets_received': 12,
                                      'packets_sent': 8,
                                      'errors_received': 1,
                                      'errors_sent': 2,
                                      'packets_dropped_inbound': 3,
                                      'packets_dropped_outbound': 4}},
                'lo': {'type': 'loopback', 'hwaddr': '',
                       'counters': {'bytes_received': 0}},
            },
        },
    }
    NOW = datetime.datetime(2026, 11, 30, 18, 32, 10,
                            tzinfo=datetime.timezone.utc)

    def test_running_container(self):
        diags = state.instance_diagnostics(self.FOUND, False, self.NOW)
        self.assertEqual(
            {'state': 'running', 'driver': 'libvirt', 'hypervisor': 'lxd',
             'hypervisor_os': 'linux', 'uptime': 120,
             'config_drive': False, 'num_cpus': 1, 'num_nics': 1,
             'num_disks': 0},
            {f: getattr(diags, f) for f in (
                'state', 'driver', 'hypervisor', 'hypervisor_os', 'uptime',
                'config_drive', 'num_cpus', 'num_nics', 'num_disks')})
        self.assertEqual((256, 3), (diags.memory_details.maximum,
                                    diags.memory_details.used))
        self.assertEqual((None, 19286691), (diags.cpu_details[0].id,
                                            diags.cpu_details[0].time))
        nic = diags.nic_details[0]
        self.assertEqual(
            ('fa:16:3e:11:22:33', 1500, 12, 1, 3, 900, 8, 2, 4),
            (nic.mac_address, nic.rx_octets, nic.rx_packets, nic.rx_errors,
             nic.rx_drop, nic.tx_octets, nic.tx_packets, nic.tx_errors,
             nic.tx_drop))

    def test_stopped_container_without_a_memory_limit(self):
        found = {'status': 'Stopped', 'status_code': 102,
                 'last_used_at': '2026-11-30T18:30:09Z',
                 'expanded_config': {'limits.memory': '50%'},
                 'state': {'status': 'Stopped', 'status_code': 102,
                           'cpu': {'usage': 0}, 'memory': {'usage': 0},
                           'network': None}}
        diags = state.instance_diagnostics(found, True, self.NOW)
        self.assertEqual(('shutdown', None, True, 0),
                         (diags.state, diags.uptime, diags.config_drive,
                          diags.num_nics))
        self.assertEqual((None, 0), (diags.memory_details.maximum,
                                     diags.memory_details.used))
