"""The Nova compute driver: a thin surface over nova_lxd's modules.

One Nova compute node per LXD cluster member (nodename = member name).
"""

from oslo_log import log as logging

import os_resource_classes as orc

import nova.conf
from nova import exception
from nova.virt import driver
from nova.virt import hardware
import nova.virt.node

from nova_lxd import conf as lxd_conf  # noqa: F401 (registers [lxd])
from nova_lxd import config
from nova_lxd import inventory
from nova_lxd.lxd import client
from nova_lxd.lxd import members
from nova_lxd import state

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)


class LXDDriver(driver.ComputeDriver):
    """Nova instances as LXD system containers on LXD cluster members."""

    # Only what works is True; later features switch their flags on.
    capabilities = dict(driver.ComputeDriver.capabilities)

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi)
        self.lxd = None
        self._nodes = {}        # member name -> node UUID
        self._capacity = {}     # member name -> last capacity read

    # -- service and nodes ---------------------------------------------

    def init_host(self, host):
        self.lxd = client.LXD(CONF.lxd)
        managed = members.managed_members(
            CONF.lxd.members, host, self.lxd.members())
        fingerprint = self.lxd.certificate_fingerprint
        self._nodes = {m: members.node_uuid(fingerprint, m) for m in managed}
        # Nova refuses to restart a service that never wrote its local
        # node identity (compute_id); ours are per member, but write it.
        nova.virt.node.get_local_node_uuid()
        LOG.info('LXD %s (%s, LXD %s): managing member(s) %s',
                 self.lxd.endpoint,
                 'cluster' if self.lxd.clustered else 'standalone',
                 self.lxd.environment['server_version'], ', '.join(managed))

    def cleanup_host(self, host):
        self.lxd = None

    def get_available_nodes(self, refresh=False):
        return list(self._nodes)

    def get_nodenames_by_uuid(self, refresh=False):
        return {node_uuid: name for name, node_uuid in self._nodes.items()}

    def get_host_ip_addr(self):
        return CONF.my_ip

    def _read_capacity(self, nodename):
        resources = self.lxd.resources(nodename)
        capacity = inventory.member_capacity(
            resources, self.lxd.pool_resources(nodename))
        self._capacity[nodename] = capacity
        return resources, capacity

    def get_available_resource(self, nodename):
        if nodename not in self._nodes:
            return {}
        resources, capacity = self._read_capacity(nodename)
        return inventory.available_resource(
            nodename, self._nodes[nodename], resources, capacity,
            inventory.hypervisor_version(
                self.lxd.environment['server_version']))

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        # The resource tracker reads get_available_resource just before;
        # reuse that read instead of asking LXD again.
        capacity = self._capacity.get(nodename) or self._read_capacity(
            nodename)[1]
        ratios = self._get_allocation_ratios(
            provider_tree.data(nodename).inventory)
        reserved = {
            orc.VCPU: CONF.reserved_host_cpus,
            orc.MEMORY_MB: CONF.reserved_host_memory_mb,
            orc.DISK_GB: self._get_reserved_host_disk_gb_from_config(),
        }
        provider_tree.update_inventory(
            nodename, inventory.node_inventory(capacity, ratios, reserved))

    # -- instances -----------------------------------------------------

    def _our_instances(self):
        """Containers of this driver on the managed members: one request."""
        return [i for i in self.lxd.instances()
                if config.instance_uuid(i) and
                i.get('location', '') in self._nodes_or_standalone()]

    def _nodes_or_standalone(self):
        # A standalone LXD reports location "none" or "".
        if self.lxd.clustered:
            return self._nodes
        return set(self._nodes) | {'', 'none'}

    def list_instances(self):
        return [i['name'] for i in self._our_instances()]

    def list_instance_uuids(self):
        return [config.instance_uuid(i) for i in self._our_instances()]

    def get_info(self, instance, use_cache=True):
        found = self.lxd.instance_state(instance.name)
        if found is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return hardware.InstanceInfo(
            state=state.power_state_of(found['status_code']))
