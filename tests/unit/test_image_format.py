"""What a Glance image is, and the LXD metadata made for it (pure).

Every image is built here, small, from tarfile, gzip, lzma and bz2.
"""

import bz2
import datetime
import gzip
import io
import lzma
import os
import tarfile

import fixtures
import testtools
import yaml

from nova import exception
from nova import objects

from nova_lxd import image_format as images

IMAGE_ID = '6f1e4c5a-2b3d-4e5f-8a9b-0c1d2e3f4a5b'
HINT = ('; upload an LXD unified tarball or a root filesystem tarball')
METADATA = b'architecture: x86_64\ncreation_date: 1700000000\n'
ROOTFS = (('etc', None), ('etc/hostname', b'busybox\n'), ('bin', None),
          ('bin/sh', b'\x7fELF'), ('usr', None))
COMPRESSORS = {'': open, 'gz': gzip.open, 'xz': lzma.open, 'bz2': bz2.open}


def _tar_bytes(entries):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w') as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def _unified(metadata=METADATA):
    return ((('metadata.yaml', metadata), ('templates', None),
             ('rootfs', None)) +
            tuple(('rootfs/' + name, content) for name, content in ROOTFS))


class SniffTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def write(self, data, compression=''):
        path = os.path.join(self.tmp, 'image')
        with COMPRESSORS[compression](path, 'wb') as f:
            f.write(data)
        return path

    def tar(self, entries, compression=''):
        return self.write(_tar_bytes(entries), compression)

    def at(self, offset, magic, size=0x8800):
        data = bytearray(size)
        data[offset:offset + len(magic)] = magic
        return self.write(bytes(data))

    def assertRefused(self, path, what):
        e = self.assertRaises(exception.ImageUnacceptable,
                              images.sniff, path, IMAGE_ID)
        self.assertEqual(
            'Image %s is unacceptable: image is not an LXD image: it is '
            '%s%s' % (IMAGE_ID, what, HINT), str(e))

    def test_unified_tarballs(self):
        for compression in COMPRESSORS:
            self.assertEqual(images.UNIFIED, images.sniff(
                self.tar(_unified(), compression), IMAGE_ID), compression)

    def test_rootfs_tarballs(self):
        for compression in COMPRESSORS:
            self.assertEqual(images.ROOTFS_TARBALL, images.sniff(
                self.tar(ROOTFS, compression), IMAGE_ID), compression)

    def test_rootfs_tarball_made_with_tar_c_dot(self):
        # "tar -C rootfs -czf image.tar.gz ." names members ./etc, ...
        dotted = (('.', None),) + tuple(('./' + n, c) for n, c in ROOTFS)
        self.assertEqual(images.ROOTFS_TARBALL,
                         images.sniff(self.tar(dotted, 'gz'), IMAGE_ID))

    def test_squashfs_by_its_magic(self):
        self.assertEqual(images.SQUASHFS, images.sniff(
            self.write(b'hsqs' + bytes(4096)), IMAGE_ID))

    def test_qcow2(self):
        self.assertRefused(self.at(0, b'QFI\xfb\x00\x00\x00\x03'),
                           'a qcow2 disk image')

    def test_qcow2_message_as_tenants_read_it(self):
        e = self.assertRaises(exception.ImageUnacceptable, images.sniff,
                              self.at(0, b'QFI\xfb'), IMAGE_ID)
        self.assertIn('image is not an LXD image: it is a qcow2 disk image; '
                      'upload an LXD unified tarball or a root filesystem '
                      'tarball', str(e))

    def test_iso9660(self):
        self.assertRefused(self.at(0x8001, b'CD001'),
                           'an ISO 9660 (CD/DVD) image')

    def test_mbr_disk(self):
        self.assertRefused(self.at(510, b'\x55\xaa'),
                           'a disk image with an MBR partition table')

    def test_gpt_disk(self):
        data = bytearray(0x8800)
        data[510:512] = b'\x55\xaa'     # the protective MBR
        data[512:520] = b'EFI PART'
        self.assertRefused(self.write(bytes(data)),
                           'a disk image with a GPT partition table')

    def test_other_vm_disks(self):
        for offset, magic, what in (
                (0, b'KDMV', 'a VMDK disk image'),
                (0, b'vhdxfile', 'a VHDX disk image'),
                (0, b'conectix', 'a VHD disk image'),
                (0x40, b'\x7f\x10\xda\xbe', 'a VirtualBox VDI disk image'),
                (0, b'QED\x00', 'a QED disk image'),
                (0, b'LUKS\xba\xbe\x00\x01', 'a LUKS-encrypted disk image'),
                (0, b'# Disk DescriptorFile', 'a VMDK disk descriptor'),
                (0x438, b'\x53\xef', 'an ext2/3/4 file system image')):
            self.assertRefused(self.at(offset, magic), what)

    def test_compressed_disk_image(self):
        self.assertRefused(self.write(b'QFI\xfb' + bytes(600), 'gz'),
                           'a gzip-compressed file: a qcow2 disk image')

    def test_unknown_blobs(self):
        unknown = 'data that is neither a tar archive nor squashfs'
        self.assertRefused(self.write(b'hello' * 99),
                           unknown)
        self.assertRefused(self.write(b''), unknown)
        self.assertRefused(self.write(b'plain text', 'xz'),
                           'a xz-compressed file: ' + unknown)

    def test_zstd(self):
        self.assertRefused(
            self.write(b'\x28\xb5\x2f\xfd' + bytes(64)),
            'a zstd-compressed file, which is not read here (use gzip or '
            'xz)')

    def test_damaged_gzip(self):
        whole = gzip.compress(_tar_bytes(ROOTFS) * 4)
        e = self.assertRaises(exception.ImageUnacceptable, images.sniff,
                              self.write(whole[:40]), IMAGE_ID)
        self.assertIn('it is a damaged gzip file', str(e))

    def test_tar_of_something_else(self):
        self.assertRefused(
            self.tar((('README', b'hi'), ('docs', None)), 'gz'),
            'a tar archive with neither metadata.yaml nor a root file '
            'system (etc/, bin/ or usr/) at its top')

    def test_metadata_tarball_alone(self):
        self.assertRefused(
            self.tar((('metadata.yaml', METADATA), ('templates', None))),
            'an LXD metadata tarball without its root file system (no '
            'rootfs/ folder)')

    def test_unified_with_bad_metadata(self):
        for metadata, why in (
                (b'architecture: [x86_64', 'not valid YAML'),
                (b'- a list', 'not a YAML mapping'),
                (b'creation_date: 1', "without a known architecture "
                 "(found None)"),
                (b'architecture: pdp11', 'without a known architecture')):
            e = self.assertRaises(
                exception.ImageUnacceptable, images.sniff,
                self.tar(_unified(metadata)), IMAGE_ID)
            self.assertIn('the metadata.yaml of this LXD image is ' + why,
                          str(e))


class PreflightTest(testtools.TestCase):

    def test_vm_and_cd_formats_refused_from_glance_metadata(self):
        for disk in images.REFUSED_DISK_FORMATS:
            e = self.assertRaises(
                exception.ImageUnacceptable, images.preflight,
                {'id': IMAGE_ID, 'disk_format': disk,
                 'container_format': 'bare'})
            self.assertIn('image is not an LXD image: it is ', str(e))
            self.assertIn('(Glance disk_format %s, container_format bare)'
                          % disk, str(e))
            self.assertIn(HINT, str(e))

    def test_qcow2_message(self):
        e = self.assertRaises(
            exception.ImageUnacceptable, images.preflight,
            {'id': IMAGE_ID, 'disk_format': 'QCOW2', 'container_format': ''})
        self.assertEqual(
            'Image %s is unacceptable: image is not an LXD image: it is a '
            'qcow2 disk image (Glance disk_format qcow2, container_format '
            '-)%s' % (IMAGE_ID, HINT), str(e))

    def test_appliance_containers_refused(self):
        for container in ('ova', 'ovf', 'docker'):
            self.assertRaises(
                exception.ImageUnacceptable, images.preflight,
                {'id': IMAGE_ID, 'disk_format': 'raw',
                 'container_format': container})

    def test_raw_and_bare_accepted(self):
        for disk, container in (('raw', 'bare'), ('raw', None),
                                (None, 'bare'), ('bare', 'bare'),
                                ('raw', 'compressed')):
            images.preflight({'id': IMAGE_ID, 'disk_format': disk,
                              'container_format': container})


class GlanceFieldsTest(testtools.TestCase):

    GLANCE = {
        'id': IMAGE_ID, 'name': 'busybox', 'disk_format': 'raw',
        'container_format': 'bare',
        'created_at': datetime.datetime(2026, 1, 2, 3, 4, 5),
        'properties': {'os_distro': 'ubuntu', 'os_version': '24.04',
                       'hw_architecture': 'x86_64'},
    }

    def test_from_glance_dict(self):
        meta = images.glance_fields(self.GLANCE)
        self.assertEqual('busybox', meta['name'])
        self.assertEqual('24.04', meta['properties']['os_version'])

    def test_from_image_meta_object(self):
        objects.register_all()
        meta = images.glance_fields(
            objects.ImageMeta.from_dict(self.GLANCE))
        self.assertEqual(IMAGE_ID, meta['id'])
        self.assertEqual('raw', meta['disk_format'])
        self.assertEqual({'os_distro': 'ubuntu', 'hw_architecture': 'x86_64'},
                         meta['properties'])
        self.assertEqual(1767323045, images.creation_date(meta))

    def test_from_image_meta_without_properties(self):
        objects.register_all()
        meta = images.glance_fields(objects.ImageMeta.from_dict(
            {'id': IMAGE_ID, 'disk_format': 'raw'}))
        self.assertEqual({}, meta['properties'])
        self.assertIsNone(meta['name'])


def _meta(properties=None, **fields):
    meta = {'id': IMAGE_ID, 'name': 'my image', 'created_at': None,
            'properties': properties or {}}
    meta.update(fields)
    return meta


class PropertiesTest(testtools.TestCase):

    HOSTILE = {
        'raw.lxc': 'lxc.apparmor.profile=unconfined',
        'raw.idmap': 'both 0 0',
        'security.privileged': 'true',
        'security.nesting': 'true',
        'lxd:privileged': 'true',
        'limits.cpu': '64',
        'user.user-data': '#cloud-config',
        'linux.kernel_modules': 'zfs',
        'boot.autostart': 'true',
        'requirements.privileged': 'true',
        'architecture': 's390x',
        'os': 'evil',
        'img_config_drive': 'mandatory',
    }

    def test_only_allowed_properties_pass(self):
        props = dict(self.HOSTILE, os_distro='ubuntu', os_version='24.04',
                     hw_architecture='amd64', description='Ubuntu LTS')
        self.assertEqual({'os': 'ubuntu', 'release': '24.04',
                          'architecture': 'x86_64',
                          'description': 'Ubuntu LTS'},
                         images.lxd_properties(_meta(props)))

    def test_nothing_hostile_reaches_metadata_yaml(self):
        text = images.metadata_yaml(_meta(self.HOSTILE), 'aarch64')
        for name in self.HOSTILE:
            if name != 'architecture':
                self.assertNotIn(name, text)
        loaded = yaml.safe_load(text)
        self.assertEqual({'architecture', 'creation_date', 'properties'},
                         set(loaded))
        self.assertEqual({'architecture': 'aarch64',
                          'description': 'my image'}, loaded['properties'])

    def test_values_cannot_inject_yaml_keys(self):
        props = {'os_distro': 'ubuntu\nraw.lxc: lxc.cap.drop=',
                 'os_version': "x'\n  security.privileged: 'true"}
        loaded = yaml.safe_load(images.metadata_yaml(_meta(props), 'i686'))
        self.assertEqual(
            {'os': 'ubuntu raw.lxc: lxc.cap.drop=',
             'release': "x'   security.privileged: 'true",
             'architecture': 'i686', 'description': 'my image'},
            loaded['properties'])
        self.assertEqual({'architecture', 'creation_date', 'properties'},
                         set(loaded))

    def test_long_values_are_cut(self):
        found = images.lxd_properties(_meta({'os_distro': 'x' * 1000}))
        self.assertEqual(255, len(found['os']))

    def test_description_defaults_to_the_image_name(self):
        self.assertEqual({'description': 'my image'},
                         images.lxd_properties(_meta()))
        self.assertEqual({}, images.lxd_properties(_meta(name=None)))

    def test_unknown_architecture_refused(self):
        e = self.assertRaises(
            exception.ImageUnacceptable, images.lxd_properties,
            _meta({'hw_architecture': 'pdp11'}))
        self.assertIn("hw_architecture 'pdp11' is not an architecture LXD "
                      "runs", str(e))

    def test_alias(self):
        self.assertEqual('nova-glance-' + IMAGE_ID, images.alias(IMAGE_ID))
        self.assertEqual('Glance image my image',
                         images.alias_description(_meta()))


class MetadataTest(testtools.TestCase):

    def test_metadata_yaml_with_image_architecture(self):
        meta = _meta({'hw_architecture': 'aarch64', 'os_distro': 'alpine'},
                     created_at='2026-01-02T03:04:05Z')
        self.assertEqual(
            {'architecture': 'aarch64', 'creation_date': 1767323045,
             'properties': {'architecture': 'aarch64', 'os': 'alpine',
                            'description': 'my image'}},
            yaml.safe_load(images.metadata_yaml(meta, 'x86_64')))

    def test_metadata_yaml_with_member_architecture(self):
        loaded = yaml.safe_load(images.metadata_yaml(_meta(), 'x86_64'))
        self.assertEqual('x86_64', loaded['architecture'])
        self.assertEqual('x86_64', loaded['properties']['architecture'])
        self.assertIsInstance(loaded['creation_date'], int)

    def test_metadata_tarball_holds_metadata_yaml_only_and_is_stable(self):
        meta = _meta(created_at=datetime.datetime(2026, 1, 2, 3, 4, 5))
        first = images.metadata_tarball(meta, 'x86_64')
        self.assertEqual(first, images.metadata_tarball(meta, 'x86_64'))
        with tarfile.open(fileobj=io.BytesIO(first)) as tar:
            self.assertEqual(['metadata.yaml'], tar.getnames())
            member = tar.getmember('metadata.yaml')
            self.assertEqual((0, 0, 0o644, 1767323045), (
                member.uid, member.gid, member.mode, member.mtime))
            self.assertEqual(images.metadata_yaml(meta, 'x86_64'),
                             tar.extractfile(member).read().decode())


class PruneTest(testtools.TestCase):

    NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.timezone.utc)
    NEVER = '0001-01-01T00:00:00Z'

    def image(self, aliases, last_used=NEVER,
              uploaded='2026-11-01T00:00:00.123456789Z', fingerprint='f1'):
        return {'fingerprint': fingerprint, 'last_used_at': last_used,
                'uploaded_at': uploaded,
                'aliases': [{'name': a, 'description': ''} for a in aliases]}

    def prunable(self, image, in_use=(), age=86400):
        return images.prunable(image, set(in_use), self.NOW, age)

    def test_old_unused_image_of_ours(self):
        self.assertTrue(self.prunable(self.image(['nova-glance-a'])))
        self.assertTrue(self.prunable(
            self.image(['nova-glance-a'],
                       last_used='2026-11-20T00:00:00Z')))

    def test_in_use(self):
        self.assertFalse(self.prunable(self.image(['nova-glance-a']),
                                       in_use=['f1']))

    def test_young(self):
        self.assertFalse(self.prunable(self.image(
            ['nova-glance-a'], last_used='2026-11-28T11:00:00Z')))
        self.assertFalse(self.prunable(self.image(
            ['nova-glance-a'], uploaded='2026-11-28T11:59:00Z')))

    def test_never_someone_elses(self):
        self.assertFalse(self.prunable(self.image(['nova-lxd-busybox'])))
        self.assertFalse(self.prunable(self.image([])))
        # Ours by de-duplication only: the other alias keeps it.
        self.assertFalse(self.prunable(
            self.image(['nova-lxd-busybox', 'nova-glance-a'])))

    def test_our_alias_on_someone_elses_unused_image_goes(self):
        shared = self.image(['nova-lxd-busybox', 'nova-glance-a'])
        self.assertEqual(['nova-glance-a'], images.stale_aliases(
            shared, set(), self.NOW, 86400))
        self.assertEqual([], images.stale_aliases(
            shared, {'f1'}, self.NOW, 86400))
        self.assertEqual([], images.stale_aliases(
            self.image(['nova-glance-a']), set(), self.NOW, 86400))
