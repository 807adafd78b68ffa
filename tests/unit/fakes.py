"""Stand-ins shared by the unit tests: LXD, the image cache, NVML, ports.

What LXD and NVML answer comes from tests/unit/data (recorded, or
constructed like the recordings).
"""

import types

from nova.network import model
from nova.tests.unit import fake_instance
from oslo_utils.fixture import uuidsentinel as uuids

from nova_lxd import constants
from nova_lxd.lxd import errors
from tests.unit import data

# -- LXD and the image cache, as the driver sees them -----------------


class FakeLXD(object):
    """What nova_lxd.lxd.client.LXD answers, from recorded LXD data.

    A cluster of lxd1 and lxd2 over HTTPS; ``calls`` lists the requests.
    """

    endpoint = 'https://127.0.0.2:8443'
    clustered = True
    certificate_fingerprint = 'f00d'
    server_version = '5.0.2'
    local_member = None

    def __init__(self, conf):
        self.conf = conf
        self.calls = []
        self.lxd_instances = []
        self.other_projects = []
        self.states = {}
        self.statuses = {'lxd1': 'Online', 'lxd2': 'Online'}

    def members(self):
        return dict(self.statuses)

    def resources(self, member):
        self.calls.append(('resources', member))
        return data.RESOURCES

    def pool_resources(self, member):
        self.calls.append(('pool_resources', member))
        return data.POOL_RESOURCES

    # [lxd] storage_pool: btrfs, which enforces sizes.
    pool_driver = 'btrfs'

    def pool(self, member):
        return {'name': self.conf.storage_pool, 'driver': self.pool_driver,
                'config': {}}

    def instances(self):
        self.calls.append(('instances',))
        return self.lxd_instances

    def sees_all_projects(self):
        return True

    def instances_of_all_projects(self):
        self.calls.append(('instances_of_all_projects',))
        return self.lxd_instances + self.other_projects

    def instance(self, name):
        raise errors.LXDNotFound(reason='not found')

    def instance_state(self, name):
        self.calls.append(('instance_state', name))
        return self.states.get(name)

    def delete_owned(self, name, key, owner):
        self.calls.append(('delete_owned', name, key, owner))
        return False

    def instance_names(self):
        self.calls.append(('instance_names',))
        return {i['name'] for i in self.lxd_instances}

    def locate(self, name):
        self.calls.append(('locate', name))
        if name in self.states:
            return dict(self.states[name], name=name, location='lxd1',
                        config={})
        return next((i for i in self.lxd_instances if i['name'] == name),
                    None)

    def instances_of(self, owner):
        self.calls.append(('instances_of', owner))
        return [i for i in self.lxd_instances
                if owner in (i.get('config') or {}).values()]


def lxd_instance(name, member, uuid=None):
    """An instance of LXD's listing; the driver's when it has a UUID."""
    cfg = {constants.INSTANCE_UUID_KEY: uuid} if uuid else {}
    return {'name': name, 'location': member, 'config': cfg,
            'status_code': 103}


class FakeImages(object):
    """The image cache, with every image already in LXD."""

    def ensure(self, context, image_meta, member_arch, root_gb=0):
        return 'f00d'


# -- Neutron ports ----------------------------------------------------

MAC = 'fa:16:3e:00:00:01'
# binding:vif_details of ML2/OVS with the iptables firewall (hybrid plug)
# and without it.
HYBRID = {'port_filter': True, 'ovs_hybrid_plug': True}
NATIVE = {'port_filter': True, 'ovs_hybrid_plug': False}
# What Neutron's OVN driver binds: native OVS plug on br-int.
OVN = {'port_filter': True, 'connectivity': 'l2', 'bridge_name': 'br-int',
       'datapath_type': 'system'}


def vif(details=None, vif_type='ovs', active=True, vnic_type='normal',
        mtu=1450, port=None):
    """A port of Nova's network_info, bound as Neutron binds it."""
    port = port or uuids.port
    meta = {'mtu': mtu} if mtu else {}
    net = model.Network(id=uuids.net, bridge='br-int', label='private',
                        subnets=[], meta=meta)
    return model.VIF(id=port, address=MAC, network=net, type=vif_type,
                     details=details or {}, devname='tap' + port[:11],
                     ovs_interfaceid=port, vnic_type=vnic_type,
                     active=active)


# -- NVML ------------------------------------------------------------

class FakeNVMLError(Exception):
    def __init__(self, value):
        super().__init__('NVML error %d' % value)
        self.value = value


NOT_SUPPORTED, NOT_FOUND, TIMEOUT, DRIVER_NOT_LOADED = 3, 6, 10, 9
LIBRARY_NOT_FOUND, GPU_IS_LOST = 12, 15


def fake_nvml(gpus, init_error=None, events=()):
    """A module object with the pynvml calls nvml.py makes.

    ``gpus``: dicts with pci (8-digit domain, as NVML writes it), uuid,
    name, memory_mib, cc, and optionally mig (current mode), migs
    [(uuid, name)], ecc, retired_pending, remapped, lost.
    ``events``: [(gpu index, xid)] waiting in the XID event set.
    """
    queue = list(events)
    lib = types.SimpleNamespace(NVMLError=FakeNVMLError, calls=[])

    def gpu(handle):
        g = gpus[handle[1]]
        if g.get('lost'):
            raise FakeNVMLError(GPU_IS_LOST)
        return g

    def init():
        lib.calls.append('init')
        if init_error:
            raise FakeNVMLError(init_error)

    def name(handle):
        if handle[0] == 'mig':
            return gpu(handle)['migs'][handle[2]][1].encode()
        return gpu(handle)['name']

    def uuid(handle):
        if handle[0] == 'mig':
            return gpu(handle)['migs'][handle[2]][0]
        return gpu(handle)['uuid']

    def memory(handle):
        mib = 10240 if handle[0] == 'mig' else gpu(handle)['memory_mib']
        return types.SimpleNamespace(total=mib * 2 ** 20)

    def mig_mode(handle):
        mode = gpu(handle).get('mig')
        if mode is None:
            raise FakeNVMLError(NOT_SUPPORTED)
        return [mode, mode]

    def mig_handle(handle, index):
        migs = gpu(handle).get('migs', [])
        if index >= len(migs):
            raise FakeNVMLError(NOT_FOUND)
        return ('mig', handle[1], index)

    def optional(key):
        def call(handle, *args):
            value = gpu(handle).get(key)
            if value is None:
                raise FakeNVMLError(NOT_SUPPORTED)
            return value
        return call

    def wait(event_set, timeout):
        if not queue:
            raise FakeNVMLError(TIMEOUT)
        index, xid = queue.pop(0)
        return types.SimpleNamespace(device=('gpu', index), eventData=xid)

    lib.nvmlInit = init
    lib.nvmlDeviceGetCount = lambda: len(gpus)
    lib.nvmlDeviceGetHandleByIndex = lambda i: ('gpu', i)
    lib.nvmlDeviceGetPciInfo = lambda h: types.SimpleNamespace(
        busId=gpus[h[1]]['pci'].encode())
    lib.nvmlDeviceGetName = name
    lib.nvmlDeviceGetUUID = uuid
    lib.nvmlDeviceGetMemoryInfo = memory
    lib.nvmlDeviceGetCudaComputeCapability = lambda h: gpu(h)['cc']
    lib.nvmlDeviceGetMigMode = mig_mode
    lib.nvmlDeviceGetMaxMigDeviceCount = lambda h: 7
    lib.nvmlDeviceGetMigDeviceHandleByIndex = mig_handle
    lib.nvmlDeviceGetTotalEccErrors = optional('ecc')
    lib.nvmlDeviceGetRetiredPagesPendingStatus = optional('retired_pending')
    lib.nvmlDeviceGetRemappedRows = optional('remapped')
    lib.nvmlEventSetCreate = lambda: 'events'
    lib.nvmlDeviceRegisterEvents = lambda h, kinds, events: None
    lib.nvmlEventSetWait_v2 = wait
    return lib


# -- Nova ------------------------------------------------------------


def instance(**updates):
    """A Nova instance as the compute manager hands it to the driver.

    With its system metadata (where the driver keeps an evacuated
    container's name) loaded.
    """
    updates.setdefault('system_metadata', {})
    return fake_instance.fake_instance_obj(
        None, expected_attrs=['system_metadata'], **updates)
