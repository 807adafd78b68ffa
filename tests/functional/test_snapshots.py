"""Server snapshots: what reaches Glance, and what LXD is left with."""

import base64
import datetime
import gzip
import io
import tarfile
import uuid

import fixtures
from nova import context
from oslo_serialization import jsonutils
from oslo_utils import timeutils
from pylxd import exceptions as pylxd_exc

from nova_lxd import constants
from nova_lxd.lxd import client
from tests.functional import base


class SnapshotOrphansTest(base.ServersTestCase):
    """A publish that outlives [lxd] snapshot_timeout leaves an image."""

    def publish_outlives_its_timeout(self):
        """LXD publishes, but the driver stopped waiting for it.

        The wait answers what LXD answers at a timeout (the operation
        still running), once LXD has really published the image.
        """
        real = client.LXD._wait_operation

        def wait(lxd, operation, seconds):
            found = real(lxd, operation, seconds)
            if 'fingerprint' in (found.get('metadata') or {}):
                return dict(found, status_code=103, status='Running',
                            may_cancel=False)
            return found
        self.useFixture(fixtures.MonkeyPatch(
            'nova_lxd.lxd.client.LXD._wait_operation', wait))

    def snapshot_images(self):
        return {i.fingerprint: [a['name'] for a in i.aliases]
                for i in self.lxd.images.all()
                if any(a['name'].startswith(constants.SNAPSHOT_PREFIX)
                       for a in i.aliases)}

    def test_image_of_a_timed_out_publish_is_pruned(self):
        server = self.boot()
        imported = self.bed.image_fingerprints()
        self.publish_outlives_its_timeout()
        image_id = self.api.post_server_action(
            server['id'], {'createImage': {'name': 'snap'}})['image_id']
        self.notifier.wait_for_versioned_notifications(
            'instance.snapshot.start')
        server = self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None})
        self.assertEqual('ACTIVE', server['status'])
        # Nova removed the Glance image of the failed snapshot; LXD holds
        # the image it went on to publish, named after it; the LXD
        # snapshot of the container is gone.
        self.assertNotIn(image_id, self.glance.images)
        (orphan,) = self.snapshot_images()
        self.assertEqual({orphan: [constants.SNAPSHOT_PREFIX + image_id]},
                         self.snapshot_images())
        name = server['OS-EXT-SRV-ATTR:instance_name']
        self.assertEqual([], self.lxd.instances.get(name).snapshots.all())

        self.flags(remove_unused_original_minimum_age_seconds=0,
                   group='image_cache')
        ctxt = context.get_admin_context()
        manager = self.computes[server['OS-EXT-SRV-ATTR:host']].manager
        # Not yet: the export of a snapshot may last long.
        manager._run_image_cache_manager_pass(ctxt)
        self.assertIn(orphan, self.snapshot_images())
        timeutils.set_time_override(
            timeutils.utcnow(with_timezone=True) +
            datetime.timedelta(days=1, seconds=1))
        self.addCleanup(timeutils.clear_time_override)
        manager._run_image_cache_manager_pass(ctxt)
        timeutils.clear_time_override()
        self.assertEqual({}, self.snapshot_images())
        # The server's own image stays.
        self.assertEqual(imported, self.bed.image_fingerprints())


SEED = '/var/lib/cloud/seed/config_drive'
META_DATA = SEED + '/openstack/latest/meta_data.json'


class SnapshotConfigDriveTest(base.ServersTestCase):
    """The config drive stays with its server, out of its snapshots."""

    def files(self, server):
        return self.lxd.instances.get(
            server['OS-EXT-SRV-ATTR:instance_name']).files

    def create(self, image_id, **extra):
        server = self.api.post_server({'server': dict(self._build_server(
            image_uuid=image_id, flavor_id=self.flavor_id,
            networks='none'), **extra)})
        return self._wait_for_state_change(server, 'ACTIVE')

    def test_snapshot_holds_no_config_drive_and_copies_get_their_own(self):
        self.glance_keeps_uploads()
        password = 'pw-%s' % uuid.uuid4().hex
        marker = 'user-data-%s' % uuid.uuid4().hex
        server = self.create(
            self.image_id, config_drive=True, adminPass=password,
            user_data=base64.b64encode(
                ('#cloud-config\n# %s\n' % marker).encode()).decode())
        files = self.files(server)
        seeded = files.get(META_DATA)
        self.assertEqual(password, jsonutils.loads(seeded)['admin_pass'])
        files.put('/root/hello', b'kept\n')

        image_id = self.api.post_server_action(
            server['id'], {'createImage': {'name': 'snap'}})['image_id']
        self.notifier.wait_for_versioned_notifications(
            'instance.snapshot.end')
        data = gzip.decompress(self.glance._imagedata[image_id])
        self.assertNotIn(password.encode(), data)
        self.assertNotIn(marker.encode(), data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = tar.getnames()
        self.assertIn('rootfs/root/hello', names)
        self.assertIn('rootfs/var/lib/cloud/seed', names)
        self.assertEqual([], [n for n in names if 'config_drive' in n])
        # The server itself keeps its config drive.
        self.assertEqual(seeded, files.get(META_DATA))

        copy = self.create(image_id, config_drive=True)
        files = self.files(copy)
        self.assertEqual(b'kept\n', files.get('/root/hello'))
        meta = jsonutils.loads(files.get(META_DATA))
        self.assertEqual(copy['id'], meta['uuid'])
        # Nova made it a password of its own.
        self.assertNotEqual(password, meta['admin_pass'])
        self.assertRaises(pylxd_exc.NotFound, files.get,
                          SEED + '/openstack/latest/user_data')

        plain = self.create(image_id)
        self.assertRaises(pylxd_exc.NotFound, self.files(plain).get,
                          META_DATA)
