"""Glance images as LXD images: imported once per cluster, pruned unused.

A Glance image becomes one LXD image with the alias nova-glance-<id>.
Every nova-compute of a cluster finds it there; an image LXD already has
(same fingerprint) only gains the alias. What the bytes are and the
metadata made for them is decided in nova_lxd.images (pure).
"""

import contextlib
import hashlib
import os
import shutil
import tempfile
import time

from oslo_concurrency import lockutils
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import timeutils
from pylxd import exceptions as pylxd_exc
import requests
from requests_toolbelt import multipart

from nova.image import glance

from nova_lxd import images
from nova_lxd.lxd import errors

LOG = logging.getLogger(__name__)

# Processing an uploaded image (hashing, unpacking its metadata, copying
# it to other members) grows with its size, not with [lxd] timeout.
IMPORT_TIMEOUT = 1800
CHUNK = 1024 * 1024
FAILURES = (pylxd_exc.LXDAPIException, requests.RequestException)
LXD_SUCCESS = 200


def _error(exc):
    if isinstance(exc, pylxd_exc.NotFound):
        return errors.LXDNotFound(reason=errors.reason(exc))
    return errors.LXDError(reason=errors.reason(exc))


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

    @property
    def _api(self):
        return self.lxd.pylxd.api

    # -- ensure ----------------------------------------------------------

    def ensure(self, context, image_meta, member_arch, trusted_certs=None):
        """The LXD fingerprint of a Glance image, imported when missing.

        ``image_meta``: the ImageMeta spawn gets, or Glance's own dict.
        ``member_arch``: LXD's architecture name of the target member,
        for a root filesystem whose image has no hw_architecture.
        Raises ImageUnacceptable for what is no LXD image, LXDError when
        LXD fails; either way nothing of the attempt is left.
        """
        meta = images.glance_fields(image_meta)
        images.preflight(meta)
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
            kind = images.sniff(path, meta['id'])
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
        if kind == images.UNIFIED:
            return [(None, path)]
        metadata = os.path.join(workdir, 'metadata.tar')
        with open(metadata, 'wb') as f:
            f.write(images.metadata_tarball(meta, member_arch))
        return [('metadata', metadata), ('rootfs', path)]

    def _upload(self, parts, fingerprint):
        """Upload unless LXD has the fingerprint; True when we added it."""
        if self._exists(fingerprint):
            return False
        try:
            uploaded = self._post_image(parts)
        except errors.LXDError:
            # "Image with same fingerprint already exists": another
            # process imported it meanwhile. Anything else is a failure.
            if self._exists(fingerprint):
                return False
            raise
        if uploaded != fingerprint:
            self._delete(uploaded)
            raise errors.LXDError(
                reason='image uploaded as %s, expected fingerprint %s' % (
                    uploaded, fingerprint))
        return True

    def _post_image(self, parts):
        """POST /1.0/images, streaming the files; LXD's fingerprint."""
        with contextlib.ExitStack() as files:
            if parts[0][0] is None:
                body = files.enter_context(open(parts[0][1], 'rb'))
                content_type = 'application/octet-stream'
            else:
                body = multipart.MultipartEncoder([
                    (name, (name, files.enter_context(open(path, 'rb')),
                            'application/octet-stream'))
                    for name, path in parts])
                content_type = body.content_type
            try:
                response = self._api.images.post(
                    data=body, headers={'Content-Type': content_type})
            except FAILURES as e:
                raise _error(e)
            return self._wait(response, IMPORT_TIMEOUT)['metadata'][
                'fingerprint']

    def _add_alias(self, meta, fingerprint, created):
        """Alias the image; delete what this call uploaded and won't use."""
        try:
            found = self._alias(meta, fingerprint)
        except Exception:
            with excutils.save_and_reraise_exception():
                if created:
                    self._delete(fingerprint)
        if created and found != fingerprint:
            self._delete(fingerprint)
        return found

    def _alias(self, meta, fingerprint):
        """The image the alias names: ours, or one aliased before us.

        Another process may have aliased its own import first (say, one
        made for another member's architecture): that one is used.
        """
        name = images.alias(meta['id'])
        try:
            self._api.images.aliases.post(json={
                'name': name, 'target': fingerprint,
                'description': images.alias_description(meta)})
            return fingerprint
        except pylxd_exc.Conflict:
            pass
        except FAILURES as e:
            raise _error(e)
        found = self._alias_target(meta['id'])
        if not found:
            raise errors.LXDError(
                reason='alias %s was deleted while being made' % name)
        return found

    # -- LXD requests ----------------------------------------------------

    def _alias_target(self, image_id):
        try:
            return self._api.images.aliases[images.alias(image_id)].get(
            ).json()['metadata']['target']
        except pylxd_exc.NotFound:
            return None
        except FAILURES as e:
            raise _error(e)

    def _exists(self, fingerprint):
        try:
            self._api.images[fingerprint].get()
            return True
        except pylxd_exc.NotFound:
            return False
        except FAILURES as e:
            raise _error(e)

    def _delete(self, fingerprint):
        """Delete an image (and its aliases); gone already is fine."""
        try:
            response = self._api.images[fingerprint].delete()
            self._wait(response, self.lxd.conf.timeout)
        except pylxd_exc.NotFound:
            pass
        except FAILURES as e:
            raise _error(e)

    def _wait(self, response, timeout):
        """The finished operation of an async answer; LXDError if failed."""
        op_id = response.json()['operation'].rsplit('/', 1)[-1]
        try:
            op = self._api.operations[op_id].wait.get(
                params={'timeout': timeout},
                timeout=timeout + self.lxd.conf.timeout).json()['metadata']
        except FAILURES as e:
            raise _error(e)
        if op['status_code'] != LXD_SUCCESS:
            raise errors.LXDError(reason=op.get('err') or '%s after %ds' % (
                op['status'], timeout))
        return op

    # -- prune -----------------------------------------------------------

    def prune(self, in_use_fingerprints=(), max_unused_age_seconds=86400):
        """Delete our images no instance uses and unused for the age.

        Only images whose aliases are all ours (nova-glance-*) are
        considered. In use: the fingerprints given, those of every LXD
        instance of the project (any nova-compute's), and those this
        process ensured within the age. Returns the deleted fingerprints.
        """
        in_use = set(in_use_fingerprints) | self._used_by_instances()
        recent = time.monotonic() - max_unused_age_seconds
        in_use |= {fp for fp, when in self._ensured.items() if when > recent}
        now = timeutils.utcnow(with_timezone=True)
        removed = []
        for image in self._images():
            for alias in images.stale_aliases(image, in_use, now,
                                              max_unused_age_seconds):
                self._delete_alias(alias)
            if not images.prunable(image, in_use, now,
                                   max_unused_age_seconds):
                continue
            fingerprint = image['fingerprint']
            names = ', '.join(a['name'] for a in image['aliases'])
            try:
                self._delete(fingerprint)
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
        return {i['config'].get('volatile.base_image')
                for i in self.lxd.instances()} - {None}

    def _delete_alias(self, name):
        try:
            self._api.images.aliases[name].delete()
            LOG.info('Removed alias %s from an unused LXD image', name)
        except pylxd_exc.NotFound:
            pass
        except FAILURES as e:
            # Periodic: the next run tries again.
            LOG.warning('Could not remove LXD image alias %s: %s', name, e)

    def _images(self):
        try:
            return self._api.images.get(params={'recursion': 1}).json()[
                'metadata']
        except FAILURES as e:
            raise _error(e)
