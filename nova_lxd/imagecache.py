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

import hashlib
import os
import shutil
import tempfile
import time

from oslo_concurrency import lockutils
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import timeutils

from nova.compute import task_states
from nova import exception
from nova.image import glance

from nova_lxd import constants
from nova_lxd import container
from nova_lxd import image_format
from nova_lxd.lxd import errors

LOG = logging.getLogger(__name__)

# Processing an uploaded image (hashing, unpacking its metadata, copying
# it to other members) grows with its size, not with [lxd] timeout.
IMPORT_TIMEOUT = 1800
CHUNK = 1024 * 1024


def _sha256(paths):
    """LXD's fingerprint: sha256 of the upload's parts, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(CHUNK), b''):
                digest.update(chunk)
    return digest.hexdigest()


class ImageCache(object):
    """The LXD images of Glance images, shared by a cluster's members.

    ``lxd`` is a nova_lxd.lxd.client.LXD. Downloads go to a folder made
    under ``tmp_dir`` (default: the system's) and removed afterwards.
    """

    def __init__(self, lxd, tmp_dir=None):
        self.lxd = lxd
        self.tmp_dir = tmp_dir
        self._glance = glance.API()
        self._ensured = {}      # fingerprint -> monotonic time of ensure

    # -- ensure ----------------------------------------------------------

    def ensure(self, context, image_meta, member_arch, trusted_certs=None):
        """The LXD fingerprint of a Glance image, imported when missing.

        ``image_meta``: the ImageMeta spawn gets, or Glance's own dict.
        ``member_arch``: LXD's architecture name of the target member,
        for a root filesystem whose image has no hw_architecture.
        Raises ImageUnacceptable for what is no LXD image, LXDError when
        LXD fails; either way nothing of the attempt is left.
        """
        meta = image_format.glance_fields(image_meta)
        image_format.preflight(meta)
        fingerprint = self._alias_target(meta['id'])
        if not fingerprint:
            # One import per image in this process; other processes are
            # tolerated by _upload and _add_alias.
            with lockutils.lock('nova-lxd-image-' + meta['id']):
                fingerprint = (self._alias_target(meta['id']) or
                               self._import(context, meta, member_arch,
                                            trusted_certs))
        self._ensured[fingerprint] = time.monotonic()
        return fingerprint

    def _import(self, context, meta, member_arch, trusted_certs):
        start = time.monotonic()
        workdir = tempfile.mkdtemp(prefix='nova-lxd-image-',
                                   dir=self.tmp_dir)
        try:
            path = os.path.join(workdir, 'image')
            self._glance.download(context, meta['id'], dest_path=path,
                                  trusted_certs=trusted_certs)
            downloaded = time.monotonic()
            kind = image_format.sniff(path, meta['id'])
            parts = self._parts(kind, path, meta, member_arch, workdir)
            fingerprint = _sha256(p for _, p in parts)
            created = self._upload(parts, fingerprint)
            found = self._add_alias(meta, fingerprint, created)
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
            uploaded = self.lxd.upload_image(parts, IMPORT_TIMEOUT)
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

    def _add_alias(self, meta, fingerprint, created):
        """Alias the image; delete what this call uploaded and won't use."""
        try:
            found = self._alias(meta, fingerprint)
        except Exception:
            with excutils.save_and_reraise_exception():
                if created:
                    self.lxd.delete_image(fingerprint)
        if created and found != fingerprint:
            self.lxd.delete_image(fingerprint)
        return found

    def _alias(self, meta, fingerprint):
        """The image the alias names: ours, or one aliased before us.

        Another process may have aliased its own import first (say, one
        made for another member's architecture): that one is used.
        """
        name = image_format.alias(meta['id'])
        if self.lxd.add_image_alias(name, fingerprint,
                                    image_format.alias_description(meta)):
            return fingerprint
        found = self._alias_target(meta['id'])
        if not found:
            raise errors.LXDError(
                reason='alias %s was deleted while being made' % name)
        return found

    def _alias_target(self, image_id):
        return self.lxd.image_alias_target(image_format.alias(image_id))

    # -- prune -----------------------------------------------------------

    def prune(self, in_use_fingerprints=(), max_unused_age_seconds=86400):
        """Delete our images no instance uses and unused for the age.

        Only images whose aliases are all ours (nova-glance-*) are
        considered. In use: the fingerprints given, those of every LXD
        instance of the project (any nova-compute's), and those this
        process ensured within the age. Returns the deleted fingerprints.
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
        removed = []
        for image in self.lxd.images():
            for alias in image_format.stale_aliases(
                    image, in_use, now, max_unused_age_seconds):
                self._delete_alias(alias)
            if not image_format.prunable(image, in_use, now,
                                         max_unused_age_seconds):
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
        LXD image of it (a unified tarball), streamed to Glance, removed
        from LXD once uploaded.
        """
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        snapshot = constants.SNAPSHOT_PREFIX + image_id
        name = container.name(instance)
        try:
            self.lxd.snapshot(name, snapshot)
        except errors.LXDNotFound:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        try:
            fingerprint = self.lxd.publish_snapshot(
                name, snapshot, {'description': instance.uuid})
        finally:
            self.lxd.delete_snapshot(name, snapshot)
        try:
            update_task_state(task_state=task_states.IMAGE_UPLOADING,
                              expected_state=task_states.IMAGE_PENDING_UPLOAD)
            with self.lxd.export_image(fingerprint) as exported:
                self._glance.update(context, image_id,
                                    {'disk_format': 'raw',
                                     'container_format': 'bare'},
                                    data=exported.raw)
        finally:
            self.lxd.delete_image(fingerprint)
