"""The image cache's policy and the snapshot pipeline, LXD faked.

Glance's download writes small images built here; the fake LXD keeps
images and aliases as LXD would (fingerprint = sha256 of the upload).
What the real LXD does with them: tests/functional/test_image_cache.py.
"""

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import tarfile
from unittest import mock

import fixtures
from nova.compute import task_states
from nova import exception
from nova import test
from oslo_utils.fixture import uuidsentinel as uuids
from oslo_utils import timeutils

from nova_lxd import imagecache
from nova_lxd.lxd import errors
from tests.unit import fakes

NOW = '2026-11-28T12:00:00Z'
LONG_AGO = '2026-01-01T00:00:00Z'


def tarball(entries):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w:gz') as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


UNIFIED = tarball([('metadata.yaml', b'architecture: x86_64\n'),
                   ('rootfs', None), ('rootfs/etc', None)])
ROOTFS = tarball([('etc', None), ('etc/hostname', b'x\n'), ('bin', None)])
# What LXD publishes of a container with a config drive (uncompressed).
PUBLISHED = gzip.decompress(tarball([
    ('metadata.yaml', b'architecture: x86_64\n'), ('rootfs', None),
    ('rootfs/etc', None), ('rootfs/var/lib/cloud/seed/config_drive', None),
    ('rootfs/var/lib/cloud/seed/config_drive/openstack/latest/'
     'meta_data.json', b'{"admin_pass": "secret"}')]))


class FakeLXD(object):
    """The image requests of nova_lxd.lxd.client.LXD, kept in dicts."""

    def __init__(self):
        self.conf = mock.Mock(timeout=10)
        self.store = {}         # fingerprint -> LXD image dict
        self.aliases = {}       # alias -> fingerprint
        self.descriptions = {}  # alias -> description
        self.uploads = []       # [[(form name, bytes)]]
        self.deleted = []
        self.lxd_instances = []
        self.calls = []

    def image_alias(self, alias):
        if alias not in self.aliases:
            return None
        return {'name': alias, 'target': self.aliases[alias],
                'description': self.descriptions.get(alias, '')}

    def image_exists(self, fingerprint):
        return fingerprint in self.store

    def upload_image(self, parts):
        read = []
        for name, path in parts:
            with open(path, 'rb') as f:
                read.append((name, f.read()))
        self.uploads.append(read)
        fingerprint = hashlib.sha256(b''.join(d for _, d in read)).hexdigest()
        self.store[fingerprint] = {'fingerprint': fingerprint,
                                   'aliases': [], 'last_used_at': LONG_AGO,
                                   'uploaded_at': LONG_AGO}
        return fingerprint

    def add_image_alias(self, alias, fingerprint, description):
        if alias in self.aliases:
            return False
        self.aliases[alias] = fingerprint
        self.descriptions[alias] = description
        self.store[fingerprint]['aliases'].append({'name': alias})
        return True

    def delete_image(self, fingerprint):
        self.deleted.append(fingerprint)
        self.store.pop(fingerprint, None)
        for alias, target in list(self.aliases.items()):
            if target == fingerprint:
                del self.aliases[alias]

    def delete_image_alias(self, alias):
        fingerprint = self.aliases.pop(alias)
        image = self.store[fingerprint]
        image['aliases'] = [a for a in image['aliases']
                            if a['name'] != alias]
        return True

    def images(self):
        return list(self.store.values())

    def instances(self):
        return self.lxd_instances

    # The snapshot pipeline's requests, in the order they are made.

    def snapshot(self, name, snapshot, expires_at):
        self.calls.append(('snapshot', name, snapshot))
        self.expires_at = expires_at

    def publish_snapshot(self, name, snapshot, properties, alias):
        self.calls.append(('publish_snapshot', name, snapshot, properties,
                           alias))
        return 'cafe'

    def delete_snapshot(self, name, snapshot):
        self.calls.append(('delete_snapshot', name, snapshot))

    @contextlib.contextmanager
    def export_image(self, fingerprint):
        self.calls.append(('export_image', fingerprint))
        yield mock.Mock(raw=io.BytesIO(PUBLISHED))


class ImageCacheTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.lxd = FakeLXD()
        self.spool = self.useFixture(fixtures.TempDir()).path
        self.cache = imagecache.ImageCache(self.lxd, download_dir=self.spool)
        self.glance = {}        # image id -> bytes
        self.sizes = {}         # image id -> size Glance says, if not real
        self.downloads = []
        self.useFixture(fixtures.MonkeyPatch(
            'nova.image.glance.API.download', self._download))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.image.glance.API.get', self._get))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.image.glance.API.update', self._update))
        self.updated = []

    def _download(self, api, context, image_id, dest_path=None,
                  trusted_certs=None):
        self.downloads.append(image_id)
        with open(dest_path, 'wb') as f:
            f.write(self.glance[image_id])

    def _get(self, api, context, image_id):
        data = self.glance[image_id]
        return {'id': image_id, 'size': self.sizes.get(image_id, len(data)),
                'os_hash_algo': 'sha512',
                'os_hash_value': hashlib.sha512(data).hexdigest()}

    def _update(self, api, context, image_id, metadata, data=None):
        self.updated.append((image_id, metadata, data.read()))

    def image(self, data, image_id=uuids.image, **fields):
        self.glance[image_id] = data
        meta = {'id': image_id, 'name': 'busybox', 'disk_format': 'raw',
                'container_format': 'bare', 'created_at': NOW,
                'properties': {}}
        meta.update(fields)
        return meta

    def ensure(self, meta):
        return self.cache.ensure(None, meta, 'x86_64')


class EnsureTest(ImageCacheTestCase):

    def test_unified_tarball_is_uploaded_alone_and_aliased(self):
        fingerprint = self.ensure(self.image(UNIFIED))
        self.assertEqual(hashlib.sha256(UNIFIED).hexdigest(), fingerprint)
        self.assertEqual([[(None, UNIFIED)]], self.lxd.uploads)
        self.assertEqual({'nova-glance-' + uuids.image: fingerprint},
                         self.lxd.aliases)
        self.assertEqual([], os.listdir(self.spool))

    def test_rootfs_tarball_gets_its_metadata_tarball(self):
        fingerprint = self.ensure(self.image(ROOTFS))
        (upload,) = self.lxd.uploads
        self.assertEqual(['metadata', 'rootfs'], [n for n, _ in upload])
        self.assertEqual(ROOTFS, upload[1][1])
        with tarfile.open(fileobj=io.BytesIO(upload[0][1])) as tar:
            self.assertEqual(['metadata.yaml'], tar.getnames())
        self.assertEqual(hashlib.sha256(upload[0][1] + ROOTFS).hexdigest(),
                         fingerprint)

    def test_an_aliased_image_is_not_downloaded_again(self):
        meta = self.image(UNIFIED)
        first = self.ensure(meta)
        self.assertEqual(first, self.ensure(meta))
        self.assertEqual([uuids.image], self.downloads)
        self.assertEqual(1, len(self.lxd.uploads))

    def test_bytes_lxd_has_already_are_only_aliased(self):
        fingerprint = hashlib.sha256(UNIFIED).hexdigest()
        self.lxd.store[fingerprint] = {'fingerprint': fingerprint,
                                       'aliases': [{'name': 'operators'}]}
        self.assertEqual(fingerprint, self.ensure(self.image(UNIFIED)))
        self.assertEqual([], self.lxd.uploads)
        self.assertEqual([], self.lxd.deleted)

    def test_alias_made_by_another_process_first_is_used(self):
        # It aliased its own import (another member's architecture, say).
        meta = self.image(ROOTFS)
        real_add = self.lxd.add_image_alias

        def other_first(alias, fingerprint, description):
            self.lxd.aliases[alias] = 'theirs'
            return real_add(alias, fingerprint, description)
        self.lxd.add_image_alias = other_first
        self.assertEqual('theirs', self.ensure(meta))
        # What this call uploaded is not left behind.
        (ours,) = self.lxd.deleted
        self.assertNotIn(ours, self.lxd.store)

    def test_failed_alias_deletes_the_upload(self):
        self.lxd.add_image_alias = mock.Mock(
            side_effect=errors.LXDError(reason='injected'))
        self.assertRaises(errors.LXDError, self.ensure, self.image(UNIFIED))
        self.assertEqual({}, self.lxd.store)
        self.assertEqual([], os.listdir(self.spool))

    def test_upload_under_another_fingerprint_is_deleted_and_refused(self):
        self.lxd.upload_image = mock.Mock(return_value='other')
        e = self.assertRaises(errors.LXDError, self.ensure,
                              self.image(UNIFIED))
        self.assertIn('image uploaded as other, expected fingerprint', str(e))
        self.assertEqual(['other'], self.lxd.deleted)

    def test_upload_refused_because_another_process_imported_it(self):
        fingerprint = hashlib.sha256(UNIFIED).hexdigest()

        def already_there(parts):
            self.lxd.store[fingerprint] = {'fingerprint': fingerprint,
                                           'aliases': []}
            raise errors.LXDError(reason='Image with same fingerprint '
                                         'already exists')
        self.lxd.upload_image = already_there
        self.assertEqual(fingerprint, self.ensure(self.image(UNIFIED)))
        self.assertEqual([], self.lxd.deleted)

    def test_other_upload_failures_are_raised(self):
        self.lxd.upload_image = mock.Mock(
            side_effect=errors.LXDError(reason='disk full'))
        self.assertRaises(errors.LXDError, self.ensure, self.image(UNIFIED))
        self.assertEqual({}, self.lxd.aliases)
        self.assertEqual([], os.listdir(self.spool))

    def test_not_an_lxd_image_is_refused_and_nothing_is_left(self):
        e = self.assertRaises(exception.ImageUnacceptable, self.ensure,
                              self.image(b'QFI\xfb' + bytes(1024)))
        self.assertIn('it is a qcow2 disk image', str(e))
        self.assertEqual([], self.lxd.uploads)
        self.assertEqual([], os.listdir(self.spool))

    def test_glance_format_refused_before_any_download(self):
        self.assertRaises(exception.ImageUnacceptable, self.ensure,
                          self.image(UNIFIED, disk_format='qcow2'))
        self.assertEqual([], self.downloads)


class GlanceHashTest(ImageCacheTestCase):
    """A Glance id is cached together with Glance's hash of its bytes."""

    ALIAS = 'nova-glance-' + uuids.image

    def test_alias_records_the_hash_and_the_size(self):
        self.ensure(self.image(UNIFIED))
        self.assertEqual(
            {'glance_image': 'busybox', 'size': 21, 'files': 3,
             'glance_hash': 'sha512:' + hashlib.sha512(UNIFIED).hexdigest()},
            json.loads(self.lxd.descriptions[self.ALIAS]))

    def test_a_reused_id_is_imported_again(self):
        first = self.ensure(self.image(UNIFIED))
        # The id now names other bytes (deleted, then made again).
        second = self.ensure(self.image(ROOTFS))
        self.assertNotEqual(first, second)
        self.assertEqual([uuids.image, uuids.image], self.downloads)
        self.assertEqual(second, self.lxd.aliases[self.ALIAS])
        # The old image stays for its containers, until prune.
        self.assertIn(first, self.lxd.store)
        self.assertEqual(second, self.ensure(self.image(ROOTFS)))
        self.assertEqual(2, len(self.downloads))

    def test_an_alias_without_a_record_is_made_again(self):
        fingerprint = self.ensure(self.image(UNIFIED))
        self.lxd.descriptions[self.ALIAS] = 'Glance image busybox'
        self.assertEqual(fingerprint, self.ensure(self.image(UNIFIED)))
        self.assertEqual(2, len(self.downloads))
        self.assertEqual(1, len(self.lxd.uploads))     # LXD had the bytes
        self.assertIsNotNone(imagecache.image_format.cache_record(
            self.lxd.descriptions[self.ALIAS]))

    def test_a_cached_image_too_large_for_the_flavor_is_refused(self):
        self.ensure(self.image(UNIFIED))
        self.flags(image_max_files=2, group='lxd')
        e = self.assertRaises(exception.ImageUnacceptable, self.ensure,
                              self.image(UNIFIED))
        self.assertIn('it holds 3 files, more than 2', str(e))
        self.assertEqual(1, len(self.downloads))


class DownloadFolderTest(ImageCacheTestCase):

    def test_downloads_go_to_their_own_folder_under_the_option(self):
        folders = []

        def download(api, context, image_id, dest_path=None,
                     trusted_certs=None):
            folders.append(os.path.dirname(dest_path))
            self._download(api, context, image_id, dest_path=dest_path)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.image.glance.API.download', download))
        self.flags(image_download_dir=os.path.join(self.spool, 'conf'),
                   group='lxd')
        cache = imagecache.ImageCache(self.lxd)
        cache.ensure(None, self.image(UNIFIED), 'x86_64')
        (folder,) = folders
        self.assertEqual(os.path.join(self.spool, 'conf'),
                         os.path.dirname(folder))
        self.assertTrue(os.path.basename(folder).startswith(
            'nova-lxd-image-'))
        self.assertEqual([], os.listdir(os.path.join(self.spool, 'conf')))

    def test_default_is_under_nova_state_path(self):
        self.flags(state_path='/var/lib/nova')
        self.assertEqual('/var/lib/nova/lxd-images',
                         imagecache.ImageCache(self.lxd).download_dir)

    def test_no_download_without_room_for_it(self):
        free = os.statvfs(self.spool)
        room = free.f_bavail * free.f_frsize
        self.sizes[uuids.image] = room
        e = self.assertRaises(
            exception.ComputeResourcesUnavailable, self.ensure,
            self.image(UNIFIED))
        self.assertIn('not enough free space on this host to download '
                      'image %s (%d bytes needed' % (
                          uuids.image, room + imagecache.DOWNLOAD_RESERVE),
                      str(e))
        self.assertNotIn(self.spool, str(e))
        self.assertEqual([], self.downloads)
        self.assertEqual([], os.listdir(self.spool))

    def test_stale_downloads_removed_live_ones_kept(self):
        stale = os.path.join(self.spool, 'nova-lxd-image-stale')
        live = os.path.join(self.spool, 'nova-lxd-image-live')
        other = os.path.join(self.spool, 'operators')
        for folder in (stale, live, other):
            os.makedirs(folder)
            with open(os.path.join(folder, 'image'), 'wb') as f:
                f.write(b'x')
        held = os.open(live, os.O_RDONLY)
        self.addCleanup(os.close, held)
        fcntl.flock(held, fcntl.LOCK_EX)
        self.cache.remove_stale_downloads()
        self.assertEqual(['nova-lxd-image-live', 'operators'],
                         sorted(os.listdir(self.spool)))

    def test_stale_downloads_without_the_folder(self):
        imagecache.ImageCache(self.lxd, os.path.join(
            self.spool, 'missing')).remove_stale_downloads()


class PruneTest(ImageCacheTestCase):

    def add(self, fingerprint, *aliases, last_used=LONG_AGO):
        self.lxd.store[fingerprint] = {
            'fingerprint': fingerprint, 'last_used_at': last_used,
            'uploaded_at': LONG_AGO,
            'aliases': [{'name': a} for a in aliases]}
        for alias in aliases:
            self.lxd.aliases[alias] = fingerprint

    def test_removes_our_unused_images_only(self):
        self.add('unused', 'nova-glance-1')
        self.add('in-use', 'nova-glance-2')
        self.add('passed', 'nova-glance-3')
        self.add('recent', 'nova-glance-4',
                 last_used='2999-01-01T00:00:00Z')
        self.add('operators', 'busybox')
        self.lxd.lxd_instances = [
            {'config': {'volatile.base_image': 'in-use'}}, {'config': {}}]
        self.assertEqual(['unused'], self.cache.prune(['passed'], 3600))
        self.assertEqual({'in-use', 'passed', 'recent', 'operators'},
                         set(self.lxd.store))

    def test_images_this_process_ensured_are_kept_for_the_age(self):
        fingerprint = self.ensure(self.image(UNIFIED))
        self.assertEqual([], self.cache.prune([], 3600))
        self.assertEqual([fingerprint], self.cache.prune([], 0))

    def test_our_alias_on_someone_elses_image_goes_the_image_stays(self):
        self.add('shared', 'busybox', 'nova-glance-1')
        self.assertEqual([], self.cache.prune([], 3600))
        self.assertEqual([{'name': 'busybox'}],
                         self.lxd.store['shared']['aliases'])

    def test_orphan_snapshot_images_go_after_a_day(self):
        self.add('orphan', 'nova-snapshot-1')
        self.add('mixed', 'nova-snapshot-2', 'operators')
        self.add('fresh', 'nova-snapshot-3')
        self.lxd.store['fresh']['uploaded_at'] = '2999-01-01T00:00:00Z'
        self.cache._publishing.add('nova-snapshot-4')
        self.add('exporting', 'nova-snapshot-4')
        self.assertEqual(['orphan'], self.cache.prune([], 0))
        self.assertEqual({'mixed', 'fresh', 'exporting'},
                         set(self.lxd.store))

    def test_a_failed_delete_is_tried_again_next_time(self):
        self.add('a', 'nova-glance-1')
        self.add('b', 'nova-glance-2')
        real_delete = self.lxd.delete_image

        def fail_once(fingerprint):
            if fingerprint == 'a' and 'a' not in self.lxd.deleted:
                self.lxd.deleted.append('a')
                raise errors.LXDError(reason='busy')
            real_delete(fingerprint)
        self.lxd.delete_image = fail_once
        self.assertEqual(['b'], self.cache.prune([], 0))
        self.assertEqual(['a'], self.cache.prune([], 0))


class SnapshotTest(ImageCacheTestCase):

    def setUp(self):
        super().setUp()
        self.instance = fakes.instance(
            uuid=uuids.server)
        self.states = []

    def update_task_state(self, task_state, expected_state=None):
        self.states.append((task_state, expected_state))

    def snapshot(self):
        self.cache.snapshot(None, self.instance, uuids.snap,
                            self.update_task_state)

    def test_snapshot_publish_upload_and_nothing_left_in_lxd(self):
        self.snapshot()
        name, snap = self.instance.name, 'nova-snapshot-' + uuids.snap
        self.assertEqual([
            ('snapshot', name, snap),
            ('publish_snapshot', name, snap,
             {'description': uuids.server},
             {'name': snap,
              'description': 'snapshot of instance ' + uuids.server}),
            ('delete_snapshot', name, snap),
            ('export_image', 'cafe')], self.lxd.calls)
        self.assertEqual(['cafe'], self.lxd.deleted)
        # What Glance got: the published tar without the config drive.
        ((image_id, meta, data),) = self.updated
        self.assertEqual((uuids.snap, {'disk_format': 'raw',
                                       'container_format': 'bare'}),
                         (image_id, meta))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            self.assertEqual(['metadata.yaml', 'rootfs', 'rootfs/etc'],
                             tar.getnames())
        self.assertEqual([
            (task_states.IMAGE_PENDING_UPLOAD, None),
            (task_states.IMAGE_UPLOADING, task_states.IMAGE_PENDING_UPLOAD)],
            self.states)

    def test_no_container(self):
        self.lxd.snapshot = mock.Mock(
            side_effect=errors.LXDNotFound(reason='gone'))
        self.assertRaises(exception.InstanceNotFound, self.snapshot)

    def test_failed_publish_still_removes_the_lxd_snapshot(self):
        self.lxd.publish_snapshot = mock.Mock(
            side_effect=errors.LXDError(reason='disk full'))
        self.assertRaises(errors.LXDError, self.snapshot)
        self.assertEqual('delete_snapshot', self.lxd.calls[-1][0])
        self.assertEqual([], self.updated)

    def test_lxd_deletes_the_snapshot_itself_if_all_else_fails(self):
        self.flags(snapshot_timeout=100, delete_timeout=30, group='lxd')
        now = timeutils.utcnow(with_timezone=True)
        self.snapshot()
        expires = timeutils.parse_isotime(self.lxd.expires_at)
        self.assertAlmostEqual(230, (expires - now).total_seconds(),
                               delta=5)

    def test_a_snapshot_lxd_cannot_delete_does_not_hide_the_failure(self):
        self.lxd.publish_snapshot = mock.Mock(
            side_effect=errors.LXDTimeout(reason='publish timed out'))
        self.lxd.delete_snapshot = mock.Mock(
            side_effect=errors.LXDError(reason='busy'))
        e = self.assertRaises(errors.LXDTimeout, self.snapshot)
        self.assertIn('publish timed out', str(e))

    def test_failed_upload_still_removes_the_lxd_image(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova.image.glance.API.update',
            mock.Mock(side_effect=exception.ImageNotAuthorized(
                image_id=uuids.snap))))
        self.assertRaises(exception.ImageNotAuthorized, self.snapshot)
        self.assertEqual(['cafe'], self.lxd.deleted)
