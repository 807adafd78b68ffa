"""Resize and migration: a container whose flavor (or member) changes.

Today a resize keeps the container on its member: it is checked before
anything changes, then the new flavor's limits, root disk, ephemeral disk
and GPUs are applied live to the running container; a revert applies the
old flavor the same way. Moving a container to another member is refused
(with the instance rolled back) until LXD's cluster move is wired in.
"""

import nova.conf
from nova import exception
from nova import objects
from nova.scheduler.client import report

from nova_lxd import container
from nova_lxd import extra_specs
from nova_lxd.gpu import devices as gpu_devices
from nova_lxd import storage

CONF = nova.conf.CONF


class Migrations(object):
    """Resizes of the driver's containers.

    ``lxd``: the driver's nova_lxd.lxd.client.LXD; ``disks``:
    storage.Disks; ``gpus``: gpu.devices.GPUs.
    """

    def __init__(self, lxd, disks, gpus):
        self.lxd = lxd
        self.disks = disks
        self.gpus = gpus

    @staticmethod
    def check(context, instance, flavor):
        """Refuse a move or resize this driver cannot do, before it starts.

        Raises InstanceFaultRollback, which puts the instance back as it
        was, with the reason in its fault.
        """
        migration = objects.Migration.get_by_id_and_instance(
            context, instance.migration_context.migration_id, instance.uuid)
        try:
            storage.check_resize(instance.flavor, flavor)
            container.check(flavor, extra_specs.lxd_specs(flavor.extra_specs),
                            instance.project_id, container.gates(CONF.lxd))
        except (exception.InvalidInput, exception.ValidationError) as e:
            raise exception.InstanceFaultRollback(
                inner_exception=exception.ResizeError(reason=str(e)))
        if migration.dest_node != migration.source_node:
            raise exception.InstanceFaultRollback(
                inner_exception=exception.MigrationPreCheckError(
                    reason='moving a container to another LXD member is '
                           'not supported yet; resize keeps it on %s'
                           % migration.source_node))

    def apply_flavor(self, instance, flavor, allocations):
        """Limits, root size, ephemeral disk and GPUs of ``flavor``, live.

        ``allocations``: the instance's allocations for ``flavor``. The
        cards the container holds of the allocated models stay, more are
        picked, the rest are taken away.
        """
        found = self.lxd.instance(instance.name)
        holding = container.holds_gpus(found)
        # The security keys too (within what the operator allows now).
        gates = container.gates(CONF.lxd)
        patch = container.resize_patch(found, flavor, gates)
        if holding or gpu_devices.wanted(allocations):
            specs = extra_specs.lxd_specs(flavor.extra_specs)
            with self.gpus.claimed(instance, specs, allocations,
                                   holding) as gpus:
                self.lxd.replace_instance(instance.name, container.resized(
                    found, flavor, gpus, gates))
            self.gpus.remove_unused_profiles()
        else:
            self.lxd.update_instance(instance.name, patch)
        if (found.get('status') == 'Running' and
                container.needs_restart(found, patch['config'])):
            # A container stays privileged (nested) until it starts again.
            self.lxd.change_state(instance.name, 'restart', force=True)
        self.disks.apply_flavor(instance, flavor)

    def revert(self, context, instance):
        """Apply the old flavor again (Nova put it back on the instance)."""
        # Nova gave the old flavor's allocations back to the instance.
        allocations = report.report_client_singleton().get_allocs_for_consumer(
            context, instance.uuid)['allocations']
        self.apply_flavor(instance, instance.flavor, allocations)
