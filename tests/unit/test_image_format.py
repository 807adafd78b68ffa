"""What a Glance image is, and the LXD metadata made for it (pure).

Every image is built here, small, from tarfile, gzip, lzma and bz2.
"""

import bz2
import datetime
import gzip
import io
import lzma
import os
import struct
import tarfile

import fixtures
import testtools
import yaml

from nova import exception
from nova import objects

from nova_lxd import image_format as images
from tools import hostile_images

IMAGE_ID = '6f1e4c5a-2b3d-4e5f-8a9b-0c1d2e3f4a5b'
HINT = ('; upload an LXD unified tarball or a root filesystem tarball')
METADATA = b'architecture: x86_64\ncreation_date: 1700000000\n'
ROOTFS = (('etc', None), ('etc/hostname', b'busybox\n'), ('bin', None),
          ('bin/sh', b'\x7fELF'), ('usr', None))
COMPRESSORS = {'': open, 'gz': gzip.open, 'xz': lzma.open, 'bz2': bz2.open}
LIMITS = images.Limits(1 << 40, 'a test limit', 1000)
# A squashfs 4.0 superblock: 7 inodes, 4096 bytes used.
SQUASHFS_HEAD = struct.pack('<IIIIIHHHHHHQQ', 0x73717368, 7, 0, 131072, 0,
                            1, 17, 0, 1, 4, 0, 0, 4096)


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


def _kind(path):
    return images.inspect(path, IMAGE_ID, LIMITS).kind


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
                              images.inspect, path, IMAGE_ID, LIMITS)
        self.assertEqual(
            'Image %s is unacceptable: image is not an LXD image: it is '
            '%s%s' % (IMAGE_ID, what, HINT), str(e))

    def test_unified_tarballs(self):
        for compression in COMPRESSORS:
            self.assertEqual(images.UNIFIED, _kind(
                self.tar(_unified(), compression)), compression)

    def test_rootfs_tarballs(self):
        for compression in COMPRESSORS:
            self.assertEqual(images.ROOTFS_TARBALL, _kind(
                self.tar(ROOTFS, compression)), compression)

    def test_rootfs_tarball_made_with_tar_c_dot(self):
        # "tar -C rootfs -czf image.tar.gz ." names members ./etc, ...
        dotted = (('.', None),) + tuple(('./' + n, c) for n, c in ROOTFS)
        self.assertEqual(images.ROOTFS_TARBALL,
                         _kind(self.tar(dotted, 'gz')))

    def test_squashfs_by_its_magic(self):
        self.assertEqual(images.SQUASHFS, _kind(
            self.write(SQUASHFS_HEAD + bytes(4096))))

    def test_qcow2(self):
        self.assertRefused(self.at(0, b'QFI\xfb\x00\x00\x00\x03'),
                           'a qcow2 disk image')

    def test_qcow2_message_as_tenants_read_it(self):
        e = self.assertRaises(exception.ImageUnacceptable, images.inspect,
                              self.at(0, b'QFI\xfb'), IMAGE_ID, LIMITS)
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
        e = self.assertRaises(exception.ImageUnacceptable, images.inspect,
                              self.write(whole[:40]), IMAGE_ID, LIMITS)
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
                exception.ImageUnacceptable, images.inspect,
                self.tar(_unified(metadata)), IMAGE_ID, LIMITS)
            self.assertIn('the metadata.yaml of this LXD image is ' + why,
                          str(e))


class BudgetTest(SniffTest):
    """Hostile tars and YAML are refused within bounded work."""

    def assertUnacceptable(self, path, why, limits=LIMITS):
        e = self.assertRaises(exception.ImageUnacceptable,
                              images.inspect, path, IMAGE_ID, limits)
        self.assertIn(why, str(e))
        self.assertLess(len(str(e)), 500)
        return e

    def test_yaml_aliases_refused_before_anything_expands(self):
        path = hostile_images.alias_bomb(os.path.join(self.tmp, 'b.tgz'),
                                         depth=9).path
        e = self.assertUnacceptable(
            path, 'the metadata.yaml of this LXD image is written with '
            'YAML anchors and aliases, which are not accepted')
        self.assertNotIn('lol', str(e))

    def test_an_anchor_alone_is_refused(self):
        self.assertUnacceptable(
            self.tar(_unified(b'architecture: &a x86_64\n')),
            'YAML anchors and aliases')

    def test_deep_yaml_refused(self):
        self.assertUnacceptable(
            self.tar(_unified(b'architecture: ' + b'[' * 20000 +
                              b']' * 20000)),
            'the metadata.yaml of this LXD image is nested more than 32 '
            'levels deep')

    def test_long_values_never_reach_the_fault(self):
        e = self.assertUnacceptable(
            self.tar(_unified(b'architecture: ' + b'x' * 5000)),
            'without a known architecture (found a str)')
        self.assertNotIn('xxx', str(e))
        self.assertUnacceptable(
            self.tar(_unified(b'architecture: [1, 2]')),
            'without a known architecture (found a list)')

    def _one_member(self, name, fmt, compression='xz', **pax):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode='w', format=fmt) as tar:
            info = tarfile.TarInfo(name)
            info.pax_headers = pax
            tar.addfile(info)
            for entry, content in _unified():
                info = tarfile.TarInfo(entry)
                info.size = len(content or b'')
                if content is None:
                    info.type = tarfile.DIRTYPE
                tar.addfile(info, io.BytesIO(content or b''))
        return self.write(out.getvalue(), compression)

    def test_long_gnu_name_refused_before_it_is_read(self):
        self.assertUnacceptable(
            self._one_member('n' * (1 << 20), tarfile.GNU_FORMAT),
            'its tar archive has a header of 1048577 bytes (a GNU long '
            'name or a PAX header), more than 64 KiB')

    def test_large_pax_header_refused(self):
        self.assertUnacceptable(
            self._one_member('x', tarfile.PAX_FORMAT,
                             comment='c' * (1 << 20)),
            'a GNU long name or a PAX header), more than 64 KiB')

    def test_ordinary_long_names_pass(self):
        for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
            found = images.inspect(self._one_member(
                'rootfs/' + 'n' * 250 + '/' + 'm' * 250, fmt), IMAGE_ID,
                LIMITS)
            self.assertEqual(images.UNIFIED, found.kind)

    def test_chains_of_extended_headers_refused(self):
        data = bytearray()
        for _ in range(images.HEADER_CHAIN_LIMIT + 1):
            info = tarfile.TarInfo('././@LongLink')
            info.type = tarfile.GNUTYPE_LONGNAME
            info.size = 6
            data += info.tobuf(tarfile.GNU_FORMAT) + b'name\0\0'.ljust(
                512, b'\0')
        data += _tar_bytes(_unified())
        self.assertUnacceptable(
            self.write(bytes(data)),
            'its tar archive has more than 16 extended headers in front '
            'of one file')

    def test_sparse_files_refused(self):
        path = hostile_images.sparse_member(
            os.path.join(self.tmp, 's.tgz'), expanded=1 << 40).path
        self.assertUnacceptable(path, 'it holds a sparse file')
        for pax in ({'GNU.sparse.major': '1', 'GNU.sparse.minor': '0'},
                    {'GNU.sparse.size': '99', 'GNU.sparse.numblocks': '0'},
                    {'GNU.sparse.map': '0,0'}):
            self.assertUnacceptable(
                self._one_member('rootfs/s', tarfile.PAX_FORMAT, **pax),
                'it holds a sparse file', )

    def test_too_many_files(self):
        limits = LIMITS._replace(files=4)
        self.assertUnacceptable(
            self.tar(_unified()), 'its tar archive holds more than 4 files '
            '([lxd] image_max_files)', limits)
        self.assertEqual(images.Inspection(images.UNIFIED, 59, 8),
                         images.inspect(self.tar(_unified()), IMAGE_ID,
                                        LIMITS._replace(files=8)))

    def test_files_adding_up_beyond_the_limit(self):
        # metadata.yaml, etc/hostname and bin/sh: 47 + 8 + 4 bytes.
        limits = images.Limits(58, "the flavor's root disk (1 GiB)", 100)
        self.assertUnacceptable(
            self.tar(_unified(), 'gz'), "it expands to more than the "
            "flavor's root disk (1 GiB): its files add up to at least 59 "
            "bytes", limits)
        self.assertEqual(
            59, images.inspect(self.tar(_unified(), 'gz'), IMAGE_ID,
                               limits._replace(size=59)).size)

    def test_zeros_bomb_refused_at_its_header(self):
        path = hostile_images.zeros_bomb(
            os.path.join(self.tmp, 'z.txz'), expanded=1 << 40,
            block=1 << 20).path
        self.assertLess(os.path.getsize(path), 300 * 1024 * 1024)
        self.assertUnacceptable(path, 'its files add up to at least 1099',
                                LIMITS._replace(size=1 << 30))

    def test_any_failure_of_the_check_is_a_refusal(self):
        for error in (MemoryError(), RuntimeError('x' * 9999),
                      KeyError('k'), RecursionError()):
            self.useFixture(fixtures.MockPatch(
                'nova_lxd.image_format._check_metadata',
                side_effect=error))
            e = self.assertUnacceptable(self.tar(_unified()),
                                        'image is not an LXD image: it is a ')
            self.assertNotIn('xxxx', str(e))

    def test_tarfile_still_has_the_hooks_the_budgets_use(self):
        for hook in ('_proc_gnulong', '_proc_pax', '_proc_sparse',
                     '_proc_gnusparse_00', '_proc_gnusparse_01',
                     '_proc_gnusparse_10'):
            self.assertTrue(callable(getattr(tarfile.TarInfo, hook)), hook)


class SquashfsTest(SniffTest):

    def test_superblock(self):
        self.assertEqual(images.Inspection(images.SQUASHFS, None, 7),
                         images.inspect(self.write(SQUASHFS_HEAD + bytes(
                             4096)), IMAGE_ID, LIMITS))

    def test_refused_from_the_superblock(self):
        pad = bytes(4096)
        for data, limits, why in (
                (SQUASHFS_HEAD + pad, LIMITS._replace(files=6),
                 'its squashfs holds 7 files, more than 6'),
                (SQUASHFS_HEAD[:28] + b'\x03\x00' + SQUASHFS_HEAD[30:] + pad,
                 LIMITS, 'it is a squashfs of version 3; LXD reads version '
                 '4'),
                (SQUASHFS_HEAD[:20], LIMITS, 'it is a truncated squashfs'),
                (SQUASHFS_HEAD, LIMITS,
                 'it is a truncated squashfs (48 of 4096 bytes)')):
            e = self.assertRaises(exception.ImageUnacceptable,
                                  images.inspect, self.write(data),
                                  IMAGE_ID, limits)
            self.assertIn(why, str(e))

    LISTING = [
        b'drwxr-xr-x root/root                50 2026-11-30 18:35 '
        b'squashfs-root\n',
        b'-rw-r--r-- root/root        1074790400 2026-11-30 18:35 '
        b'squashfs-root/zeros\n',
        b'crw-r--r-- root/root             1,  3 2026-11-30 18:35 '
        b'squashfs-root/null\n',
        b'lrwxrwxrwx root/root                 7 2026-11-30 18:35 '
        b'squashfs-root/sh -> busybox\n',
        # The rest of a file name with a line break adds nothing.
        b'and-more 12 rest\n',
    ]

    def test_size_from_the_listing(self):
        self.assertEqual(50 + 1074790400 + 7, images.squashfs_size(
            self.LISTING, IMAGE_ID, LIMITS))

    def test_size_beyond_the_limit(self):
        e = self.assertRaises(
            exception.ImageUnacceptable, images.squashfs_size,
            self.LISTING, IMAGE_ID,
            images.limits(1, 50, 100))
        self.assertIn("it expands to more than the flavor's root disk (1 "
                      "GiB): its files add up to at least 1074790450 bytes",
                      str(e))


class LimitsTest(testtools.TestCase):

    def test_the_smaller_of_root_disk_and_cap(self):
        self.assertEqual(
            images.Limits(1 << 30, "the flavor's root disk (1 GiB)", 9),
            images.limits(1, 50, 9))
        cap = images.Limits(50 << 30, '[lxd] image_max_expanded_gb (50 '
                            'GiB)', 9)
        self.assertEqual(cap, images.limits(0, 50, 9))
        self.assertEqual(cap, images.limits(80, 50, 9))

    def test_check_size(self):
        limits = images.limits(1, 50, 9)
        images.check_size(IMAGE_ID, 1 << 30, 9, limits)
        for size, files, why in (
                ((1 << 30) + 1, 1, "it expands to more than the flavor's "
                 "root disk (1 GiB): its files add up to 1073741825 bytes"),
                (1, 10, 'it holds 10 files, more than 9 ([lxd] '
                 'image_max_files)')):
            e = self.assertRaises(exception.ImageUnacceptable,
                                  images.check_size, IMAGE_ID, size, files,
                                  limits)
            self.assertIn(why, str(e))


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

    def test_alias_description_is_the_cache_record(self):
        meta = dict(_meta(), hash='sha512:ab')
        description = images.alias_description(
            meta, images.Inspection(images.UNIFIED, 10, 2))
        self.assertEqual(
            '{"files": 2, "glance_hash": "sha512:ab", "glance_image": '
            '"my image", "size": 10}', description)
        self.assertEqual({'files': 2, 'glance_hash': 'sha512:ab',
                          'glance_image': 'my image', 'size': 10},
                         images.cache_record(description))

    def test_other_descriptions_are_no_record(self):
        for description in (None, '', 'Glance image busybox', '[1]',
                            '{"size": "1", "files": 1}',
                            '{"size": 1, "files": 1, "glance_hash": 5}'):
            self.assertIsNone(images.cache_record(description))

    def test_glance_hash(self):
        self.assertEqual('sha512:ab', images.glance_hash(
            {'os_hash_algo': 'sha512', 'os_hash_value': 'ab',
             'checksum': 'cd'}))
        self.assertEqual('md5:cd', images.glance_hash({'checksum': 'cd'}))
        self.assertIsNone(images.glance_hash({'os_hash_value': None}))


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
