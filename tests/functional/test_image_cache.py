"""Glance images imported into the real test-bed cluster, once, and pruned.

Only Glance's download is faked: it copies a tarball made here from the
test bed's busybox image, with a file unique to each test so that every
fingerprint is new. Each test works in an LXD project of its own (with
its own images), so prune sees nothing of other tests and the project
goes, with all it holds, at the end.
"""

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.parse
import uuid

import fixtures
from pylxd import client as pylxd_client
from pylxd import exceptions as pylxd_exc

import nova.conf
from nova import context as nova_context
from nova import exception
from nova import test
from oslo_serialization import jsonutils

from nova_lxd import image_format
from nova_lxd import imagecache
from nova_lxd.lxd import client
from nova_lxd.lxd import errors
from tests.functional import base
from tools import testbed

CONF = nova.conf.CONF
QCOW2_MESSAGE = ('image is not an LXD image: it is a qcow2 disk image; '
                 'upload an LXD unified tarball or a root filesystem '
                 'tarball')
_EXPORT = {}


def _busybox_export(bed):
    """The test bed's busybox image as LXD exports it (unified tar.gz)."""
    if 'data' not in _EXPORT:
        image = bed.client().images.get_by_alias(bed.image)
        _EXPORT['data'] = image.export().read()
    return _EXPORT['data']


def repack(bed, path, unified=True, compression='gz'):
    """The busybox image, unified or as a bare rootfs, plus a unique file."""
    mode = 'w:%s' % compression if compression else 'w'
    prefix = 'rootfs/'
    with tarfile.open(fileobj=io.BytesIO(_busybox_export(bed))) as src, \
            tarfile.open(path, mode) as out:
        for member in src:
            if not unified:
                if not member.name.startswith(prefix):
                    continue
                member.name = member.name[len(prefix):]
            out.addfile(member, src.extractfile(member)
                        if member.isfile() else None)
        token = uuid.uuid4().hex.encode()
        info = tarfile.TarInfo((prefix if unified else '') +
                               'etc/nova-lxd-test-token')
        info.size = len(token)
        out.addfile(info, io.BytesIO(token))
    return path


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


class ImageCacheTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.bed = testbed.Testbed()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.spool = self.useFixture(fixtures.TempDir()).path
        self.project = 'nova-lxd-test-img-%s' % uuid.uuid4().hex[:8]
        self._make_project()
        self.flags(endpoint=self.bed.endpoint,
                   client_cert=self.bed.client_cert,
                   client_key=self.bed.client_key,
                   server_cert=self.bed.server_cert,
                   storage_pool=self.bed.pool, project=self.project,
                   group='lxd')
        self.lxd = client.LXD(CONF.lxd)
        self.cache = imagecache.ImageCache(self.lxd, download_dir=self.spool)
        self.context = nova_context.get_admin_context()
        self.files = {}         # Glance image id -> local file
        self.downloads = []
        self.download_delay = 0
        self.useFixture(fixtures.MonkeyPatch(
            'nova.image.glance.API.download', self._fake_download))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.image.glance.API.get', self._fake_get))
        self.uploads = []
        self.lxd.session.hooks['response'].append(self._record_upload)

    # -- fixtures --------------------------------------------------------

    def _make_project(self):
        """An LXD project with its own images, gone after the test."""
        default = self.bed.client()
        default.api.projects.post(json={
            'name': self.project,
            'config': {'features.images': 'true',
                       'features.profiles': 'false'}})
        self.addCleanup(default.api.projects[self.project].delete)
        self.plain = pylxd_client.Client(
            endpoint=self.bed.socket(self.bed.members[0]),
            project=self.project)
        self.addCleanup(self._delete_all_images)

    def _delete_all_images(self):
        for image in self.plain.images.all():
            image.delete(wait=True)

    def _fake_download(self, api, context, image_id, dest_path=None,
                       trusted_certs=None):
        self.downloads.append(image_id)
        time.sleep(self.download_delay)
        shutil.copyfile(self.files[image_id], dest_path)

    def _fake_get(self, api, context, image_id):
        path = self.files[image_id]
        with open(path, 'rb') as f:
            digest = hashlib.sha512(f.read()).hexdigest()
        return {'id': image_id, 'size': os.path.getsize(path),
                'os_hash_algo': 'sha512', 'os_hash_value': digest}

    def _record_upload(self, response, *args, **kwargs):
        request = response.request
        if (request.method == 'POST' and
                urllib.parse.urlsplit(request.url).path == '/1.0/images'):
            self.uploads.append(request.url)

    def glance_image(self, path, **fields):
        """Glance's dict of an image whose bytes are ``path``."""
        image_id = str(uuid.uuid4())
        self.files[image_id] = path
        meta = {'id': image_id, 'name': 'busybox test',
                'disk_format': 'raw', 'container_format': 'bare',
                'properties': {'os_distro': 'busybox'}}
        meta.update(fields)
        return meta

    def tarball(self, name, **kwargs):
        return repack(self.bed, os.path.join(self.tmp, name), **kwargs)

    def ensure(self, meta):
        return self.cache.ensure(self.context, meta, 'x86_64')

    def alias_target(self, image_id):
        try:
            return self.plain.images.get_by_alias(
                image_format.alias(image_id)).fingerprint
        except Exception:
            return None

    def fingerprints(self):
        return sorted(i.fingerprint for i in self.plain.images.all())

    def boot(self, fingerprint, member=None):
        """A container from the image on a member, started: it runs."""
        member = member or self.bed.members[-1]
        name = 'nova-lxd-test-%s' % uuid.uuid4().hex[:8]
        container = self.plain.instances.create(
            {'name': name,
             'source': {'type': 'image', 'fingerprint': fingerprint}},
            target=member, wait=True)
        self.addCleanup(testbed.delete_container, container)
        container.start(wait=True)
        container.sync()
        self.assertEqual(('Running', member),
                         (container.status, container.location))
        self.assertGreater(container.state().processes, 0)
        return container

    def assertSpoolEmpty(self):
        self.assertEqual([], os.listdir(self.spool))

    # -- tests -----------------------------------------------------------

    def test_unified_tarball_boots_and_is_downloaded_once(self):
        path = self.tarball('unified.tar.gz')
        meta = self.glance_image(path)
        fingerprint = self.ensure(meta)
        self.assertEqual(sha256(path), fingerprint)
        self.assertEqual(fingerprint, self.alias_target(meta['id']))
        self.assertEqual(1, len(self.uploads))
        self.assertSpoolEmpty()
        self.boot(fingerprint)

        self.assertEqual(fingerprint, self.ensure(meta))
        self.assertEqual([meta['id']], self.downloads)
        self.assertEqual(1, len(self.uploads))
        self.assertEqual([fingerprint], self.fingerprints())

    def _rootfs(self, compression):
        path = self.tarball('rootfs.tar.' + compression, unified=False,
                            compression=compression)
        meta = self.glance_image(path, properties={
            'os_distro': 'busybox', 'os_version': '1.35',
            'raw.lxc': 'lxc.apparmor.profile=unconfined',
            'security.privileged': 'true'})
        fingerprint = self.ensure(meta)
        image = self.plain.images.get(fingerprint)
        self.assertEqual('x86_64', image.architecture)
        self.assertEqual({'os': 'busybox', 'release': '1.35',
                          'architecture': 'x86_64',
                          'description': 'busybox test'}, image.properties)
        self.assertEqual(image_format.alias(meta['id']),
                         image.aliases[0]['name'])
        self.assertSpoolEmpty()
        container = self.boot(fingerprint)
        self.assertNotIn('raw.lxc', container.expanded_config)
        self.assertNotIn('security.privileged', container.expanded_config)

    def test_rootfs_tarball_gz_boots(self):
        self._rootfs('gz')

    def test_rootfs_tarball_xz_boots(self):
        self._rootfs('xz')

    def test_squashfs_boots(self):
        # tools/lxd-testbed installs squashfs-tools.
        root = os.path.join(self.tmp, 'root')
        with tarfile.open(self.tarball('rootfs.tar', unified=False,
                                       compression='')) as tar:
            tar.extractall(root, filter='tar')
        path = os.path.join(self.tmp, 'rootfs.squashfs')
        subprocess.run(['mksquashfs', root, path, '-all-root', '-noappend',
                        '-quiet'], check=True, stdout=subprocess.DEVNULL)
        fingerprint = self.ensure(self.glance_image(path))
        self.assertEqual('container', self.plain.images.get(fingerprint).type)
        self.boot(fingerprint)

    def test_concurrent_boots_import_once(self):
        meta = self.glance_image(self.tarball('rootfs.tar.gz',
                                              unified=False))
        self.download_delay = 0.5
        results = []
        threads = [threading.Thread(
            target=lambda: results.append(self.ensure(meta)))
            for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(5, len(results))
        self.assertEqual(1, len(set(results)))
        self.assertEqual([meta['id']], self.downloads)
        self.assertEqual(1, len(self.uploads))
        self.assertEqual(results[:1], self.fingerprints())

    def test_image_already_in_lxd_only_gains_the_alias(self):
        path = self.tarball('unified.tar.gz')
        with open(path, 'rb') as f:
            existing = self.plain.images.create(f.read())
        existing.add_alias('nova-lxd-test-operators', '')
        meta = self.glance_image(path)

        self.assertEqual(existing.fingerprint, self.ensure(meta))
        self.assertEqual([], self.uploads)
        self.assertEqual([existing.fingerprint], self.fingerprints())
        self.assertEqual(
            {'nova-lxd-test-operators', image_format.alias(meta['id'])},
            {a['name'] for a in self.plain.images.get(
                existing.fingerprint).aliases})

    def test_import_by_another_process_is_success(self):
        # Another nova-compute uploaded the same bytes and made the alias
        # after this one looked: LXD answers the upload with an error and
        # the alias with a conflict.
        path = self.tarball('unified.tar.gz')
        meta = self.glance_image(path)
        real_exists = self.lxd.image_exists

        def other_process_first(fingerprint):
            with open(path, 'rb') as f:
                other = self.plain.images.create(f.read())
            other.add_alias(image_format.alias(meta['id']), '')
            self.lxd.image_exists = real_exists
            return False
        self.lxd.image_exists = other_process_first

        self.assertEqual(sha256(path), self.ensure(meta))
        self.assertEqual(1, len(self.uploads))
        self.assertEqual([sha256(path)], self.fingerprints())
        self.assertSpoolEmpty()

    def test_qcow2_refused_with_nothing_left(self):
        before = self.fingerprints()
        path = os.path.join(self.tmp, 'disk.img')
        with open(path, 'wb') as f:
            f.write(b'QFI\xfb\x00\x00\x00\x03' + bytes(1 << 20))
        # Labelled raw by a tenant: the bytes give it away.
        meta = self.glance_image(path)
        e = self.assertRaises(exception.ImageUnacceptable, self.ensure, meta)
        self.assertIn(QCOW2_MESSAGE, str(e))
        self.assertEqual([meta['id']], self.downloads)
        self.assertEqual([], self.uploads)
        self.assertEqual(before, self.fingerprints())
        self.assertIsNone(self.alias_target(meta['id']))
        self.assertSpoolEmpty()

        # Labelled qcow2: refused before any download.
        meta = self.glance_image(path, disk_format='qcow2')
        e = self.assertRaises(exception.ImageUnacceptable, self.ensure, meta)
        self.assertIn('it is a qcow2 disk image', str(e))
        self.assertEqual(1, len(self.downloads))
        self.assertSpoolEmpty()

    def test_failure_after_upload_leaves_no_image(self):
        meta = self.glance_image(self.tarball('rootfs.tar.gz',
                                              unified=False))

        def fail(*args):
            raise errors.LXDError(reason='injected')
        self.cache._alias = fail
        self.assertRaises(errors.LXDError, self.ensure, meta)
        self.assertEqual(1, len(self.uploads))
        self.assertEqual([], self.fingerprints())
        self.assertSpoolEmpty()

    def test_prune_removes_only_old_unused_images_of_ours(self):
        unused, used, passed_in_use = (
            self.ensure(self.glance_image(
                self.tarball('%s.tar.gz' % n, unified=False)))
            for n in ('unused', 'used', 'in-use'))
        self.boot(used)
        foreign_path = self.tarball('foreign.tar.gz')
        with open(foreign_path, 'rb') as f:
            foreign = self.plain.images.create(f.read())
        foreign.add_alias('nova-lxd-test-foreign', '')
        # Ours by de-duplication of an operator's image: still theirs.
        shared_path = self.tarball('shared.tar.gz')
        with open(shared_path, 'rb') as f:
            shared = self.plain.images.create(f.read())
        shared.add_alias('nova-lxd-test-shared', '')
        self.ensure(self.glance_image(shared_path))
        everything = self.fingerprints()

        # Another nova-compute, or this one restarted: no memory of
        # what it ensured, only LXD's dates.
        pruner = imagecache.ImageCache(self.lxd)
        self.assertEqual([], pruner.prune([passed_in_use], 3600))
        self.assertEqual(everything, self.fingerprints())
        self.assertEqual([unused], pruner.prune([passed_in_use], 0))
        self.assertEqual(sorted(set(everything) - {unused}),
                         self.fingerprints())
        # The operator's image stays, without the alias the driver added.
        self.assertEqual(['nova-lxd-test-shared'], [
            a['name'] for a in self.plain.images.get(
                shared.fingerprint).aliases])
        # The cache that ensured them keeps them for the age as well.
        self.assertEqual([], self.cache.prune([], 3600))


class DownloadsTest(base.ServersTestCase):
    """Where Glance images land on the way to LXD, through Nova's API."""

    def setUp(self):
        super().setUp()
        self.folders = []
        real = self.glance.download

        def download(context, image_id, data=None, dst_path=None,
                     trusted_certs=None):
            self.folders.append(os.path.dirname(dst_path))
            return real(context, image_id, data=data, dst_path=dst_path)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.GlanceFixture.download',
            lambda fixture, *a, **k: download(*a, **k)))
        self.downloads = os.path.join(CONF.state_path, 'lxd-images')

    def test_downloads_under_state_path_and_gone_after(self):
        self.boot()
        (folder,) = self.folders
        self.assertEqual(self.downloads, os.path.dirname(folder))
        self.assertEqual([], os.listdir(self.downloads))

    def test_no_download_without_room(self):
        # Glance says the image is 1 GiB more than the folder has free
        # (the flavor's disk holds it: Nova's API checks that).
        found = os.statvfs(CONF.state_path)
        size = found.f_bavail * found.f_frsize + (1 << 30)
        self.glance.images[self.image_id]['size'] = size
        flavor = self._create_flavor(name='large', vcpu=1, memory_mb=256,
                                     disk=(size >> 30) + 2, ephemeral=0)
        images = self.bed.image_fingerprints()
        server = self.boot(flavor_id=flavor, expected_state='ERROR')
        self.assertEqual([], self.folders)
        self.assertEqual([], os.listdir(self.downloads))
        # No member had room: tried on each, then refused. The operator
        # reads why in nova-compute's log.
        self.assertIn('Exceeded maximum number of retries',
                      server['fault']['message'])
        self.assertEqual(2, self.stdlog.logger.output.count(
            '(%d bytes) not downloaded' % size))
        self.assertEqual(images, self.bed.image_fingerprints())

    def test_stale_downloads_removed_when_nova_compute_starts(self):
        stale = os.path.join(self.downloads, 'nova-lxd-image-x1y2z3')
        os.makedirs(stale)
        with open(os.path.join(stale, 'image'), 'wb') as f:
            f.write(b'half an image')
        member = self.bed.members[-1]
        self.computes[member] = self.restart_compute_service(
            self.computes[member])
        self.assertEqual([], os.listdir(self.downloads))


class ReusedGlanceIdTest(base.ServersTestCase):
    """A Glance id that names other bytes now boots those (OSSN-0075)."""

    def glance_image(self, image_id, marker):
        data = self.bed.marked_image(marker).read()
        self.glance.create(None, {
            'id': image_id, 'name': 'busybox', 'status': 'active',
            'disk_format': 'raw', 'container_format': 'bare',
            'size': len(data), 'os_hash_algo': 'sha512',
            'os_hash_value': hashlib.sha512(data).hexdigest()},
            data=io.BytesIO(data))

    def forget_image(self, fingerprint):
        try:
            self.lxd.images.get(fingerprint).delete(wait=True)
        except pylxd_exc.NotFound:
            pass

    def marker(self, server):
        return self.lxd.instances.get(
            server['OS-EXT-SRV-ATTR:instance_name']).files.get(
                '/etc/nova-lxd-marker')

    def test_reused_id_boots_its_new_bytes(self):
        image_id = str(uuid.uuid4())
        self.glance_image(image_id, 'first tenant')
        first = self._create_server(image_uuid=image_id,
                                    flavor_id=self.flavor_id,
                                    networks='none')
        self.assertEqual(b'first tenant', self.marker(first))
        old = self.lxd.images.get_by_alias(
            image_format.alias(image_id)).fingerprint
        # Without its alias the first image is no longer the test bed's
        # to find as the driver's import: delete it at the end.
        self.addCleanup(self.forget_image, old)

        # Deleted, and made again under the same id with other bytes.
        self.glance.delete(None, image_id)
        self.glance_image(image_id, 'second tenant')
        second = self._create_server(image_uuid=image_id,
                                     flavor_id=self.flavor_id,
                                     networks='none')
        self.assertEqual(b'second tenant', self.marker(second))
        new = self.lxd.images.get_by_alias(image_format.alias(image_id))
        self.assertNotEqual(old, new.fingerprint)
        self.assertEqual(
            'sha512:' + self.glance.images[image_id]['os_hash_value'],
            jsonutils.loads(new.aliases[0]['description'])['glance_hash'])
        # The first server's image stays while it is used.
        self.assertIn(old, self.bed.image_fingerprints())
        self.assertEqual(b'first tenant', self.marker(first))
