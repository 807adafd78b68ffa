"""A published snapshot on its way to Glance: the seed left out (pure)."""

import gzip
import io
import tarfile

import testtools

from nova_lxd import snapshot_image

SEED = 'rootfs/var/lib/cloud/seed/config_drive'
SECRET = b'{"admin_pass": "s3cret", "uuid": "old-server"}'


def _tar(entries, fmt=tarfile.PAX_FORMAT):
    """[(name, data or None for a folder, extra TarInfo attributes)]."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w', format=fmt) as tar:
        for name, data, extra in entries:
            info = tarfile.TarInfo(name)
            for key, value in extra.items():
                setattr(info, key, value)
            if data is None and 'type' not in extra:
                info.type = tarfile.DIRTYPE
            info.size = len(data or b'')
            tar.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


PUBLISHED = [
    ('metadata.yaml', b'architecture: x86_64\n', {}),
    ('templates', None, {}),
    ('rootfs', None, {}),
    ('rootfs/root', None, {}),
    ('rootfs/root/hello', b'kept\n' * 300000, {}),
    ('rootfs/var/lib/cloud/seed', None, {}),
    (SEED, None, {}),
    (SEED + '/openstack/latest/meta_data.json', SECRET, {}),
    (SEED + '/openstack/latest/user_data', b'#cloud-config\n', {}),
    ('rootfs/var/lib/cloud/seed/config_drive.txt', b'not the seed', {}),
    ('rootfs/usr/' + 'long/' * 60 + 'name', b'a long path', {}),
    ('rootfs/usr/bin/ping', b'\x7fELF', {
        'pax_headers': {'SCHILY.xattr.security.capability': 'cap'}}),
    ('rootfs/root/copy', None, {
        'type': tarfile.LNKTYPE,
        'linkname': SEED + '/openstack/latest/meta_data.json'}),
    ('rootfs/root/seed', None, {'type': tarfile.SYMTYPE,
                                'linkname': '/var/lib/cloud/seed'}),
]


class WithoutSeedTest(testtools.TestCase):

    def filtered(self, data):
        out = snapshot_image.without_seed(io.BytesIO(data)).read()
        return gzip.decompress(out)

    def test_the_seed_is_left_out_and_the_rest_passes_byte_for_byte(self):
        for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
            data = self.filtered(_tar(PUBLISHED, fmt))
            self.assertNotIn(b's3cret', data)
            self.assertNotIn(b'#cloud-config', data)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                members = {m.name: m for m in tar}
                self.assertEqual(
                    [name for name, _, _ in PUBLISHED
                     if not name.startswith(SEED + '/') and
                     name not in (SEED, 'rootfs/root/copy')],
                    list(members))
                self.assertEqual(b'kept\n' * 300000, tar.extractfile(
                    members['rootfs/root/hello']).read())
                self.assertEqual(b'not the seed', tar.extractfile(
                    members['rootfs/var/lib/cloud/seed/config_drive.txt']
                ).read())
                if fmt == tarfile.PAX_FORMAT:
                    self.assertEqual('cap', members[
                        'rootfs/usr/bin/ping'].pax_headers[
                            'SCHILY.xattr.security.capability'])

    def test_an_image_without_seed_is_unchanged(self):
        entries = [e for e in PUBLISHED if not e[0].startswith(SEED + '/')
                   and e[0] not in (SEED, 'rootfs/root/copy')]
        data = _tar(entries)
        filtered = self.filtered(data)
        # The same members, byte for byte, and the end of the archive.
        end = len(filtered) - 2 * tarfile.BLOCKSIZE
        self.assertEqual(data[:end], filtered[:end])

    def test_dropped(self):
        for name in (SEED, SEED + '/', './' + SEED + '/x', '/' + SEED):
            self.assertTrue(snapshot_image.dropped(name), name)
        for name in ('rootfs/var/lib/cloud/seed', SEED + '.txt',
                     'var/lib/cloud/seed/config_drive/x'):
            self.assertFalse(snapshot_image.dropped(name), name)

    def test_what_is_no_plain_tar_is_an_error(self):
        for data in (gzip.compress(_tar(PUBLISHED)), b'x' * 512,
                     _tar(PUBLISHED)[:5000]):
            self.assertRaises(snapshot_image.SnapshotImageError,
                              snapshot_image.without_seed(
                                  io.BytesIO(data)).read)
