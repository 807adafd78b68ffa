from nova import exception
from nova import objects
import testtools

from nova_lxd import constants
from nova_lxd import container
from nova_lxd.extra_specs import LXDSpecs

objects.register_all()
PLAIN = LXDSpecs()
PRIVILEGED = LXDSpecs(privileged=True)
NESTED = LXDSpecs(nesting=True)
# The defaults of [lxd]: nothing opened, isolated idmaps, 4096 processes.
CLOSED = container.Gates(max_processes=4096)


def flavor(extra_specs=None, root_gb=5):
    return objects.Flavor(name='m1.small', vcpus=2, memory_mb=512,
                          root_gb=root_gb, extra_specs=extra_specs or {})


def instance():
    inst = objects.Instance(uuid='c0ffee00-0000-4000-8000-000000000001',
                            project_id='p1', system_metadata={})
    inst.id = 42
    return inst


class InstanceBodyTest(testtools.TestCase):

    def body(self, specs=PLAIN, gates=CLOSED, **kwargs):
        fl = kwargs.pop('flavor', flavor())
        return container.instance_body(instance(), fl, specs, 'f1ng',
                                       'pool1', gates=gates, **kwargs)

    def test_flavor_becomes_limits_and_root_disk(self):
        body = self.body()
        self.assertEqual('instance-0000002a', body['name'])
        self.assertEqual({'type': 'image', 'fingerprint': 'f1ng'},
                         body['source'])
        self.assertEqual([], body['profiles'])
        self.assertEqual('2', body['config']['limits.cpu'])
        self.assertEqual('512MiB', body['config']['limits.memory'])
        self.assertEqual({'type': 'disk', 'path': '/', 'pool': 'pool1',
                          'size': '5GiB'}, body['devices']['root'])

    def test_identity_keys(self):
        cfg = self.body()['config']
        self.assertEqual('c0ffee00-0000-4000-8000-000000000001',
                         container.instance_uuid({'config': cfg}))
        self.assertEqual('p1', cfg[constants.PROJECT_KEY])

    def test_zero_root_gb_sets_no_size(self):
        body = self.body(flavor=flavor(root_gb=0))
        self.assertNotIn('size', body['devices']['root'])

    def test_unprivileged_isolated_and_bounded_by_default(self):
        cfg = self.body()['config']
        self.assertEqual(
            {'security.idmap.isolated': 'true'},
            {k: v for k, v in cfg.items()
             if k.startswith(('security.', 'raw.'))})
        self.assertEqual(('false', '4096'), (cfg['limits.memory.swap'],
                                             cfg['limits.processes']))

    def test_privileged_needs_the_operator(self):
        e = self.assertRaises(exception.InvalidInput, self.body, PRIVILEGED)
        self.assertIn('[lxd] allow_privileged', str(e))
        cfg = self.body(PRIVILEGED, container.Gates(
            allow_privileged=True))['config']
        self.assertEqual('true', cfg['security.privileged'])
        # A privileged container has no idmap to isolate.
        self.assertNotIn('security.idmap.isolated', cfg)

    def test_nesting_needs_the_operator(self):
        e = self.assertRaises(exception.InvalidInput, self.body, NESTED)
        self.assertIn('[lxd] allow_nesting', str(e))
        cfg = self.body(NESTED, container.Gates(allow_nesting=True))[
            'config']
        self.assertEqual('true', cfg['security.nesting'])

    def test_project_lists_narrow_what_is_allowed(self):
        only_p2 = container.Gates(
            allow_privileged=True, privileged_projects=frozenset(['p2']),
            allow_nesting=True, nesting_projects=frozenset(['p1', 'p2']))
        e = self.assertRaises(exception.InvalidInput, self.body, PRIVILEGED,
                              only_p2)
        self.assertIn('a privileged container (lxd:privileged), only for '
                      '[lxd] privileged_projects, not p1', str(e))
        self.assertEqual('true', self.body(NESTED, only_p2)['config'][
            'security.nesting'])
        # The list alone opens nothing.
        e = self.assertRaises(exception.InvalidInput, self.body, PRIVILEGED,
                              container.Gates(
                                  privileged_projects=frozenset(['p1'])))
        self.assertIn('[lxd] allow_privileged = False', str(e))

    def test_nvidia_runtime_needs_the_operator(self):
        specs = LXDSpecs(nvidia_runtime=True)
        e = self.assertRaises(exception.InvalidInput, self.body, specs)
        self.assertIn('[lxd] allow_nvidia_runtime = False', str(e))
        self.body(specs, container.Gates(allow_nvidia_runtime=True))

    def test_isolated_idmap_by_flavor_when_the_operator_shares(self):
        shared = container.Gates(isolated_idmap=False)
        self.assertNotIn('security.idmap.isolated',
                         self.body(PLAIN, shared)['config'])
        cfg = self.body(LXDSpecs(isolated_idmap=True), shared)['config']
        self.assertEqual('true', cfg['security.idmap.isolated'])

    def test_processes_and_swap_from_the_flavor(self):
        cfg = self.body(LXDSpecs(max_processes=100, memory_swap=True))[
            'config']
        self.assertEqual(('true', '100'), (cfg['limits.memory.swap'],
                                           cfg['limits.processes']))
        cfg = self.body(gates=container.Gates(max_processes=0))['config']
        self.assertNotIn('limits.processes', cfg)


class StartProblemTest(testtools.TestCase):
    """What a container is, against what the operator allows now."""

    def problem(self, gates, **config):
        return container.start_problem({'expanded_config': config}, 'p1',
                                       gates)

    def test_closed_gates_hold_at_start(self):
        self.assertIsNone(self.problem(CLOSED))
        self.assertIsNone(self.problem(CLOSED, **{
            'security.privileged': 'false'}))
        self.assertIn('[lxd] allow_privileged', self.problem(
            CLOSED, **{'security.privileged': 'true'}))
        self.assertIn('[lxd] allow_nesting', self.problem(
            CLOSED, **{'security.nesting': 'true'}))
        self.assertIn('allow_nvidia_runtime', self.problem(
            CLOSED, **{'nvidia.runtime': 'true'}))

    def test_open_gates_and_projects(self):
        gates = container.Gates(allow_privileged=True,
                                privileged_projects=frozenset(['p2']))
        self.assertIn('privileged_projects', self.problem(
            gates, **{'security.privileged': 'true'}))
        self.assertIsNone(self.problem(
            container.Gates(allow_privileged=True),
            **{'security.privileged': 'true'}))


class QuotaTest(testtools.TestCase):

    def test_disk_quotas(self):
        self.assertEqual(
            {'limits.read': '1048576B', 'limits.write': '200iops'},
            container.disk_limits({'quota:disk_read_bytes_sec': '1048576',
                                   'quota:disk_write_iops_sec': '200',
                                   'quota:disk_total_iops_sec': '0'}))

    def test_bytes_and_iops_of_one_direction_refused(self):
        e = self.assertRaises(exception.InvalidInput, container.disk_limits,
                              {'quota:disk_read_bytes_sec': '10',
                               'quota:disk_read_iops_sec': '10'})
        self.assertIn('not both', str(e))

    def test_bad_quota_value(self):
        e = self.assertRaises(exception.InvalidInput, container.disk_limits,
                              {'quota:disk_read_bytes_sec': 'fast'})
        self.assertIn('quota:disk_read_bytes_sec=fast', str(e))

    def test_vif_quotas_are_kilobytes_per_second(self):
        self.assertEqual({'limits.ingress': '8000kbit',
                          'limits.egress': '800kbit'},
                         container.nic_limits(
                             {'quota:vif_inbound_average': '1000',
                              'quota:vif_outbound_average': '100'}))

    def test_root_disk_carries_disk_quotas(self):
        body = container.instance_body(
            instance(), flavor({'quota:disk_total_bytes_sec': '5000'}),
            PLAIN, 'f', 'p')
        self.assertEqual('5000B', body['devices']['root']['limits.max'])


class PartsTest(testtools.TestCase):
    """What the rooms add reaches the body; nothing is given twice."""

    def body(self, *parts):
        return container.instance_body(instance(), flavor(), PLAIN, 'f',
                                       'pool1', parts)

    def test_devices_keys_and_profiles_of_every_part(self):
        body = self.body(
            container.Part(config={'user.meta-data': '{}'}),
            container.Part(devices={'nova-port-1': {'type': 'nic'}}),
            container.Part(devices={'ephemeral0': {'type': 'disk'}}),
            container.Part(devices={'nova-gpu-0': {'type': 'gpu'}},
                           profiles=('nova-gpu-0123456789ab',)))
        self.assertEqual({'root', 'nova-port-1', 'ephemeral0', 'nova-gpu-0'},
                         set(body['devices']))
        self.assertEqual('{}', body['config']['user.meta-data'])
        self.assertEqual(['nova-gpu-0123456789ab'], body['profiles'])
        self.assertEqual('c0ffee00-0000-4000-8000-000000000001',
                         container.instance_uuid(body))

    def test_a_device_or_key_given_twice_is_a_bug(self):
        for twice in (container.Part(devices={'root': {'type': 'disk'}}),
                      container.Part(config={'limits.cpu': '64'}),
                      container.Part(config={
                          constants.INSTANCE_UUID_KEY: 'someone'})):
            self.assertRaises(ValueError, self.body, twice)

    def test_check_refuses_before_anything_is_made(self):
        container.check(flavor(), PLAIN, 'p1', CLOSED)
        self.assertRaises(exception.InvalidInput, container.check,
                          flavor(), PRIVILEGED, 'p1', CLOSED)
        self.assertRaises(exception.InvalidInput, container.check,
                          flavor({'quota:disk_read_bytes_sec': 'fast'}),
                          PLAIN, 'p1', CLOSED)


# GET /1.0/instances/<name> of a container with one of the driver's GPUs,
# trimmed to what a resize reads.
FOUND = {
    'architecture': 'x86_64', 'description': '', 'ephemeral': False,
    'config': {'limits.cpu': '2', 'limits.memory': '512MiB',
               'volatile.base_image': 'f1ng',
               constants.INSTANCE_UUID_KEY: 'u1',
               constants.PROJECT_KEY: 'p1'},
    'devices': {
        'root': {'type': 'disk', 'path': '/', 'pool': 'pool1',
                 'size': '5GiB', 'limits.read': '10B'},
        'nova-port-1': {'type': 'nic', 'nictype': 'p2p'},
        'nova-gpu-0': {'type': 'gpu', 'pci': '0000:03:00.0'},
        'gpu': {'type': 'gpu', 'pci': '0000:04:00.0'}},
    'profiles': ['nova-gpu-0123456789ab', 'operators'],
    'status': 'Running',
}


class RehomedTest(testtools.TestCase):
    """The container on the member it moved to (migration.receive)."""

    def test_the_new_members_parts_and_the_flavors_keys(self):
        privileged = dict(FOUND, config=dict(
            FOUND['config'], **{'security.privileged': 'true'}))
        bigger = objects.Flavor(name='bigger', vcpus=4, memory_mb=1024,
                                root_gb=10, extra_specs={})
        here = [container.Part(devices={'nova-port-2': {'type': 'nic'}}),
                container.Part(devices={'nova-gpu-0': {
                    'type': 'gpu', 'pci': '0000:41:00.0'}},
                    profiles=['nova-gpu-abcdef012345'])]
        body = container.rehomed(privileged, bigger, here, CLOSED)
        self.assertEqual({
            'limits.cpu': '4', 'limits.memory': '1024MiB',
            'limits.memory.swap': 'false', 'limits.processes': '4096',
            'security.idmap.isolated': 'true',
            'volatile.base_image': 'f1ng',
            constants.INSTANCE_UUID_KEY: 'u1', constants.PROJECT_KEY: 'p1',
            constants.FLAVOR_KEY: 'bigger'}, body['config'])
        self.assertEqual({
            'root': {'type': 'disk', 'path': '/', 'pool': 'pool1',
                     'size': '10GiB', 'limits.read': '10B'},
            # The operator's own device stays; the old member's port and
            # card go.
            'gpu': {'type': 'gpu', 'pci': '0000:04:00.0'},
            'nova-port-2': {'type': 'nic'},
            'nova-gpu-0': {'type': 'gpu', 'pci': '0000:41:00.0'}},
            body['devices'])
        self.assertEqual(['operators', 'nova-gpu-abcdef012345'],
                         body['profiles'])


class ResizeTest(testtools.TestCase):

    def bigger(self, extra_specs=None):
        return objects.Flavor(name='bigger', vcpus=4, memory_mb=1024,
                              root_gb=10, extra_specs=extra_specs or {})

    def test_patch_changes_limits_security_and_the_root_disk_only(self):
        self.assertEqual(
            {'config': {'limits.cpu': '4', 'limits.memory': '1024MiB',
                        'limits.memory.swap': 'false',
                        'limits.processes': '4096',
                        'security.idmap.isolated': 'true',
                        # '': PATCH removes the key.
                        'security.privileged': '', 'security.nesting': ''},
             'devices': {'root': {'type': 'disk', 'path': '/',
                                  'pool': 'pool1', 'size': '10GiB',
                                  'limits.read': '10B'}}},
            container.resize_patch(FOUND, self.bigger(), CLOSED))

    def test_resize_away_from_privileged_drops_it_and_restarts(self):
        privileged = dict(FOUND, config=dict(
            FOUND['config'], **{'security.privileged': 'true'}))
        patch = container.resize_patch(privileged, self.bigger(), CLOSED)
        self.assertEqual('', patch['config']['security.privileged'])
        self.assertTrue(container.needs_restart(privileged,
                                                patch['config']))
        unprivileged = container.resize_patch(FOUND, self.bigger(), CLOSED)
        self.assertFalse(container.needs_restart(
            dict(FOUND, config=dict(FOUND['config'], **{'limits.cpu': '4'})),
            unprivileged['config']))
        body = container.resized(privileged, self.bigger(),
                                 container.Part(), CLOSED)
        self.assertNotIn('security.privileged', body['config'])

    def test_a_new_vcpu_count_restarts_a_new_memory_size_does_not(self):
        more_cpus = container.resize_patch(FOUND, self.bigger(), CLOSED)
        self.assertTrue(container.needs_restart(FOUND, more_cpus['config']))
        more_memory = container.resize_patch(FOUND, objects.Flavor(
            name='roomier', vcpus=2, memory_mb=1024, root_gb=10,
            extra_specs={}), CLOSED)
        self.assertEqual('1024MiB', more_memory['config']['limits.memory'])
        self.assertFalse(container.needs_restart(FOUND,
                                                 more_memory['config']))

    def test_resize_to_what_the_operator_closed_is_refused(self):
        self.assertRaises(exception.InvalidInput, container.resize_patch,
                          FOUND, self.bigger({'lxd:privileged': 'true'}),
                          CLOSED)
        only_p2 = container.Gates(allow_privileged=True,
                                  privileged_projects=frozenset(['p2']))
        e = self.assertRaises(exception.InvalidInput,
                              container.resize_patch, FOUND,
                              self.bigger({'lxd:privileged': 'true'}),
                              only_p2)
        self.assertIn('not p1', str(e))

    def test_new_disk_quotas_join_the_root(self):
        patch = container.resize_patch(
            FOUND, self.bigger({'quota:disk_write_iops_sec': '100'}),
            CLOSED)
        self.assertEqual('100iops', patch['devices']['root']['limits.write'])

    def test_gpus_replace_the_drivers_gpu_devices_and_profiles(self):
        gpus = container.Part(
            devices={'nova-gpu-0': {'type': 'gpu', 'pci': '0000:05:00.0'},
                     'nova-gpu-1': {'type': 'gpu', 'pci': '0000:06:00.0'}},
            profiles=('nova-gpu-ba9876543210',))
        body = container.resized(FOUND, self.bigger(), gpus, CLOSED)
        self.assertEqual(
            {'root', 'nova-port-1', 'gpu', 'nova-gpu-0', 'nova-gpu-1'},
            set(body['devices']))
        self.assertEqual('0000:05:00.0', body['devices']['nova-gpu-0']['pci'])
        # The operator's device and profile stay.
        self.assertEqual('0000:04:00.0', body['devices']['gpu']['pci'])
        self.assertEqual(['operators', 'nova-gpu-ba9876543210'],
                         body['profiles'])
        self.assertEqual(('4', '1024MiB', 'u1'), (
            body['config']['limits.cpu'], body['config']['limits.memory'],
            body['config'][constants.INSTANCE_UUID_KEY]))
        self.assertEqual('10GiB', body['devices']['root']['size'])
        # What it was read from is left as it was.
        self.assertEqual('2', FOUND['config']['limits.cpu'])
        self.assertIn('nova-gpu-0123456789ab', FOUND['profiles'])

    def test_no_gpus_takes_them_all_away(self):
        body = container.resized(FOUND, self.bigger(), container.Part(),
                                 CLOSED)
        self.assertEqual({'root', 'nova-port-1', 'gpu'},
                         set(body['devices']))
        self.assertEqual(['operators'], body['profiles'])

    def test_holds_gpus(self):
        self.assertTrue(container.holds_gpus(FOUND))
        self.assertFalse(container.holds_gpus(
            {'devices': {'gpu': {'type': 'gpu'}}}))
