"""Nova's image cache for LXD: Glance images as LXD images, and snapshots.

A Glance image becomes one LXD image with the alias nova-glance-<id>.
Every nova-compute of a cluster finds it there; an image LXD already has
(same fingerprint) only gains the alias. Unused imports are pruned by
Nova's image cache manager. What the bytes are and the metadata made for
them is decided in nova_lxd.image_format (pure); every LXD request goes
through nova_lxd.lxd.client.

A snapshot goes the other way: an LXD snapshot of the container,
published as an LXD image (a unified tarball), streamed to Glance.
"""

import datetime
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

from oslo_concurrency import lockutils
from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import timeutils
from oslo_utils import units

from nova.compute import task_states
import nova.conf
from nova import exception
from nova.image import glance
from nova import utils

from nova_lxd import conf as lxd_conf  # noqa: F401 (registers [lxd])
from nova_lxd import constants
from nova_lxd import container
from nova_lxd import image_format
from nova_lxd.lxd import errors
from nova_lxd import snapshot_image

CONF = nova.conf.CONF

LOG = logging.getLogger(__name__)

# A published snapshot image (alias nova-snapshot-<image id>) older than
# this (or the image cache's unused age, if longer) with no process of
# this host on it is an orphan: its export to Glance has ended one way or
# another long before.
SNAPSHOT_ORPHAN_AGE = 86400
CHUNK = 1024 * 1024
# Free space left beside a download.
DOWNLOAD_RESERVE = 256 * units.Mi
# Each download's own folder under [lxd] image_download_dir.
DOWNLOAD_PREFIX = 'nova-lxd-image-'
# unsquashfs listing a tenant's squashfs: its memory and CPU time.
UNSQUASHFS_LIMITS = processutils.ProcessLimits(address_space=units.Gi,
                                               cpu_time=120)


def _sha256(paths):
    """LXD's fingerprint: sha256 of the upload's parts, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(CHUNK), b''):
                digest.update(chunk)
    return digest.hexdigest()


def _squashfs_size(path, image_id, limits):
    """What a squashfs's files add up to: ``unsquashfs -lls``, bounded.

    The sizes are in its inode table, which only a squashfs reader walks
    (a sparse file of any size is a few bytes there). unsquashfs runs
    under UNSQUASHFS_LIMITS; its listing is read line by line, at most one
    line per inode the superblock announced, and stopped as soon as the
    sizes exceed ``limits``.
    """
    program = shutil.which('unsquashfs')
    if not program:
        LOG.error('Glance image %s is a squashfs, and this host has no '
                  'unsquashfs to check it: install squashfs-tools',
                  image_id)
        raise image_format.refused(
            image_id, 'squashfs images cannot be checked on this host; '
            'upload a tarball')
    command = ([sys.executable, '-m', 'oslo_concurrency.prlimit'] +
               UNSQUASHFS_LIMITS.prlimit_args() +
               ['--', program, '-lls', path])
    with subprocess.Popen(command, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:
        try:
            size = image_format.squashfs_size(
                _lines(proc.stdout, limits.files + 1, image_id), image_id,
                limits)
            status = proc.wait()
        except BaseException:
            proc.kill()
            raise
    if status:
        raise image_format.not_lxd(
            image_id, 'a damaged squashfs (unsquashfs exit status %d)'
            % status)
    return size


def _lines(stream, most, image_id):
    """At most ``most`` lines (each at most 4 KiB) of a listing."""
    for count, line in enumerate(iter(lambda: stream.readline(4096), b'')):
        if count == most:
            raise image_format.refused(
                image_id, 'its squashfs holds more than %d files ([lxd] '
                'image_max_files)' % (most - 1))
        yield line


class ImageCache(object):
    """The LXD images of Glance images, shared by a cluster's members.

    ``lxd`` is a nova_lxd.lxd.client.LXD. Downloads go to a folder of
    their own under ``download_dir`` (default: [lxd] image_download_dir,
    else lxd-images under Nova's state_path), removed afterwards.
    """

    def __init__(self, lxd, download_dir=None):
        self.lxd = lxd
        self._download_dir = download_dir
        self._glance = glance.API()
        self._ensured = {}      # fingerprint -> monotonic time of ensure
        self._publishing = set()    # snapshot aliases in this process

    @property
    def download_dir(self):
        return (self._download_dir or CONF.lxd.image_download_dir or
                os.path.join(CONF.state_path, 'lxd-images'))

    def remove_stale_downloads(self):
        """Remove downloads that no process works on (a crash's leftovers).

        A download holds a lock on its folder for as long as it lasts
        (flock: the kernel drops it with the process).
        """
        if not os.path.isdir(self.download_dir):
            return
        for name in os.listdir(self.download_dir):
            path = os.path.join(self.download_dir, name)
            if not name.startswith(DOWNLOAD_PREFIX) or not os.path.isdir(
                    path):
                continue
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                LOG.info('Removing %s, a download left by a nova-compute '
                         'that stopped', path)
                shutil.rmtree(path, ignore_errors=True)
            except BlockingIOError:
                pass            # another nova-compute's, in progress
            finally:
                os.close(fd)

    # -- ensure ----------------------------------------------------------

    def ensure(self, context, image_meta, member_arch, root_gb=0,
               trusted_certs=None):
        """The LXD fingerprint of a Glance image, imported when missing.

        ``image_meta``: the ImageMeta spawn gets, or Glance's own dict.
        ``member_arch``: LXD's architecture name of the target member,
        for a root filesystem whose image has no hw_architecture.
        ``root_gb``: the flavor's root disk; what the image's files add up
        to must fit it (when not 0) and [lxd] image_max_expanded_gb.
        Raises ImageUnacceptable for what is no LXD image or does not fit,
        LXDError when LXD fails; either way nothing of the attempt is left.
        """
        meta = image_format.glance_fields(image_meta)
        image_format.preflight(meta)
        # Glance's hash and size now: the id may name other bytes than
        # when the alias was made (OSSN-0075).
        glance_image = self._glance.get(context, meta['id'])
        meta.update(hash=image_format.glance_hash(glance_image),
                    size=glance_image.get('size'))
        limits = image_format.limits(root_gb,
                                     CONF.lxd.image_max_expanded_gb,
                                     CONF.lxd.image_max_files)
        fingerprint = self._cached(meta, limits)
        if not fingerprint:
            # One import per image in this process; other processes are
            # tolerated by _upload and _add_alias.
            with lockutils.lock('nova-lxd-image-' + meta['id']):
                fingerprint = (self._cached(meta, limits) or
                               self._import(context, meta, member_arch,
                                            limits, trusted_certs))
        self._ensured[fingerprint] = time.monotonic()
        return fingerprint

    def _cached(self, meta, limits):
        """The fingerprint the image's alias names, if it is these bytes.

        An alias recorded under another Glance hash (or before hashes
        were recorded) is removed, so that the image is imported again;
        the LXD image it named stays for the containers made from it,
        until prune. A cached image too large for ``limits`` is refused.
        """
        name = image_format.alias(meta['id'])
        alias = self.lxd.image_alias(name)
        if not alias:
            return None
        record = image_format.cache_record(alias.get('description'))
        if record is None or record['glance_hash'] != meta['hash']:
            LOG.warning('LXD image %s (alias %s) holds other bytes than '
                        'Glance image %s has now (%s); importing it again',
                        alias['target'], name, meta['id'], meta['hash'])
            self.lxd.delete_image_alias(name)
            return None
        image_format.check_size(meta['id'], record['size'], record['files'],
                                limits)
        return alias['target']

    def _workdir(self, meta):
        """A locked folder of its own for a download that fits there.

        Raises ComputeResourcesUnavailable (the build goes to another
        member) when the file system lacks room for Glance's size.
        """
        os.makedirs(self.download_dir, mode=0o700, exist_ok=True)
        found = os.statvfs(self.download_dir)
        free = found.f_bavail * found.f_frsize
        needed = (meta.get('size') or 0) + DOWNLOAD_RESERVE
        if needed > free:
            LOG.warning('Glance image %s (%s bytes) not downloaded: %d '
                        'bytes free in %s ([lxd] image_download_dir), %d '
                        'needed', meta['id'], meta.get('size'), free,
                        self.download_dir, needed)
            raise exception.ComputeResourcesUnavailable(
                reason='not enough free space on this host to download '
                       'image %s (%d bytes needed, %d free)' % (
                           meta['id'], needed, free))
        workdir = tempfile.mkdtemp(prefix=DOWNLOAD_PREFIX,
                                   dir=self.download_dir)
        fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return workdir, fd

    def _import(self, context, meta, member_arch, limits, trusted_certs):
        start = time.monotonic()
        workdir, lock = self._workdir(meta)
        try:
            path = os.path.join(workdir, 'image')
            self._glance.download(context, meta['id'], dest_path=path,
                                  trusted_certs=trusted_certs)
            downloaded = time.monotonic()
            inspection = self._inspect(path, meta['id'], limits)
            kind = inspection.kind
            parts = self._parts(kind, path, meta, member_arch, workdir)
            fingerprint = _sha256(p for _, p in parts)
            created = self._upload(parts, fingerprint)
            found = self._add_alias(meta, inspection, fingerprint, created)
            LOG.info('Glance image %(id)s (%(kind)s, %(size)d bytes) is LXD '
                     'image %(fp)s, %(how)s: download %(dl).1fs, then '
                     '%(imp).1fs', {
                         'id': meta['id'], 'kind': kind,
                         'size': os.path.getsize(path), 'fp': found,
                         'how': 'imported' if created and found == fingerprint
                         else 'already in LXD',
                         'dl': downloaded - start,
                         'imp': time.monotonic() - downloaded})
            return found
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            os.close(lock)

    @staticmethod
    def _inspect(path, image_id, limits):
        """image_format.inspect, in a native thread (it is CPU work).

        Under eventlet a greenthread that decompresses for long would hold
        up every other one (RPC heartbeats included).
        """
        found = utils.tpool_wrap(image_format.inspect)(path, image_id,
                                                       limits)
        if found.kind == image_format.SQUASHFS:
            size = _squashfs_size(path, image_id, limits)
            found = found._replace(size=size)
        return found

    @staticmethod
    def _parts(kind, path, meta, member_arch, workdir):
        """(form name, file) of the upload; a unified tarball goes alone.

        A bare root filesystem gets the metadata tarball made for it. The
        rootfs part is named "rootfs" for squashfs too: "rootfs.img"
        would make LXD take it for a virtual-machine image.
        """
        if kind == image_format.UNIFIED:
            return [(None, path)]
        metadata = os.path.join(workdir, 'metadata.tar')
        with open(metadata, 'wb') as f:
            f.write(image_format.metadata_tarball(meta, member_arch))
        return [('metadata', metadata), ('rootfs', path)]

    def _upload(self, parts, fingerprint):
        """Upload unless LXD has the fingerprint; True when we added it."""
        if self.lxd.image_exists(fingerprint):
            return False
        try:
            uploaded = self.lxd.upload_image(parts)
        except errors.LXDError:
            # "Image with same fingerprint already exists": another
            # process imported it meanwhile. Anything else is a failure.
            if self.lxd.image_exists(fingerprint):
                return False
            raise
        if uploaded != fingerprint:
            self.lxd.delete_image(uploaded)
            raise errors.LXDError(
                reason='image uploaded as %s, expected fingerprint %s' % (
                    uploaded, fingerprint))
        return True

    def _add_alias(self, meta, inspection, fingerprint, created):
        """Alias the image; delete what this call uploaded and won't use."""
        try:
            found = self._alias(meta, inspection, fingerprint)
        except Exception:
            with excutils.save_and_reraise_exception():
                if created:
                    self.lxd.delete_image(fingerprint)
        if created and found != fingerprint:
            self.lxd.delete_image(fingerprint)
        return found

    def _alias(self, meta, inspection, fingerprint):
        """The image the alias names: ours, or one aliased before us.

        Another process may have aliased its own import first (say, one
        made for another member's architecture): that one is used.
        """
        name = image_format.alias(meta['id'])
        if self.lxd.add_image_alias(
                name, fingerprint,
                image_format.alias_description(meta, inspection)):
            return fingerprint
        found = self.lxd.image_alias(name)
        if not found:
            raise errors.LXDError(
                reason='alias %s was deleted while being made' % name)
        return found['target']

    # -- prune -----------------------------------------------------------

    def prune(self, in_use_fingerprints=(), max_unused_age_seconds=86400):
        """Delete our images no instance uses and unused for the age.

        Only images whose aliases are all ours (nova-glance-*) are
        considered. In use: the fingerprints given, those of every LXD
        instance of the project (any nova-compute's), and those this
        process ensured within the age. Also deleted: snapshot images
        (nova-snapshot-*) that no snapshot of this process is exporting,
        published more than the age, and at least SNAPSHOT_ORPHAN_AGE,
        ago. Returns the deleted fingerprints.
        """
        used = self._used_by_instances()
        if used is None:
            LOG.info('A member is offline: which images its containers use '
                     'is not known; nothing is pruned until it is back')
            return []
        in_use = set(in_use_fingerprints) | used
        recent = time.monotonic() - max_unused_age_seconds
        in_use |= {fp for fp, when in self._ensured.items() if when > recent}
        now = timeutils.utcnow(with_timezone=True)
        orphan_age = max(max_unused_age_seconds, SNAPSHOT_ORPHAN_AGE)
        removed = []
        for image in self.lxd.images():
            for alias in image_format.stale_aliases(
                    image, in_use, now, max_unused_age_seconds):
                self._delete_alias(alias)
            if not (image_format.prunable(image, in_use, now,
                                          max_unused_age_seconds) or
                    image_format.snapshot_orphan(image, now, orphan_age,
                                                 self._publishing)):
                continue
            fingerprint = image['fingerprint']
            names = ', '.join(a['name'] for a in image['aliases'])
            try:
                self.lxd.delete_image(fingerprint)
            except errors.LXDError as e:
                # Periodic: the next run tries again.
                LOG.warning('Could not delete unused LXD image %s (%s): %s',
                            fingerprint, names, e)
                continue
            LOG.info('Deleted unused LXD image %s (%s)', fingerprint, names)
            self._ensured.pop(fingerprint, None)
            removed.append(fingerprint)
        return removed

    def _used_by_instances(self):
        """Base images of every instance; None when some are unknown.

        LXD lists an offline member's instances without their config.
        """
        found = self.lxd.instances()
        if any(i.get('config') is None for i in found):
            return None
        return {i['config'].get('volatile.base_image') for i in found} - {
            None}

    def _delete_alias(self, name):
        try:
            if self.lxd.delete_image_alias(name):
                LOG.info('Removed alias %s from an unused LXD image', name)
        except errors.LXDError as e:
            # Periodic: the next run tries again.
            LOG.warning('Could not remove LXD image alias %s: %s', name, e)

    # -- snapshot --------------------------------------------------------

    def snapshot(self, context, instance, image_id, update_task_state):
        """Publish a point-in-time copy of the container to Glance.

        An LXD snapshot first, so the server keeps running; then a private
        LXD image of it (a unified tarball), streamed to Glance without
        the config drive (nova_lxd.snapshot_image), removed from LXD once
        uploaded. Both are named nova-snapshot-<image id>:
        should a step outlive its timeout, the LXD snapshot expires by
        itself and prune removes the image LXD went on to publish.
        """
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        snapshot = constants.SNAPSHOT_PREFIX + image_id
        name = container.name(instance)
        expires = timeutils.utcnow(with_timezone=True) + datetime.timedelta(
            seconds=2 * CONF.lxd.snapshot_timeout + CONF.lxd.delete_timeout)
        try:
            self.lxd.snapshot(name, snapshot, expires.isoformat())
        except errors.LXDNotFound:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        self._publishing.add(snapshot)
        try:
            try:
                fingerprint = self.lxd.publish_snapshot(
                    name, snapshot, {'description': instance.uuid},
                    {'name': snapshot, 'description':
                     'snapshot of instance %s' % instance.uuid})
            finally:
                self._delete_snapshot(instance, name, snapshot, expires)
            try:
                update_task_state(
                    task_state=task_states.IMAGE_UPLOADING,
                    expected_state=task_states.IMAGE_PENDING_UPLOAD)
                with self.lxd.export_image(fingerprint) as exported:
                    self._glance.update(
                        context, image_id, {'disk_format': 'raw',
                                            'container_format': 'bare'},
                        data=snapshot_image.without_seed(exported.raw))
            finally:
                self.lxd.delete_image(fingerprint)
        finally:
            self._publishing.discard(snapshot)

    def _delete_snapshot(self, instance, name, snapshot, expires):
        try:
            self.lxd.delete_snapshot(name, snapshot)
        except errors.LXDError as e:
            # Not in the way of what went wrong before, if anything did.
            LOG.warning('LXD snapshot %s/%s not deleted (%s); LXD deletes '
                        'it at %s', name, snapshot, e,
                        expires.isoformat(), instance=instance)
