"""Each LXD member is one Nova node whose Placement inventory is what LXD
reports, whichever way the compute services are laid out."""

from tests.functional import base


class MemberProvidersTest(base.LXDServicesTestCase):

    def assertProvidersMatchLXD(self):
        providers = {p['name']: p for p in self._get_all_providers()}
        self.assertEqual(set(self.bed.members), set(providers))
        for member in self.bed.members:
            provider = providers[member]
            # A root provider per member, the node itself.
            self.assertEqual(provider['uuid'],
                             provider['root_provider_uuid'])
            inventory = self._get_provider_inventory(provider['uuid'])
            totals = {rc: inv['total'] for rc, inv in inventory.items()}
            self.assertEqual(self.bed.expected_capacity(member), totals)
        return {m: providers[m]['uuid'] for m in self.bed.members}

    def assertHypervisorsAreLXD(self):
        hypervisors = self.admin_api.api_get(
            'os-hypervisors/detail').body['hypervisors']
        self.assertEqual(set(self.bed.members),
                         {h['hypervisor_hostname'] for h in hypervisors})
        for hypervisor in hypervisors:
            self.assertEqual('lxd', hypervisor['hypervisor_type'])
            self.assertIsInstance(hypervisor['hypervisor_version'], int)
            self.assertEqual('up', hypervisor['state'])

    def test_one_service_for_every_member_over_https(self):
        self.use_https(members=['*'])
        compute = self.start_service('compute', host='compute1')
        uuids = self.assertProvidersMatchLXD()
        self.assertHypervisorsAreLXD()

        compute = self.restart_compute_service(
            compute, keep_hypervisor_state=False)
        self.assertEqual(uuids, self.assertProvidersMatchLXD())

    def test_one_service_per_member_over_unix_sockets(self):
        computes = {}
        for member in self.bed.members:
            # Default [lxd] members: the member named like the host.
            self.use_socket(member)
            computes[member] = self.start_service('compute', host=member)
        uuids = self.assertProvidersMatchLXD()
        self.assertHypervisorsAreLXD()

        # Restarts keep node identities (and Nova's compute_id check).
        first = self.bed.members[0]
        self.use_socket(first)
        self.restart_compute_service(computes[first],
                                     keep_hypervisor_state=False)
        self.assertEqual(uuids, self.assertProvidersMatchLXD())

    def test_allocation_ratios_and_reserved_reach_placement(self):
        self.flags(cpu_allocation_ratio=8.0, reserved_host_memory_mb=256,
                   reserved_host_disk_mb=1024)
        self.use_https()
        self.start_service('compute', host='compute1')
        for member in self.bed.members:
            inventory = self._get_provider_inventory(
                self._get_provider_uuid_by_name(member))
            self.assertEqual(8.0, inventory['VCPU']['allocation_ratio'])
            self.assertEqual(256, inventory['MEMORY_MB']['reserved'])
            self.assertEqual(1, inventory['DISK_GB']['reserved'])
