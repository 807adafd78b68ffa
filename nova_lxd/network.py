"""Neutron ports: os-vif plugging on the member, LXD ``nic`` devices.

os-vif wires the host side the way Neutron's agents expect; LXD makes the
veth pair whose host end carries the name Neutron gave the port (its
``devname``, tapXXX):

* OVS hybrid plug (iptables firewall): os-vif makes the per-port Linux
  bridge qbrXXX and links it to the OVS bridge; LXD's ``bridged`` nic puts
  tapXXX on qbrXXX.
* Native OVS and OVN: os-vif makes the OVS port tapXXX with Neutron's
  external-ids (iface-id, attached-mac, vm-uuid) on a veth pair made at
  plug time; LXD's ``physical`` nic moves the other end, nlxXXX, into the
  container while it runs. The port's device is on the switch before the
  container is created, so Neutron's agent wires the port while LXD
  creates and starts it, and it stays across stops. With ``quota:vif_*``
  limits (which LXD shapes only on host ends it makes) LXD's ``p2p`` nic
  creates the tapXXX device each time the container starts instead, and
  OVS adopts it. LXD itself never touches OVS.

Linux bridge ports (``bridge``) are gone from Nova 34 and os-vif 5, and
SR-IOV, vhost-user and other VIF types cannot reach a container: they are
refused before anything is created.
"""

import contextlib

import nova.conf
from nova import exception
from nova.network import model as network_model
from nova.network import os_vif_util
from nova.privsep import linux_net as nova_net
import os_vif
from os_vif import exception as osv_exception
from os_vif import objects as osv_objects
from oslo_log import log as logging
from oslo_utils import excutils
from vif_plug_ovs import linux_net as osvif_net

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


def container_end(obj):
    """The container's end of a veth pair made at plug: tapXXX -> nlxXXX."""
    return constants.CONTAINER_END_PREFIX + obj.vif_name[3:]


def paired_at_plug(obj, extra_specs):
    """Whether plug makes the port's veth pair (a native OVS port).

    Not with ``quota:vif_*`` limits: LXD shapes only host ends it makes
    itself (a ``p2p`` nic at each start).
    """
    return (isinstance(obj, osv_objects.vif.VIFOpenVSwitch) and
            not container.nic_limits(extra_specs))


def nic_device(vif, obj, interface, extra_specs):
    """The LXD nic device of a port, tied to what os-vif plugged.

    ``interface`` is its name inside the container; ``extra_specs`` are
    the flavor's (``quota:vif_*`` become the nic's limits).
    """
    if isinstance(obj, osv_objects.vif.VIFBridge):
        device = {'nictype': 'bridged', 'parent': obj.bridge_name,
                  'host_name': obj.vif_name}
    elif paired_at_plug(obj, extra_specs):
        device = {'nictype': 'physical', 'parent': container_end(obj)}
    else:
        device = {'nictype': 'p2p', 'host_name': obj.vif_name}
    device.update({'type': 'nic', 'name': interface,
                   'hwaddr': vif['address']})
    mtu = _mtu(vif)
    if mtu:
        device['mtu'] = str(mtu)
    device.update(container.nic_limits(extra_specs))
    return device


def _mtu(vif):
    return vif['network'].get_meta('mtu')


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
        """Plug every port; a veth pair that is there already is kept."""
        info = os_vif_util.nova_to_osvif_instance(instance)
        for vif in network_info or ():
            obj = osvif_vif(vif)
            if (paired_at_plug(obj, instance.flavor.extra_specs) and
                    not nova_net.device_exists(obj.vif_name)):
                try:
                    osvif_net.create_veth_pair(
                        obj.vif_name, container_end(obj), _mtu(vif))
                except Exception as e:
                    raise VIFError(reason='os-vif could not make the veth '
                                          'pair of Neutron port %s: %s' % (
                                              vif['id'], e))
            try:
                os_vif.plug(obj, info)
            except osv_exception.ExceptionBase as e:
                raise VIFError(reason='os-vif could not plug Neutron port '
                                      '%s: %s' % (vif['id'], e))

    def replug(self, instance, network_info):
        """Plug every port of a stopped container again, before a start.

        A port whose host device is gone (p2p and bridged nics' at every
        stop; a veth pair made at plug after a member reboot) is unplugged
        first: the start or the plug makes a new device of the same name,
        and Open vSwitch's userspace datapath would keep reading the one
        it opened first (the server then has no network; the kernel
        datapath would recover). A port removed and added again is taken
        up when its device appears, as at the first boot. A veth pair
        still there stays plugged, its port wired.

        A native port's ``p2p`` nic from before the pairs (a container
        made by an earlier nova-lxd) becomes the ``physical`` nic of its
        pair, or LXD would find the pair's host end in the way.
        """
        gone = [vif for vif in network_info or ()
                if not nova_net.device_exists(osvif_vif(vif).vif_name)]
        self.unplug(instance, gone)
        self.plug(instance, network_info)
        # Only a port whose device was gone can have a p2p nic of before.
        self._pair_p2p_nics(instance, gone)

    def _pair_p2p_nics(self, instance, network_info):
        specs = instance.flavor.extra_specs
        vifs = ((vif, osvif_vif(vif)) for vif in network_info)
        paired = [(vif, obj) for vif, obj in vifs
                  if paired_at_plug(obj, specs)]
        if not paired:
            return      # no request to LXD
        name = container.name(instance)
        devices = self.lxd.instance(name)['devices']
        renewed = {}
        for vif, obj in paired:
            found = devices.get(device_name(vif), {})
            if found.get('nictype') == 'p2p':
                renewed[device_name(vif)] = nic_device(
                    vif, obj, found['name'], specs)
        if renewed:
            LOG.info('Nics %s become physical nics on veth pairs',
                     ', '.join(sorted(renewed)), instance=instance)
            self.lxd.update_instance(name, {'devices': renewed})

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
