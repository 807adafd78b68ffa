"""What the functional tests share: Nova's services over the test bed.

LXDServicesTestCase (tools/services.py) runs Nova's API, conductor,
scheduler and a real Placement in the test process, with this driver over
the LXD test bed; ServersTestCase adds a compute service per member, a
flavor and a Glance image, and reads LXD's own state of a server.
"""

import uuid

import fixtures

from tools import services

LXDServicesTestCase = services.LXDServicesTestCase


class ServersTestCase(LXDServicesTestCase):
    """Two compute services (one per member), a flavor and a Glance image."""

    def setUp(self):
        super().setUp()
        # One compute service per member, as most operators deploy.
        self.computes = {}
        for member in self.bed.members:
            self.use_socket(member)
            self.computes[member] = self.start_service('compute',
                                                       host=member)
        self.lxd = self.bed.client()
        self.image_id = str(uuid.uuid4())
        self.glance.create(None, {
            'id': self.image_id, 'name': 'busybox', 'status': 'active',
            'disk_format': 'raw', 'container_format': 'bare',
            'properties': {'os_distro': 'busybox'}},
            data=self.bed.marked_image(self.image_id))
        self.flavor_id = self._create_flavor(
            name='small', vcpu=1, memory_mb=256, disk=1, ephemeral=0)

    def boot(self, flavor_id=None, expected_state='ACTIVE'):
        return self._create_server(
            image_uuid=self.image_id, flavor_id=flavor_id or self.flavor_id,
            networks='none', expected_state=expected_state)

    def only_member(self, member):
        """Disable the other members' compute services."""
        for service in self.admin_api.get_services(binary='nova-compute'):
            if service['host'] != member:
                self.admin_api.put_service(service['id'],
                                           {'status': 'disabled'})

    def container(self, server):
        name = server['OS-EXT-SRV-ATTR:instance_name']
        return self.lxd.api.instances[name].get().json()['metadata']

    def container_names(self):
        return {i['name'] for i in self.lxd.api.instances.get(
            params={'recursion': 1}).json()['metadata']}

    def state(self, server):
        return self.lxd.api.instances[
            server['OS-EXT-SRV-ATTR:instance_name']].state.get().json()[
                'metadata']

    def glance_keeps_uploads(self):
        """Nova's Glance fixture drops uploaded data; keep it."""
        real_update = self.glance.update

        def update(context, image_id, metadata, data=None,
                   purge_props=False):
            if data is not None:
                self.glance._imagedata[image_id] = data.read()
            return real_update(context, image_id, metadata,
                               purge_props=purge_props)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.GlanceFixture.update',
            lambda fixture, *a, **k: update(*a, **k)))
