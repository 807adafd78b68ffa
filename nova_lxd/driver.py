"""The Nova compute driver: a thin surface over nova_lxd's modules.

One Nova compute node per LXD cluster member (nodename = member name).
"""

import datetime
import itertools
import os
import time

from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import timeutils

import os_resource_classes as orc

from nova.compute import power_state
from nova.compute import task_states
from nova.compute import vm_states
import nova.conf
from nova import exception
from nova.virt import configdrive
from nova.virt import driver
from nova.virt import hardware
import nova.virt.node

from nova_lxd import cloud_init
from nova_lxd import conf as lxd_conf  # noqa: F401 (registers [lxd])
from nova_lxd import console
from nova_lxd import constants
from nova_lxd import container
from nova_lxd import extra_specs
from nova_lxd.gpu import assignment as gpu_assignment
from nova_lxd.gpu import devices as gpu_devices
from nova_lxd.gpu import options as gpu_options
from nova_lxd import imagecache
from nova_lxd.lxd import client
from nova_lxd.lxd import errors
from nova_lxd.lxd import members
from nova_lxd import migration
from nova_lxd import network
from nova_lxd import node
from nova_lxd import rescue
from nova_lxd import serial_console
from nova_lxd import state
from nova_lxd import storage

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# How long a bulk listing answers get_info(use_cache=True).
STATUS_CACHE_SECONDS = 10


class LXDDriver(driver.ComputeDriver):
    """Nova instances as LXD system containers on LXD cluster members."""

    # Only what works is True; later features switch their flags on.
    capabilities = dict(
        driver.ComputeDriver.capabilities,
        has_imagecache=True,
        # Glance images of disk_format raw (LXD tarballs, squashfs).
        supports_image_type_raw=True,
        # os-brick rescans; the container's unix-block device follows.
        supports_extend_volume=True,
        # Neutron ports through os-vif, live LXD nic add/remove.
        supports_attach_interface=True,
        # Rebuilt from its image on another member (or moved, on ceph).
        supports_evacuate=True,
    )

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi)
        self.lxd = None
        self.images = None
        self._nodes = {}        # member name -> node UUID
        self._reads = {}        # member name -> (resources, capacity)
        self._statuses = (0, {})   # (when, {container: power state})
        self._local_member = None   # the member of this host, if any
        self._host = None           # this service's [DEFAULT] host
        self._online = (0, {})      # (when, {member: LXD status})
        self.disks = None
        self.vifs = None
        self.gpus = None
        self.migrations = None
        self.console = None
        self.serial = None

    # -- service and nodes ---------------------------------------------

    def init_host(self, host):
        self.lxd = client.LXD(CONF.lxd)
        managed = members.managed_members(
            CONF.lxd.members, host, self.lxd.members())
        fingerprint = self.lxd.certificate_fingerprint
        self._nodes = {m: members.node_uuid(fingerprint, m) for m in managed}
        storage.check_pool(CONF.lxd.storage_pool,
                           self.lxd.pool(managed[0])['driver'],
                           CONF.lxd.allow_dir_pool)
        self._host = host
        # One service for several members: a cold migration stays on this
        # host (and moves between its members).
        self.capabilities = dict(self.capabilities,
                                 supports_migrate_to_same_host=len(
                                     managed) > 1)
        # Nova refuses to restart a service that never wrote its local
        # node identity (compute_id); ours are per member, but write it.
        nova.virt.node.get_local_node_uuid()
        try:
            gpu_config = gpu_options.from_conf(CONF)
        except gpu_options.GpuConfigError as e:
            raise errors.bad_config(str(e))
        # NVML and os-brick see this host: the member behind the socket.
        self._local_member = self.lxd.local_member
        self.images = imagecache.ImageCache(self.lxd)
        self.images.remove_stale_downloads()
        self.console = console.ConsoleLogs(self.lxd)
        self.serial = serial_console.SerialConsoles(self.lxd,
                                                    CONF.serial_console)
        self.disks = storage.Disks(self.lxd, lambda: self._local_member)
        self.gpus = gpu_devices.GPUs(self.lxd, gpu_config,
                                     self._local_member)
        self.vifs = network.VIFs(self.virtapi, self.lxd,
                                 self._local_member or host)
        self.migrations = migration.Migrations(self.lxd, self.disks,
                                               self.vifs, self.gpus)
        LOG.info('LXD %s (%s, LXD %s): managing member(s) %s',
                 self.lxd.endpoint,
                 'cluster' if self.lxd.clustered else 'standalone',
                 self.lxd.server_version, ', '.join(managed))

    def cleanup_host(self, host):
        self.serial.stop_all()

    def get_available_nodes(self, refresh=False):
        return list(self._nodes)

    def get_nodenames_by_uuid(self, refresh=False):
        return {node_uuid: name for name, node_uuid in self._nodes.items()}

    def get_host_ip_addr(self):
        return CONF.my_ip

    def _member_online(self, nodename):
        """Whether LXD calls a member online (asked once per 10 s)."""
        taken, statuses = self._online
        if time.monotonic() - taken >= STATUS_CACHE_SECONDS:
            statuses = self.lxd.members()
            self._online = (time.monotonic(), statuses)
        return statuses.get(nodename) == members.ONLINE

    def _read(self, nodename, fresh=True):
        """(LXD resources, capacity) of a member; or the last read.

        An offline member cannot be read: its last read stands (none at
        all: zero capacity).
        """
        fresh = fresh or nodename not in self._reads
        if fresh and not self._member_online(nodename):
            LOG.warning('LXD member %s is not online: its node takes no new '
                        'servers until it is back', nodename)
            fresh = False
        if fresh:
            resources = self.lxd.resources(nodename)
            self._reads[nodename] = (resources, node.member_capacity(
                resources, self.lxd.pool_resources(nodename)))
        return self._reads.get(nodename) or (None, node.no_capacity())

    def get_available_resource(self, nodename):
        if nodename not in self._nodes:
            return {}
        resources, capacity = self._read(nodename)
        return node.available_resource(
            nodename, self._nodes[nodename], resources, capacity,
            node.hypervisor_version(self.lxd.server_version))

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        # The resource tracker reads get_available_resource just before;
        # reuse that read instead of asking LXD again.
        resources, capacity = self._read(nodename, fresh=False)
        if not self._member_online(nodename):
            # What it held stays allocated; nothing more is given.
            provider_tree.update_inventory(nodename, node.reserved_all(
                provider_tree.data(nodename).inventory))
            return
        ratios = self._get_allocation_ratios(
            provider_tree.data(nodename).inventory)
        reserved = {
            orc.VCPU: CONF.reserved_host_cpus,
            orc.MEMORY_MB: CONF.reserved_host_memory_mb,
            orc.DISK_GB: self._get_reserved_host_disk_gb_from_config(),
        }
        provider_tree.update_inventory(
            nodename, node.node_inventory(capacity, ratios, reserved))
        self.gpus.update_providers(provider_tree, nodename, resources,
                                   allocations)

    # -- instances -----------------------------------------------------

    def _our_instances(self):
        """{container: (instance UUID, power state)} of ours: one request.

        The states are kept briefly, so that Nova's power-state sync (one
        list, then get_info per instance) costs one LXD request.
        """
        listing = self.lxd.instances()
        ours = state.nova_containers(listing, self._nodes,
                                     self.lxd.clustered)
        statuses = dict.fromkeys(state.unreachable(listing),
                                 power_state.NOSTATE)
        statuses.update((name, power) for name, (_, power) in ours.items())
        self._statuses = (time.monotonic(), statuses)
        return ours

    def list_instances(self):
        return list(self._our_instances())

    def list_instance_uuids(self):
        return [uuid for uuid, _ in self._our_instances().values()]

    def get_info(self, instance, use_cache=True):
        """The server's power state as LXD has it.

        NOSTATE while its member is offline (Nova's power-state sync then
        leaves the server as it is); SHUTDOWN when its container is gone
        (the sync marks it SHUTOFF; a delete still works).
        """
        # A rescued server is its rescue container.
        name = container.name(instance)
        if instance.vm_state == vm_states.RESCUED:
            name = constants.rescue_name(name)
        taken, statuses = self._statuses
        if (use_cache and name in statuses and
                time.monotonic() - taken < STATUS_CACHE_SECONDS):
            return hardware.InstanceInfo(state=statuses[name])
        # From the listing: it answers for an offline member's containers
        # too (without their config), where LXD would wait, then fail.
        found = self.lxd.locate(name)
        if found is not None and found.get('config') is None:
            return hardware.InstanceInfo(state=power_state.NOSTATE)
        if found is None:
            LOG.warning('Container %s is gone from LXD', name,
                        instance=instance)
            return hardware.InstanceInfo(state=power_state.SHUTDOWN)
        return hardware.InstanceInfo(state=state.power_state_from(found))

    def instance_exists(self, instance):
        """Its container is on a member of this service.

        From LXD's listing, which answers for an offline member's
        containers too (an evacuation asks while its source is lost).
        """
        found = self.lxd.locate(container.name(instance))
        return found is not None and found['location'] in self._nodes

    # -- lifecycle -----------------------------------------------------

    def _member_arch(self, nodename):
        return self._read(nodename, fresh=False)[1]['arch']

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        # An evacuation spawns on its destination (migration.py).
        with self.migrations.placed(context, instance) as evacuation:
            if evacuation and self.migrations.adopt(
                    instance, allocations, network_info, block_device_info):
                if power_on:
                    self.power_on(context, instance, network_info)
                return
            self._spawn(context, instance, image_meta, injected_files,
                        admin_password, allocations, network_info,
                        block_device_info, power_on)

    def _spawn(self, context, instance, image_meta, injected_files,
               admin_password, allocations, network_info,
               block_device_info, power_on):
        """Refuse what cannot be, make the disks, plug the ports, create.

        Each room (storage.Disks, network.VIFs, gpu.devices.GPUs,
        cloud_init) gives what it adds to the container; one pure call
        (container.instance_body) makes the body LXD creates.
        """
        try:
            specs = extra_specs.lxd_specs(instance.flavor.extra_specs)
        except exception.ValidationError as e:
            raise exception.InvalidInput(reason=str(e))
        ephemeral_gb = storage.check_disks(instance, block_device_info)
        container.check(instance.flavor, specs, instance.project_id,
                        container.gates(CONF.lxd))
        try:
            ports = container.Part(
                devices=self.vifs.devices(instance, network_info))
            # The ports are plugged as soon as Nova has them: Neutron's
            # agent wires them (the boot waits for it) while the rest is
            # made.
            with self.vifs.plugged(instance, network_info, power_on,
                                   lambda: self._delete(instance)):
                inst_md = cloud_init.instance_metadata_of(
                    instance, injected_files, admin_password, network_info)
                keys = container.Part(config=cloud_init.cloud_init_keys(
                    inst_md, network.interface_names(network_info),
                    self.lxd.server_version))
                # (files, mode): the config drive (root only), Nova's
                # injected files.
                files = [(cloud_init.config_drive_files(instance, inst_md),
                          '0400'), (dict(injected_files or ()), '0644')]
                with self.disks.prepared(instance, block_device_info,
                                         ephemeral_gb) as disks:
                    self._create(context, instance, image_meta, specs,
                                 allocations, [keys, ports, disks], files,
                                 power_on)
        except gpu_assignment.GPUAssignmentError as e:
            LOG.error('No GPUs for the container: %s', e, instance=instance)
            raise exception.BuildAbortException(
                instance_uuid=instance.uuid, reason=e.tenant_message)
        except (errors.LXDError, network.VIFError) as e:
            # LXD's own words reach the user's fault (without host paths:
            # errors.LXDError); no reschedule, which would replace them
            # with "Exceeded maximum number of retries".
            raise exception.BuildAbortException(
                instance_uuid=instance.uuid, reason=str(e))

    def _create(self, context, instance, image_meta, specs, allocations,
                parts, files, power_on):
        fingerprint = self.images.ensure(
            context, image_meta, self._member_arch(instance.node),
            instance.flavor.root_gb)
        name = self.migrations.name_for_spawn(instance)
        try:
            # Cards are picked and taken (created) under the member's lock.
            self.gpus.created(
                instance, specs, allocations,
                lambda gpus: self.lxd.create_instance(container.instance_body(
                    instance, instance.flavor, specs, fingerprint,
                    CONF.lxd.storage_pool, parts + [gpus],
                    container.gates(CONF.lxd)), instance.node),
                lambda: self._delete(instance))
            for found, mode in files:
                if found:
                    self.lxd.push_files(name, found, mode=mode)
            if power_on:
                self.lxd.change_state(name, 'start')
        except Exception:
            with excutils.save_and_reraise_exception():
                # Nothing of a failed spawn stays in LXD.
                try:
                    self._delete(instance)
                except errors.LXDError as e:
                    LOG.error('The failed spawn\'s container %s could not '
                              'be deleted (%s); deleting the server does',
                              name, e, instance=instance)

    def _manages(self, member):
        return member in self._nodes or (
            not self.lxd.clustered and member in state.STANDALONE_LOCATIONS)

    def _delete(self, instance):
        """Stop hard and delete its container; gone already is no error."""
        self.lxd.delete_owned(container.name(instance),
                              constants.INSTANCE_UUID_KEY, instance.uuid)

    def _delete_rescue(self, instance):
        self.lxd.delete_owned(constants.rescue_name(container.name(instance)),
                              constants.RESCUE_OF_KEY, instance.uuid)

    def _delete_everywhere(self, instance):
        """Delete the instance's containers where LXD says they are.

        Only on this service's members, unless Nova says the instance is
        this service's: then on any member that is online (a move may
        have stopped half-way). A server evacuated from here keeps its
        new container on another member. The members whose containers
        went (and the instance's own) are returned, for its disks.
        """
        ours = instance.host == self._host
        cleaned = {instance.node} if ours else set()
        for found in self.lxd.instances_of(instance.uuid):
            member = found['location']
            if not (ours or self._manages(member)):
                LOG.info('Container %s on member %s is not this service\'s; '
                         'left', found['name'], member, instance=instance)
                continue
            key = (constants.RESCUE_OF_KEY if constants.RESCUE_OF_KEY in
                   found['config'] else constants.INSTANCE_UUID_KEY)
            self.lxd.delete_owned(found['name'], key, instance.uuid)
            cleaned.add(member)
        return cleaned

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        if instance.task_state == task_states.RESIZE_REVERTING:
            # Nova destroys the resized guest before reverting: a resize on
            # the member keeps its container, which finish_revert_migration
            # sizes back; a move gives back this member's share.
            self.migrations.release(context, instance, network_info,
                                    block_device_info)
            return
        self.cleanup(context, instance, network_info, block_device_info,
                     destroy_disks)
        self.gpus.remove_unused_profiles()

    def cleanup(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, migrate_data=None, destroy_vifs=True,
                destroy_secrets=True):
        members = self._delete_everywhere(instance)
        self.serial.forget(instance)
        self.console.forget(instance)
        if destroy_disks:
            self.disks.remove(instance, block_device_info, members)
        if destroy_vifs:
            self.vifs.unplug(instance, network_info)

    def _change_state(self, instance, action, **kwargs):
        if action == 'start':
            self.console.before_start(instance)
        try:
            self.lxd.change_state(container.name(instance), action,
                                  **kwargs)
        except errors.LXDNotFound:
            raise exception.InstanceNotFound(instance_id=instance.uuid)

    def _start(self, instance):
        """Start the container, unless the gates refuse it."""
        self._refuse_start(instance)
        self._change_state(instance, 'start')

    def _refuse_start(self, instance):
        """InstancePowerOnFailure if the gates refuse the container.

        The operator may no longer allow what it is (privileged, nested,
        NVIDIA's hook).
        """
        try:
            found = self.lxd.instance(container.name(instance))
        except errors.LXDNotFound:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        problem = container.start_problem(found, instance.project_id,
                                          container.gates(CONF.lxd))
        if problem:
            raise exception.InstancePowerOnFailure(reason=problem)

    def _running(self, instance):
        # From LXD, not the power sync's listing of up to
        # STATUS_CACHE_SECONDS ago: a container that stopped since (a
        # shelve's clean stop before its offload) is not stopped again,
        # which LXD refuses ("The instance is already stopped").
        return self.get_info(
            instance, use_cache=False).state == power_state.RUNNING

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None, share_info=None):
        # A stop and a start, not LXD's restart: the ports are plugged
        # again in between (VIFs.replug), and the console log the stopped
        # container leaves is read before the start empties it. A soft
        # reboot is a clean shutdown, forced after the timeout (power_off).
        # A container the gates now refuse is refused before it stops.
        self._refuse_start(instance)
        if reboot_type == 'SOFT':
            self.power_off(instance,
                           CONF.reboot_timeout or CONF.shutdown_timeout)
        else:
            self.power_off(instance)
        self.vifs.replug(instance, network_info)
        self._start(instance)

    def power_off(self, instance, timeout=0, retry_interval=0):
        self.serial.stop(instance)
        if not self._running(instance):
            return
        if timeout:
            try:
                self._change_state(instance, 'stop', timeout=timeout)
                return
            except errors.LXDError as e:
                LOG.warning('Clean shutdown failed within %ss (%s); '
                            'stopping hard', timeout, e, instance=instance)
        self._change_state(instance, 'stop', force=True)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        if not self._running(instance):
            # The start makes new host ends (and after a member reboot
            # what os-vif made is gone): plug again.
            self.vifs.replug(instance, network_info)
            self._start(instance)

    def pause(self, instance):
        self._change_state(instance, 'freeze')

    def unpause(self, instance):
        self._change_state(instance, 'unfreeze')

    # A container cannot be written to disk and restored here (no CRIU):
    # suspend freezes it like pause, which keeps its memory on the member.
    def suspend(self, context, instance):
        self._change_state(instance, 'freeze')

    def resume(self, context, instance, network_info, block_device_info=None,
               share_info=None):
        self._change_state(instance, 'unfreeze')

    def rescue(self, context, instance, network_info, image_meta,
               rescue_password, block_device_info, share_info):
        """Stop the server; boot the rescue image with its root mounted.

        The original root is at /mnt/original-root in the rescue
        container (nova_lxd.rescue); the original container is left as it
        was. A rescue that fails or is refused removes what it made and
        starts the original again.
        """
        self.power_off(instance, CONF.shutdown_timeout)
        try:
            found = self.lxd.instance(container.name(instance))
            pool = self.lxd.pool(instance.node,
                                 found['devices']['root']['pool'])
            root = rescue.root_path(instance, found, pool, CONF.lxd.project)
            fingerprint = self.images.ensure(
                context, image_meta, self._member_arch(instance.node),
                instance.flavor.root_gb)
            self.lxd.create_instance(rescue.body(
                instance, instance.flavor, found, fingerprint, pool['name'],
                root, container.gates(CONF.lxd)), instance.node)
            self.lxd.change_state(
                constants.rescue_name(container.name(instance)), 'start')
        except Exception:
            with excutils.save_and_reraise_exception():
                self._delete_rescue(instance)
                try:
                    self.power_on(context, instance, network_info)
                except Exception:
                    LOG.exception('The server could not be started again '
                                  'after its rescue failed',
                                  instance=instance)

    def unrescue(self, context, instance):
        # Nova gives unrescue no network_info: the instance's info cache
        # holds it. Its ports are plugged again, as at every start.
        self._delete_rescue(instance)
        self.power_on(context, instance, instance.get_network_info())

    def resume_state_on_host_boot(self, context, instance, network_info,
                                  share_info, block_device_info=None):
        self.disks.reconnect(instance, block_device_info)
        self.power_on(context, instance, network_info, block_device_info)

    # -- network -------------------------------------------------------

    def plug_vifs(self, instance, network_info):
        self.vifs.plug(instance, network_info)

    def unplug_vifs(self, instance, network_info):
        self.vifs.unplug(instance, network_info)

    def attach_interface(self, context, instance, image_meta, vif):
        self.vifs.attach(instance, vif)

    def detach_interface(self, context, instance, vif):
        self.vifs.detach(instance, vif)

    def manage_image_cache(self, context, all_instances):
        """Remove imported Glance images that no container uses.

        Nova's [image_cache] options apply: remove_unused_base_images, and
        remove_unused_original_minimum_age_seconds as the unused age.
        """
        if CONF.image_cache.remove_unused_base_images:
            self.images.prune(
                max_unused_age_seconds=CONF.image_cache
                .remove_unused_original_minimum_age_seconds)

    # -- volumes ---------------------------------------------------------

    # The names of a server's disks are the driver's (storage): never the
    # request's or the image's, which LXC would follow on the host.

    def default_root_device_name(self, instance, image_meta, root_bdm):
        return storage.ROOT_DEVICE_NAME

    def default_device_names_for_instance(self, instance, root_device_name,
                                          *block_device_lists):
        storage.name_devices(instance, itertools.chain(*block_device_lists))

    def get_device_name_for_instance(self, instance, bdms, block_device_obj):
        return storage.device_name_for(instance, bdms, block_device_obj)

    def get_volume_connector(self, instance):
        return storage.connector_properties()

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None, device_type=None, encryption=None):
        self.disks.attach(instance, connection_info, mountpoint, encryption)

    def detach_volume(self, context, connection_info, instance, mountpoint,
                      encryption=None):
        if instance.host != self._host:
            # An evacuation to here: the volume was on the lost host.
            return
        self.disks.detach(instance, connection_info)

    def extend_volume(self, context, connection_info, instance,
                      requested_size):
        return self.disks.extend(instance, connection_info)

    # -- console and diagnostics ---------------------------------------

    def get_console_output(self, context, instance):
        return self.console.output(instance)

    def get_serial_console(self, context, instance):
        """The instance's port for nova-serialproxy (serial_console)."""
        name = container.name(instance)
        if instance.vm_state == vm_states.RESCUED:
            name = constants.rescue_name(name)
        found = self.lxd.instance_state(name)
        if found is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        if state.power_state_from(found) != power_state.RUNNING:
            raise exception.InstanceNotReady(instance_id=instance.uuid)
        return self.serial.console(instance, name)

    def get_diagnostics(self, instance):
        found = self.lxd.instance_state(container.name(instance))
        if found is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return state.diagnostics(found)

    def get_instance_diagnostics(self, instance):
        try:
            found = self.lxd.instance_with_state(container.name(instance))
        except errors.LXDNotFound:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return state.instance_diagnostics(
            found, configdrive.required_by(instance),
            timeutils.utcnow(with_timezone=True))

    def get_host_uptime(self):
        """This host's uptime: the member's behind a local socket.

        LXD reports no member's uptime; over HTTPS the member may be
        another machine.
        """
        if self._local_member is None:
            raise NotImplementedError(
                'LXD reports no uptime of a remote member')
        with open('/proc/uptime') as f:
            seconds = float(f.read().split()[0])
        return node.uptime_text(datetime.datetime.now(), seconds,
                                os.getloadavg())

    # -- snapshot --------------------------------------------------------

    def snapshot(self, context, instance, image_id, update_task_state):
        self.images.snapshot(context, instance, image_id, update_task_state)

    # -- resize and migration ---------------------------------------------

    def migrate_disk_and_power_off(self, context, instance, dest,
                                   flavor, network_info,
                                   block_device_info=None,
                                   timeout=0, retry_interval=0):
        self.migrations.migrate(
            context, instance, flavor, network_info, block_device_info,
            self._local_member, self._host,
            stop=lambda: self.power_off(instance, timeout),
            start=lambda: self.power_on(context, instance, network_info))
        return ''

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None, power_on=True,
                         share_info=None):
        self.migrations.finish(migration, instance, allocations,
                               network_info, block_device_info,
                               stop=self._resize_stop(instance))
        if power_on:
            self.power_on(context, instance, network_info)

    def _resize_stop(self, instance):
        """A clean stop, for a resize on the member that takes a start."""
        return lambda: self.power_off(instance, CONF.shutdown_timeout)

    def confirm_migration(self, context, migration, instance, network_info):
        """Nothing left on the source: its ports went with the move."""

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info=None,
                                power_on=True, share_info=None):
        self.migrations.finish_revert(
            context, instance, migration, self._nodes.get(instance.node),
            network_info, block_device_info,
            stop=self._resize_stop(instance))
        if power_on:
            self.power_on(context, instance, network_info)

    def instance_on_disk(self, instance):
        """Whether an evacuation finds the server's root (pools on ceph)."""
        return self.migrations.shared_roots(
            next(m for m in self._nodes if self._member_online(m)))

    # -- live migration: refused before anything changes -----------------

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info, dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        raise exception.MigrationPreCheckError(
            reason=migration.NO_LIVE_MIGRATION)

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data, block_device_info=None):
        raise exception.MigrationPreCheckError(
            reason=migration.NO_LIVE_MIGRATION)

    def cleanup_live_migration_destination_check(self, context,
                                                 dest_check_data):
        pass
