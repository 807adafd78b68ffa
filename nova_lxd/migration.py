"""Resize, cold migration and evacuation: a container whose flavor or member
changes.

On its member, a resize changes the running container live: the new
flavor's limits, root disk, ephemeral disk and GPUs; a revert applies the
old flavor the same way.

To another member (a cold migration, or a resize Placement put elsewhere)
the container moves with LXD's own cluster move, not live: the source's
nova-compute stops it, takes out what belongs to its member (the cards of
its GPUs, the block devices of its Cinder volumes, the device of its
ephemeral disk), disconnects the volumes on its host, moves the ephemeral
volume and then the container, which keeps its name and Nova's identity
keys. The destination's nova-compute gives it what its own member has:
cards picked from the allocations Placement made there, the Neutron ports
as bound to it (os-vif plugs them there), the volumes connected on its
host, the flavor's limits. A revert moves it back the same way with the
old flavor; the source unplugs its ports as soon as the container has
left (a confirm has nothing left to do there). A
nova-compute that restarted in the middle finds the container where LXD
says it is (Nova reverts a migration its source was restarted during).

Evacuation rebuilds a server of a lost member from its image on another
member. LXD still holds the lost member's container under the same name
(and refuses to rename or delete it while that member is offline), so the
new container gets the first free name of ``<instance name>-1``, ``-2``...,
kept in Nova's system metadata (container.name). When the lost member
comes back, its nova-compute destroys what is left there (Nova's
evacuated-instance clean-up); LXD does not start it (``boot.autostart``
is false on every container of the driver). A container whose root is on
a pool LXD can move off an offline member (ceph) is moved instead and
keeps its data.
"""

import contextlib

from nova.compute import task_states
import nova.conf
from nova import exception
from nova import objects
from nova.objects import fields
from nova.scheduler.client import report
from nova.virt import driver
from oslo_log import log as logging

from nova_lxd import constants
from nova_lxd import container
from nova_lxd import extra_specs
from nova_lxd.gpu import assignment
from nova_lxd.gpu import devices as gpu_devices
from nova_lxd.lxd import errors
from nova_lxd import storage

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# Pool drivers whose instance roots LXD moves off an offline member
# (the data is on shared storage, not on the member).
REMOTE_POOL_DRIVERS = ('ceph',)
# How many other names an evacuated container may try.
MAX_NAMES = 20
# LXD 5.0 moves containers live only through CRIU, for trivial ones.
NO_LIVE_MIGRATION = (
    'live migration is not supported by the LXD driver: LXD moves a '
    'running container only through CRIU, which cannot checkpoint real '
    'guests. Use a cold migration (openstack server migrate without '
    '--live-migration): the server stops, moves to the other member and '
    'starts again')


def _rollback(error_class, reason):
    """Refused before anything changed: Nova puts the instance back."""
    return exception.InstanceFaultRollback(
        inner_exception=error_class(reason=reason))


class Migrations(object):
    """Resizes and moves of the driver's containers.

    ``lxd``: the driver's nova_lxd.lxd.client.LXD; ``disks``:
    storage.Disks; ``vifs``: network.VIFs; ``gpus``: gpu.devices.GPUs.
    """

    def __init__(self, lxd, disks, vifs, gpus):
        self.lxd = lxd
        self.disks = disks
        self.vifs = vifs
        self.gpus = gpus

    # -- checks ----------------------------------------------------------

    def check(self, context, instance, flavor, network_info,
              block_device_info, local_member, host):
        """Refuse a move or resize this driver cannot do, before it starts.

        Returns the Migration. Raises InstanceFaultRollback, which puts
        the instance back as it was, with the reason in its fault.
        ``local_member``: the member of this nova-compute's host;
        ``host``: this service's host.
        """
        migration = objects.Migration.get_by_id_and_instance(
            context, instance.migration_context.migration_id, instance.uuid)
        try:
            storage.check_resize(instance.flavor, flavor)
            container.check(flavor, extra_specs.lxd_specs(flavor.extra_specs),
                            instance.project_id, container.gates(CONF.lxd))
        except (exception.InvalidInput, exception.ValidationError) as e:
            raise _rollback(exception.ResizeError, str(e))
        if migration.dest_node == migration.source_node:
            return migration
        # One service for several members: its host's os-brick and os-vif
        # reach only the member it runs on.
        wired = [what for what, there in (
            ('Cinder volumes', driver.block_device_info_get_mapping(
                block_device_info)),
            ('Neutron ports', network_info)) if there]
        if (migration.dest_compute == host and wired and
                migration.dest_node != local_member):
            raise _rollback(
                exception.MigrationPreCheckError,
                'the server has %s, which are connected on the host '
                'nova-compute runs on (LXD member %s), not on member %s: '
                'run a nova-compute on each member' % (
                    ' and '.join(wired), local_member or 'none',
                    migration.dest_node))
        return migration

    # -- Nova's steps, as the driver hands them over ----------------------

    def migrate(self, context, instance, flavor, network_info,
                block_device_info, local_member, host, stop, start):
        """Source (migrate_disk_and_power_off): check, stop, move.

        On its member the container keeps running (finish changes it
        live). To another member it is stopped (``stop``), moved, and its
        ports unplugged here; a failed move leaves it here, started again
        (``start``) if it ran, and Nova puts the instance back
        (InstanceFaultRollback).
        """
        migration = self.check(context, instance, flavor, network_info,
                               block_device_info, local_member, host)
        if migration.dest_node == migration.source_node:
            return
        where = self.lxd.locate(container.name(instance))
        running = where is not None and where['status'] == 'Running'
        stop()
        try:
            self.send(instance, migration.dest_node, block_device_info)
        except Exception as e:
            if running:
                start()
            raise _rollback(exception.MigrationError, str(e))
        # Before the destination plugs (as Nova's libvirt driver does):
        # where members share one Open vSwitch, a port name exists once,
        # and the source's port would keep the destination's plug away.
        if migration.source_compute != migration.dest_compute:
            self.vifs.unplug(instance, network_info)

    def finish(self, migration, instance, allocations, network_info,
               block_device_info, stop):
        """Destination (finish_migration): the new flavor, here.

        ``stop``: stops the container cleanly, for a change on its member
        that takes a start (apply_flavor); the caller starts it.
        """
        if migration.dest_node == migration.source_node:
            self.apply_flavor(instance, instance.flavor, allocations, stop)
        else:
            self.receive(instance, instance.flavor, allocations,
                         network_info, block_device_info)

    def finish_revert(self, context, instance, migration, provider_uuid,
                      network_info, block_device_info, stop):
        """Source (finish_revert_migration): the old flavor, back here.

        ``provider_uuid``: the resource provider of the instance's node;
        ``stop`` as for finish.
        """
        allocations = self.allocations_here(context, instance, migration,
                                            provider_uuid)
        if migration.dest_node == migration.source_node:
            self.revert(context, instance, stop, allocations)
        else:
            self.receive(instance, instance.flavor, allocations,
                         network_info, block_device_info)

    def shared_roots(self, member):
        """Whether containers' roots survive their member (ceph pools)."""
        return self.lxd.pool(member).get('driver') in REMOTE_POOL_DRIVERS

    # -- moves between members -------------------------------------------

    def send(self, instance, member, block_device_info):
        """Source: move the stopped container to ``member``.

        Its volumes are disconnected on this host first. On failure what
        was done is undone (the container back here with its devices,
        the volumes connected again) and the error raised.
        """
        name = container.name(instance)
        found = self.lxd.instance(name)
        self.disks.disconnect(instance, block_device_info)
        try:
            self.bring(instance, member, found)
        except Exception:
            LOG.exception('Moving the container to LXD member %s failed; '
                          'it stays on %s', member, instance.node,
                          instance=instance)
            self.bring(instance, instance.node)
            self.lxd.replace_instance(name, found)
            self.disks.reconnect(instance, block_device_info)
            raise

    def bring(self, instance, member, found=None):
        """Move the (stopped) container to ``member`` unless it is there.

        Wherever LXD says it is. Member-bound devices are taken out
        first; the ephemeral volume goes before the container (LXD checks
        a container's volumes where it arrives).
        """
        name = container.name(instance)
        where = self.lxd.locate(name)
        if where is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        source = where['location']
        if source != member:
            LOG.info('Moving container %s from LXD member %s to %s', name,
                     source, member, instance=instance)
            found = found or self.lxd.instance(name)
            if container.unbound(found) != found:
                self.lxd.replace_instance(name, container.unbound(found))
        pool = CONF.lxd.storage_pool
        volume = storage.ephemeral_volume_name(instance)
        held = self.lxd.volume_locations(pool, volume)
        if held and member not in held:
            self.lxd.move_volume(pool, volume, held[0], member,
                                 CONF.lxd.move_timeout)
        if source != member:
            self.lxd.move_instance(name, member, CONF.lxd.move_timeout)
            self.gpus.remove_unused_profiles()

    def receive(self, instance, flavor, allocations, network_info,
                block_device_info):
        """Destination: the container on this member, equipped for it.

        ``flavor``'s limits, root and ephemeral disk; the ports as bound
        here, the volumes connected on this host, GPUs picked from
        ``allocations`` (those of ``flavor`` on this member). The caller
        plugs the ports and starts it.
        """
        self.bring(instance, instance.node)
        self.disks.apply_flavor(instance, flavor)
        name = container.name(instance)
        found = self.lxd.instance(name)
        ports = container.Part(
            devices=self.vifs.devices(instance, network_info))
        ephemeral = container.Part(devices={
            constants.EPHEMERAL_DEVICE: storage.ephemeral_device(
                instance, CONF.lxd.storage_pool)} if flavor.ephemeral_gb
            else {})
        specs = extra_specs.lxd_specs(flavor.extra_specs)
        with self.disks.prepared(instance, block_device_info, 0) as volumes:
            with self.gpus.claimed(instance, specs, allocations) as gpus:
                self.lxd.replace_instance(name, container.rehomed(
                    found, flavor, [ports, ephemeral, volumes, gpus],
                    container.gates(CONF.lxd)))

    def release(self, context, instance, network_info, block_device_info):
        """Destination of a revert: give back what this member lent.

        The container stops and loses its cards and volume devices, the
        volumes are disconnected on this host and the ports unplugged
        here; the source then takes the container back
        (finish_revert_migration).
        """
        migration = objects.Migration.get_by_id_and_instance(
            context, instance.migration_context.migration_id, instance.uuid)
        if migration.source_node == migration.dest_node:
            return
        name = container.name(instance)
        where = self.lxd.locate(name)
        if where is not None and where['location'] == instance.node:
            if where['status'] != 'Stopped':
                self.lxd.change_state(name, 'stop', force=True)
            found = self.lxd.instance(name)
            if container.unbound(found) != found:
                self.lxd.replace_instance(name, container.unbound(found))
            self.gpus.remove_unused_profiles()
        self.disks.disconnect(instance, block_device_info)
        if migration.source_compute != migration.dest_compute:
            self.vifs.unplug(instance, network_info)

    # -- on the member ---------------------------------------------------

    def apply_flavor(self, instance, flavor, allocations, stop):
        """Limits, root size, ephemeral disk and GPUs of ``flavor``.

        Live, unless a key changes that acts at start (a new vCPU count,
        privileges: container.needs_restart): then a running container
        is stopped first (``stop``) and its caller starts it.
        ``allocations``: the instance's allocations for ``flavor``. The
        cards the container holds of the allocated models stay, more are
        picked, the rest are taken away.
        """
        name = container.name(instance)
        found = self.lxd.instance(name)
        holding = container.holds_gpus(found)
        # The security keys too (within what the operator allows now).
        gates = container.gates(CONF.lxd)
        patch = container.resize_patch(found, flavor, gates)
        if (found.get('status') == 'Running' and
                container.needs_restart(found, patch['config'])):
            stop()
        if holding or gpu_devices.wanted(allocations):
            specs = extra_specs.lxd_specs(flavor.extra_specs)
            try:
                with self.gpus.claimed(instance, specs, allocations,
                                       holding) as gpus:
                    self.lxd.replace_instance(name, container.resized(
                        found, flavor, gpus, gates))
            except assignment.GPUsTaken:
                # Another service took a card meanwhile: the old ones back.
                self.lxd.replace_instance(name, found)
                raise
            self.gpus.remove_unused_profiles()
        else:
            self.lxd.update_instance(name, patch)
        self.disks.apply_flavor(instance, flavor)

    @staticmethod
    def allocations_here(context, instance, migration, provider_uuid):
        """The allocations of the instance's flavor on this node.

        The instance's own, which Nova put back on the source for a
        revert; a source whose nova-compute restarted during the move is
        reverted before Placement is, and then holds them as the
        migration's.
        """
        placement = report.report_client_singleton()
        found = placement.get_allocs_for_consumer(
            context, instance.uuid)['allocations']
        if provider_uuid in found or migration is None:
            return found
        return placement.get_allocs_for_consumer(
            context, migration.uuid)['allocations'] or found

    # -- evacuation ------------------------------------------------------

    @staticmethod
    def evacuation(context, instance):
        """The Migration of an evacuation spawning here, else None."""
        if (instance.task_state != task_states.REBUILD_SPAWNING or
                not instance.obj_attr_is_set('migration_context') or
                instance.migration_context is None):
            return None
        migration = objects.Migration.get_by_id_and_instance(
            context, instance.migration_context.migration_id, instance.uuid)
        if migration.migration_type != fields.MigrationType.EVACUATION:
            return None
        return migration

    @contextlib.contextmanager
    def placed(self, context, instance):
        """The spawn in the ``with`` block on the member it belongs on.

        Nova evacuates with the instance's node still the lost member's
        (it sets the destination, with its compute id, once the rebuild is
        done): the block sees the destination, Nova the node it set.
        """
        migration = self.evacuation(context, instance)
        if migration is None:
            yield None
            return
        lost = instance.node
        changed = 'node' in instance.obj_what_changed()
        instance.node = migration.dest_node
        try:
            yield migration
        finally:
            instance.node = lost
            if not changed:
                instance.obj_reset_changes(['node'])

    def name_for_spawn(self, instance):
        """Name the container a spawn on ``instance.node`` will create.

        The instance's name, unless LXD holds it for a container of this
        instance on another member (one the instance was evacuated from:
        LXD lists an offline member's containers without their config):
        then the first free ``<name>-1``, ``-2``... Kept in Nova's system
        metadata.
        """
        taken = self.lxd.instance_names()
        name = instance.name
        for n in range(1, MAX_NAMES + 1):
            if name not in taken or not self._stale(instance, name):
                break
            name = '%s-%d' % (instance.name, n)
        if name == instance.name:
            instance.system_metadata.pop(constants.CONTAINER_NAME_META,
                                         None)
        else:
            LOG.warning('LXD holds the name %s for a container of this '
                        'server on another member; the new one is %s',
                        instance.name, name, instance=instance)
            instance.system_metadata[constants.CONTAINER_NAME_META] = name
        return name

    def _stale(self, instance, name):
        where = self.lxd.locate(name)
        if where is None or where['location'] == instance.node:
            return False
        config = where.get('config')
        return (config is None or
                config.get(constants.INSTANCE_UUID_KEY) == instance.uuid)

    def adopt(self, instance, allocations, network_info, block_device_info):
        """Evacuation: take a lost member's container if its root is shared.

        True when the container of the evacuated server is now on this
        member, data kept (a pool of driver ceph), and equipped here
        (receive); False when it must be rebuilt from its image.
        """
        if not self._adopt_shared(instance):
            return False
        self.receive(instance, instance.flavor, allocations, network_info,
                     block_device_info)
        return True

    def _adopt_shared(self, instance):
        name = container.name(instance)
        where = self.lxd.locate(name)
        if where is None or where['location'] == instance.node:
            return False
        if not self.shared_roots(instance.node):
            return False
        try:
            self.lxd.move_instance(name, instance.node,
                                   CONF.lxd.move_timeout)
        except errors.LXDError as e:
            LOG.warning('LXD cannot move container %s off member %s (%s); '
                        'it is rebuilt from its image', name,
                        where['location'], e, instance=instance)
            return False
        return True

    def revert(self, context, instance, stop, allocations=None):
        """Apply the old flavor again (Nova put it back on the instance)."""
        if allocations is None:
            # Nova gave the old flavor's allocations back to the instance.
            allocations = report.report_client_singleton(
            ).get_allocs_for_consumer(context, instance.uuid)['allocations']
        self.apply_flavor(instance, instance.flavor, allocations, stop)
