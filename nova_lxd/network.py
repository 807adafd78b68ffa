"""Neutron ports: os-vif plugging on the member, LXD ``nic`` devices.

os-vif wires the host side the way Neutron's agents expect; LXD makes the
veth pair whose host end carries the name Neutron gave the port (its
``devname``, tapXXX):

* OVS hybrid plug (iptables firewall): os-vif makes the per-port Linux
  bridge qbrXXX and links it to the OVS bridge; LXD's ``bridged`` nic puts
  tapXXX on qbrXXX.
* Native OVS and OVN: os-vif makes the OVS port tapXXX with Neutron's
  external-ids (iface-id, attached-mac, vm-uuid); LXD's ``p2p`` nic creates
  the tapXXX device each time the container starts, and OVS adopts it.
  LXD itself never touches OVS.

Linux bridge ports (``bridge``) are gone from Nova 34 and os-vif 5, and
SR-IOV, vhost-user and other VIF types cannot reach a container: they are
refused before anything is created.
"""

import contextlib

import nova.conf
from nova import exception
from nova.network import model as network_model
from nova.network import os_vif_util
import os_vif
from os_vif import exception as osv_exception
from os_vif import objects as osv_objects
from oslo_log import log as logging
from oslo_utils import excutils

from nova_lxd import constants
from nova_lxd import container
from nova_lxd.lxd import errors

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)
# os-vif's objects, which Nova's converter builds (os_vif.initialize()
# also loads the plugins; that is for the service, at init_host).
osv_objects.register_all()

# The name of the nth interface inside the container.
INTERFACE_NAME = 'eth%d'


class VIFError(exception.NovaException):
    msg_fmt = '%(reason)s'


def device_name(vif):
    return constants.PORT_DEVICE_PREFIX + vif['id']


def _refuse(vif, why):
    return VIFError(reason='Neutron port %s (binding:vif_type %s) cannot be '
                           'given to an LXD container: %s' % (
                               vif['id'], vif['type'], why))


def osvif_vif(vif):
    """Nova's own os-vif object for a port LXD can take.

    For native OVS, os-vif is asked to create the OVS port itself (as
    libvirt would when it starts the guest): LXD's p2p nic only makes the
    device.
    """
    if vif['type'] != network_model.VIF_TYPE_OVS:
        raise _refuse(vif, 'only Open vSwitch ports (ML2/OVS, OVN: '
                           'binding:vif_type ovs) are supported')
    vnic_type = vif.get('vnic_type', network_model.VNIC_TYPE_NORMAL)
    if vnic_type != network_model.VNIC_TYPE_NORMAL:
        raise _refuse(vif, 'binding:vnic_type %s needs a device passed '
                           'through; containers get veth interfaces, use '
                           'vnic_type normal' % vnic_type)
    obj = os_vif_util.nova_to_osvif_vif(vif)
    if isinstance(obj, osv_objects.vif.VIFBridge):
        return obj
    if isinstance(obj, osv_objects.vif.VIFOpenVSwitch):
        obj.port_profile.create_port = True
        return obj
    raise _refuse(vif, 'os-vif gives %s, which has no LXD nic' %
                  type(obj).__name__)


def nic_device(vif, obj, interface, extra_specs):
    """The LXD nic device of a port, tied to what os-vif plugged.

    ``interface`` is its name inside the container; ``extra_specs`` are
    the flavor's (``quota:vif_*`` become the nic's limits).
    """
    if isinstance(obj, osv_objects.vif.VIFBridge):
        device = {'nictype': 'bridged', 'parent': obj.bridge_name}
    else:
        device = {'nictype': 'p2p'}
    device.update({'type': 'nic', 'name': interface,
                   'host_name': obj.vif_name, 'hwaddr': vif['address']})
    mtu = vif['network'].get_meta('mtu')
    if mtu:
        device['mtu'] = str(mtu)
    device.update(container.nic_limits(extra_specs))
    return device


def _interfaces_in_use(devices):
    return {d.get('name') for d in devices.values() if d.get('type') == 'nic'}


def free_interface(devices):
    """The first ethN no nic device of ``devices`` names."""
    used = _interfaces_in_use(devices)
    n = 0
    while INTERFACE_NAME % n in used:
        n += 1
    return INTERFACE_NAME % n


def interface_names(network_info):
    """{port id: interface name in the container}: eth0, eth1... in order."""
    return {vif['id']: INTERFACE_NAME % n
            for n, vif in enumerate(network_info or ())}


def nic_devices(network_info, extra_specs):
    """{LXD device name: nic} for all ports, named by interface_names.

    Raises VIFError for a port a container cannot take, before anything
    is plugged or created.
    """
    names = interface_names(network_info)
    return {device_name(vif): nic_device(vif, osvif_vif(vif),
                                         names[vif['id']], extra_specs)
            for vif in network_info or ()}


def plugged_events(network_info):
    """The network-vif-plugged events Neutron has yet to send.

    As Nova's libvirt driver does: only for ports not already active.
    """
    return [('network-vif-plugged', vif['id'])
            for vif in network_info or () if vif.get('active', True) is False]


class VIFs(object):
    """Plugging through os-vif on the member nova-compute runs on."""

    def __init__(self, virtapi, lxd, local_member):
        os_vif.initialize()
        self.virtapi = virtapi
        self.lxd = lxd
        self.local_member = local_member

    def check_member(self, instance, network_info):
        """os-vif plugs on this host: the container must be on its member."""
        if network_info and instance.node != self.local_member:
            raise VIFError(
                reason='Neutron ports are plugged on the host nova-compute '
                       'runs on (LXD member %s), but the instance is on '
                       'member %s: run a nova-compute on each member for '
                       'networked servers ([lxd] members)' % (
                           self.local_member, instance.node))

    def devices(self, instance, network_info):
        self.check_member(instance, network_info)
        return nic_devices(network_info, instance.flavor.extra_specs)

    def plug(self, instance, network_info):
        info = os_vif_util.nova_to_osvif_instance(instance)
        for vif in network_info or ():
            try:
                os_vif.plug(osvif_vif(vif), info)
            except osv_exception.ExceptionBase as e:
                raise VIFError(reason='os-vif could not plug Neutron port '
                                      '%s: %s' % (vif['id'], e))

    def unplug(self, instance, network_info):
        """Unplug every port; one failing does not keep the others."""
        info = os_vif_util.nova_to_osvif_instance(instance)
        for vif in network_info or ():
            try:
                obj = osvif_vif(vif)
            except VIFError:
                continue    # refused at spawn: never plugged
            try:
                os_vif.unplug(obj, info)
            except Exception as e:
                LOG.warning('Unplugging port %s failed: %s', vif['id'], e,
                            instance=instance)

    def attach(self, instance, vif):
        """Plug a port and add its nic to the container, live."""
        try:
            devices = self.lxd.instance(container.name(instance))['devices']
            self.check_member(instance, [vif])
            device = nic_device(vif, osvif_vif(vif), free_interface(devices),
                                instance.flavor.extra_specs)
            self.plug(instance, [vif])
        except (errors.LXDError, VIFError) as e:
            LOG.error('Cannot attach port %s: %s', vif['id'], e,
                      instance=instance)
            raise exception.InterfaceAttachFailed(instance_uuid=instance.uuid)
        try:
            self.lxd.update_instance(container.name(instance), {
                'devices': {device_name(vif): device}})
        except errors.LXDError as e:
            LOG.error('LXD refused the nic of port %s: %s', vif['id'], e,
                      instance=instance)
            self.unplug(instance, [vif])
            raise exception.InterfaceAttachFailed(instance_uuid=instance.uuid)

    def detach(self, instance, vif):
        """Remove a port's nic from the container, live; then unplug."""
        try:
            self.lxd.remove_device(container.name(instance),
                                   device_name(vif))
        except errors.LXDNotFound:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        self.unplug(instance, [vif])

    def _failed_event(self, event_name, instance):
        LOG.error('Neutron reported failure on event %s', event_name,
                  instance=instance)
        if CONF.vif_plugging_is_fatal:
            raise exception.VirtualInterfaceCreateException()

    @contextlib.contextmanager
    def plugged(self, instance, network_info, power_on, cleanup):
        """Plug, run the body (create, start), wait for Neutron's events.

        Waits only when the container starts (its host ends exist only
        then) and [DEFAULT] vif_plugging_timeout is set. On any failure
        ``cleanup()`` removes the container and every port is unplugged.
        """
        if not network_info:
            yield
            return
        timeout = CONF.vif_plugging_timeout
        events = (plugged_events(network_info)
                  if power_on and timeout else [])
        try:
            with self.virtapi.wait_for_instance_event(
                    instance, events, timeout=timeout,
                    error_callback=self._failed_event):
                self.plug(instance, network_info)
                yield
        except exception.InstanceEventTimeout:
            if CONF.vif_plugging_is_fatal:
                self._undo(instance, network_info, cleanup)
                raise exception.VirtualInterfaceCreateException()
            LOG.warning('Neutron did not report ports %s plugged within '
                        '%ss; the server runs anyway '
                        '(vif_plugging_is_fatal = False)',
                        ', '.join(tag for _, tag in events), timeout,
                        instance=instance)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._undo(instance, network_info, cleanup)

    def _undo(self, instance, network_info, cleanup):
        try:
            cleanup()
        finally:
            self.unplug(instance, network_info)
