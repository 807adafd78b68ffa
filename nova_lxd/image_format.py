"""What a Glance image holds, and the LXD image metadata made from it.

Pure: it reads local files only. The LXD side (import, alias, prune) is
nova_lxd/imagecache.py.

Accepted: an LXD unified tarball (metadata.yaml + rootfs/ [+ templates/]),
a tarball of a bare root filesystem, or a squashfs root filesystem; tars
plain or compressed with gzip, bzip2 or xz. The bytes decide, not Glance's
disk_format, which tenants often set wrong.

Glance bytes are hostile. The check reads a tar archive once, in stream
mode, within budgets (files, what they add up to, each extended header,
metadata.yaml's size and YAML without anchors or aliases), never keeps
more than one header, and turns every failure into ImageUnacceptable.
"""

import bz2
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterable
import datetime
import gzip
import io
import json
import lzma
import os
import struct
import tarfile
import time
from typing import Any
from typing import NamedTuple
import zlib

from oslo_utils.imageutils import format_inspector
from oslo_utils import timeutils
import yaml

from nova import exception

from nova_lxd import constants

UNIFIED = 'unified'
ROOTFS_TARBALL = 'rootfs tarball'
SQUASHFS = 'squashfs'

HINT = 'upload an LXD unified tarball or a root filesystem tarball'

REFUSED_DISK_FORMATS = {
    'qcow2': 'a qcow2 disk image',
    'vmdk': 'a VMDK disk image',
    'vdi': 'a VirtualBox VDI disk image',
    'vhd': 'a VHD disk image',
    'vhdx': 'a VHDX disk image',
    'iso': 'an ISO 9660 (CD/DVD) image',
    'ploop': 'a Virtuozzo ploop disk image',
    'aki': 'an Amazon kernel image (aki)',
    'ari': 'an Amazon ramdisk image (ari)',
    'ami': 'an Amazon machine image (ami)',
}
REFUSED_CONTAINER_FORMATS = {
    'ova': 'an OVA appliance',
    'ovf': 'an OVF appliance',
    'docker': 'a Docker image',
    'aki': 'an Amazon kernel image (aki)',
    'ari': 'an Amazon ramdisk image (ari)',
    'ami': 'an Amazon machine image (ami)',
}

# What oslo.utils' format inspector recognises, as a tenant reads it, in
# the order a match is named (a hybrid ISO also has a partition table).
# "gpt" is any MBR boot sector: told apart below.
INSPECTED = (
    ('qcow2', 'a qcow2 disk image'),
    ('qed', 'a QED disk image'),
    ('vmdk', 'a VMDK disk image'),
    ('vdi', 'a VirtualBox VDI disk image'),
    ('vhdx', 'a VHDX disk image'),
    ('vhd', 'a VHD disk image'),
    ('luks', 'a LUKS-encrypted disk image'),
    ('iso', 'an ISO 9660 (CD/DVD) image'),
)
# (offset, magic, what it is) of what the inspector does not know.
OTHER_MAGICS = (
    (0, b'# Disk DescriptorFile', 'a VMDK disk descriptor'),
    (0x438, b'\x53\xef', 'an ext2/3/4 file system image'),
)
GPT_MAGIC = (512, b'EFI PART')
SQUASHFS_MAGIC = b'hsqs'
# Enough for every format above (an ISO's descriptor ends at 34 KiB); the
# only bytes of a file that is no tar archive ever looked at.
HEAD_SIZE = 64 * 1024

# How to open each compression LXD also reads, by magic.
Opener = Callable[..., Any]
COMPRESSIONS: tuple[tuple[bytes, str, Opener], ...] = (
    (b'\x1f\x8b', 'gzip', gzip.open),
    (b'\xfd7zXZ\x00', 'xz', lzma.open),
    (b'BZh', 'bzip2', bz2.open),
)
UNREAD_COMPRESSIONS = ((b'\x28\xb5\x2f\xfd', 'zstd'),)
DAMAGED = (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error,
           ValueError)

# Top-level folders that, together, show a root file system.
ROOTFS_ETC = 'etc'
ROOTFS_BINARIES = {'bin', 'sbin', 'usr'}
TOPS = {'metadata.yaml', 'rootfs', ROOTFS_ETC} | ROOTFS_BINARIES
METADATA_LIMIT = 1024 * 1024
METADATA_DEPTH = 32
# One GNU long name or PAX header (PATH_MAX is 4 KiB; xattrs and ACLs fit
# well), and how many may stand in front of one member.
HEADER_LIMIT = 64 * 1024
HEADER_CHAIN_LIMIT = 16
# squashfs 4.0's superblock, up to bytes_used (linux/squashfs_fs.h).
SQUASHFS_SUPERBLOCK = struct.Struct('<IIIIIHHHHHHQQ')

# LXD's architecture names, and other common spellings of them.
LXD_ARCHITECTURES = {
    'i686', 'x86_64', 'armv6l', 'armv7l', 'armv8l', 'aarch64', 'ppc',
    'ppc64', 'ppc64le', 's390x', 'mips', 'mips64', 'riscv32', 'riscv64',
    'loongarch64',
}
ARCHITECTURE_ALIASES = {
    'amd64': 'x86_64', 'x64': 'x86_64', 'i386': 'i686', 'i486': 'i686',
    'i586': 'i686', 'x86': 'i686', 'arm64': 'aarch64', 'armhf': 'armv7l',
    'armel': 'armv6l', 'ppc64el': 'ppc64le',
}

# The only Glance image properties that reach LXD, as LXD image
# properties (labels shown by "lxc image list"). Nothing here is, or
# becomes, instance configuration.
ALLOWED_PROPERTIES = (
    ('os_distro', 'os'),
    ('os_version', 'release'),
    ('hw_architecture', 'architecture'),
    ('description', 'description'),
)
PROPERTY_MAX_LENGTH = 255
GLANCE_FIELDS = ('id', 'name', 'disk_format', 'container_format',
                 'created_at', 'size')

# glance_fields(): GLANCE_FIELDS and 'properties' (a dict).
Meta = dict[str, Any]
# An LXD image as ``GET /1.0/images?recursion=1`` lists it.
Image = dict[str, Any]


def alias(image_id: str) -> str:
    """The LXD alias that names a Glance image's LXD image."""
    return constants.GLANCE_IMAGE_PREFIX + image_id


def glance_hash(image: Meta) -> str | None:
    """Glance's hash of an image's bytes, as ``<algorithm>:<hex>``.

    ``image``: Glance's own dict. Its multihash (os_hash_algo and
    os_hash_value) when it has one, else the legacy MD5 checksum; None
    for an image Glance knows no hash of.
    """
    algo, value = image.get('os_hash_algo'), image.get('os_hash_value')
    if algo and value:
        return '%s:%s' % (algo, value)
    if image.get('checksum'):
        return 'md5:%s' % image['checksum']
    return None


def alias_description(meta: Meta, found: 'Inspection') -> str:
    """The record an alias keeps of its import, read by cache_record.

    The alias is per Glance image and always the driver's own (LXD may
    find the bytes under another image of someone else's): the Glance
    hash the bytes were imported under, and what they expand to, so that
    a Glance id reused for other bytes is imported again (OSSN-0075) and
    a later boot with a smaller flavor is refused without a download.
    JSON, readable in "lxc image alias list".
    """
    return json.dumps({'glance_image': _clean(meta.get('name') or
                                              meta['id']),
                       'glance_hash': meta.get('hash'),
                       'size': found.size, 'files': found.files},
                      sort_keys=True)


def cache_record(description: str | None) -> dict[str, Any] | None:
    """What alias_description wrote; None for any other description."""
    try:
        record = json.loads(description or '')
    except ValueError:
        return None
    if (not isinstance(record, dict) or
            not isinstance(record.get('size'), int) or
            not isinstance(record.get('files'), int) or
            not isinstance(record.get('glance_hash'), (str, type(None)))):
        return None
    return record


def not_lxd(image_id: str, what: str) -> Exception:
    """The refusal a tenant reads in the server's fault."""
    return exception.ImageUnacceptable(
        image_id=image_id,
        reason='image is not an LXD image: it is %s; %s' % (what, HINT))


def glance_fields(image_meta: Any) -> Meta:
    """The Glance fields used here, from an ImageMeta or Glance's dict.

    ImageMeta (what spawn gets) keeps only properties Nova knows, so
    os_version survives only in Glance's own dict (image API ``get``).
    """
    if not hasattr(image_meta, 'obj_attr_is_set'):
        found = {f: image_meta.get(f) for f in GLANCE_FIELDS}
        found['properties'] = dict(image_meta.get('properties') or {})
        return found
    found = {f: getattr(image_meta, f) if image_meta.obj_attr_is_set(f)
             else None for f in GLANCE_FIELDS}
    props = (image_meta.properties
             if image_meta.obj_attr_is_set('properties') else None)
    found['properties'] = {} if props is None else {
        k: getattr(props, k) for k in props.fields
        if props.obj_attr_is_set(k)}
    return found


def preflight(meta: Meta) -> None:
    """Refuse, from Glance's metadata alone, formats that cannot be LXD's.

    Runs before any download: a qcow2 is refused without fetching GBs.
    """
    disk = (meta.get('disk_format') or '').lower()
    container = (meta.get('container_format') or '').lower()
    what = (REFUSED_DISK_FORMATS.get(disk) or
            REFUSED_CONTAINER_FORMATS.get(container))
    if what:
        raise not_lxd(meta['id'], what + ' (Glance disk_format %s, '
                      'container_format %s)' % (disk or '-', container or '-'))


# -- inspection -------------------------------------------------------


class Limits(NamedTuple):
    """What an image may hold: its files' total size and their count.

    ``size_by`` names what sets ``size``, for the tenant's fault.
    """

    size: int
    size_by: str
    files: int


def limits(root_gb: int, max_gb: int, max_files: int) -> Limits:
    """The flavor's root disk (when it has one) and the operator's cap."""
    if root_gb and root_gb < max_gb:
        return Limits(root_gb << 30, "the flavor's root disk (%d GiB)"
                      % root_gb, max_files)
    return Limits(max_gb << 30, '[lxd] image_max_expanded_gb (%d GiB)'
                  % max_gb, max_files)


class Inspection(NamedTuple):
    """What an image is (UNIFIED, ROOTFS_TARBALL or SQUASHFS).

    ``size``: what its files add up to (None for squashfs: its superblock
    does not say, see squashfs_size); ``files``: how many (squashfs: its
    inodes).
    """

    kind: str
    size: int | None
    files: int


class _Refused(Exception):
    """A budget of the inspection is spent: why, as the tenant reads it."""


def refused(image_id: str, why: str) -> Exception:
    return exception.ImageUnacceptable(image_id=image_id, reason=why)


def inspect(path: str, image_id: str, limits: Limits) -> Inspection:
    """What the image at ``path`` is, in bounded time and memory.

    Raises ImageUnacceptable for anything that is no LXD image, exceeds
    ``limits`` or a budget of the check, or makes the check fail in any
    way: any other exception would make Nova reschedule the build, and
    the next member would pay for the same bytes again.
    """
    try:
        return _inspect(path, image_id, limits)
    except exception.ImageUnacceptable:
        raise
    except _Refused as e:
        raise refused(image_id, str(e))
    except RecursionError:
        raise not_lxd(image_id, 'a file nested too deeply to be read')
    except DAMAGED as e:
        raise not_lxd(image_id, 'a damaged file (%s)' % _short(e))
    except Exception as e:  # noqa: every failure of the check is a refusal
        raise not_lxd(image_id, 'a file that could not be read (%s)'
                      % type(e).__name__)


def _short(error: BaseException, limit: int = 200) -> str:
    """An exception's text, cut: faults never carry tenant bytes at length."""
    text = str(error)
    return text if len(text) <= limit else text[:limit] + '...'


def _inspect(path: str, image_id: str, limits: Limits) -> Inspection:
    with open(path, 'rb') as f:
        raw = f.read(HEAD_SIZE)
    if raw.startswith(SQUASHFS_MAGIC):
        return _squashfs(raw, os.path.getsize(path), limits)
    opener, compression = _compression(raw, image_id)
    head, prefix = raw, ''
    if opener:
        prefix = 'a %s-compressed file: ' % compression
        try:
            with opener(path, 'rb') as f:
                head = f.read(HEAD_SIZE)
        except DAMAGED as e:
            raise not_lxd(image_id, 'a damaged %s file (%s)' % (
                compression, _short(e)))
    if _is_tar(head):
        with (opener or open)(path, 'rb') as stream:
            return _walk_tar(stream, image_id, limits)
    raise not_lxd(image_id, prefix + (
        _foreign(head) or 'data that is neither a tar archive nor squashfs'))


def _compression(head: bytes,
                 image_id: str) -> tuple[Opener | None, str | None]:
    for magic, name, opener in COMPRESSIONS:
        if head.startswith(magic):
            return opener, name
    for magic, name in UNREAD_COMPRESSIONS:
        if head.startswith(magic):
            raise not_lxd(image_id, 'a %s-compressed file, which is not '
                          'read here (use gzip or xz)' % name)
    return None, None


def _inspected(head: bytes) -> set[str]:
    """Names of the formats oslo.utils' inspector finds in ``head``."""
    wrapper = format_inspector.InspectWrapper(io.BytesIO(head))
    try:
        wrapper.read(len(head))
    finally:
        wrapper.close()
    return {i.NAME for i in wrapper.formats or ()}


def _foreign(head: bytes) -> str | None:
    """What a file that is no tar archive surely is, or None."""
    found = _inspected(head)
    for name, what in INSPECTED:
        if name in found:
            return what
    for offset, magic, what in OTHER_MAGICS:
        if head[offset:offset + len(magic)] == magic:
            return what
    if 'gpt' in found:
        offset, magic = GPT_MAGIC
        if head[offset:offset + len(magic)] == magic:
            return 'a disk image with a GPT partition table'
        return 'a disk image with an MBR partition table'
    return None


def _is_tar(head: bytes) -> bool:
    # POSIX ("ustar\0") and GNU ("ustar  \0") tars.
    return head[257:262] == b'ustar'


def _top(name: str) -> str:
    """First path component of a tar member ('./etc/x' -> 'etc')."""
    while name.startswith('./'):
        name = name[2:]
    return name.lstrip('/').split('/', 1)[0]


# -- tar archives: one pass, in stream mode, within budgets ------------


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's header reader, minus what it would read unbounded.

    tarfile reads a GNU long name or a PAX header whole, however large its
    header says it is, follows any chain of them, and builds a sparse
    file's map from as many extension blocks as there are: each is
    refused here before it is read. (These are tarfile's own hooks of
    Python 3.11 to 3.13; tests/unit/test_image_format.py holds them to it.)
    """

    def _proc_gnulong(self, tarfile):
        _extended_header(tarfile, self.size)
        return super()._proc_gnulong(tarfile)

    def _proc_pax(self, tarfile):
        _extended_header(tarfile, self.size)
        return super()._proc_pax(tarfile)

    def _proc_sparse(self, tarfile):
        raise _Refused(SPARSE)

    def _proc_gnusparse_00(self, *args):
        raise _Refused(SPARSE)

    def _proc_gnusparse_01(self, *args):
        raise _Refused(SPARSE)

    def _proc_gnusparse_10(self, *args):
        raise _Refused(SPARSE)


SPARSE = ('it holds a sparse file (a GNU tar --sparse member), which is '
          'not accepted: pack the image without --sparse')


def _extended_header(tar: tarfile.TarFile, size: int) -> None:
    """Count one GNU long-name or PAX header of the next member."""
    if size > HEADER_LIMIT:
        raise _Refused(
            'its tar archive has a header of %d bytes (a GNU long name or a '
            'PAX header), more than %d KiB' % (size, HEADER_LIMIT // 1024))
    count = getattr(tar, '_nova_lxd_headers', 0) + 1
    if count > HEADER_CHAIN_LIMIT:
        raise _Refused('its tar archive has more than %d extended headers '
                       'in front of one file' % HEADER_CHAIN_LIMIT)
    setattr(tar, '_nova_lxd_headers', count)


def _walk_tar(stream: Any, image_id: str, limits: Limits) -> Inspection:
    """Every member header, once, in stream mode; the kind at the end.

    ``stream``: the tar's bytes, decompressed by gzip, lzma or bz2's own
    reader (tarfile's "r|gz" buffering copies what it holds at every
    header: quadratic on a tar of many small files). tarfile keeps every
    header it reads (``members``): cleared as it goes, so a million empty
    files cost what one does. Each header is counted against ``limits``
    before the data it announces is read past, so nothing beyond them is
    ever decompressed.
    """
    seen = set()
    size = files = 0
    with tarfile.open(fileobj=stream, mode='r|',
                      tarinfo=_BoundedTarInfo) as tar:
        while True:
            setattr(tar, '_nova_lxd_headers', 0)
            member = tar.next()
            if member is None:
                break
            tar.members.clear()
            files += 1
            size += member.size
            if files > limits.files:
                raise _Refused('its tar archive holds more than %d files '
                               '([lxd] image_max_files)' % limits.files)
            if size > limits.size:
                raise _Refused(_too_big(size, limits, 'at least '))
            top = _top(member.name)
            if top in TOPS:
                seen.add(top)
            if top == 'metadata.yaml' and member.isfile():
                _check_metadata(tar, member, image_id)
    return Inspection(_tar_kind(seen, image_id), size, files)


def _too_big(size: int, limits: Limits, qualifier: str = '') -> str:
    return ('it expands to more than %s: its files add up to %s%d bytes'
            % (limits.size_by, qualifier, size))


def check_size(image_id: str, size: int, files: int,
               limits: Limits) -> None:
    """Refuse a (known) image that exceeds ``limits``."""
    if files > limits.files:
        raise refused(image_id, 'it holds %d files, more than %d ([lxd] '
                      'image_max_files)' % (files, limits.files))
    if size > limits.size:
        raise refused(image_id, _too_big(size, limits))


def _tar_kind(seen: set[str], image_id: str) -> str:
    if 'metadata.yaml' in seen:
        if 'rootfs' in seen:
            return UNIFIED
        raise not_lxd(image_id, 'an LXD metadata tarball without its root '
                      'file system (no rootfs/ folder)')
    if ROOTFS_ETC in seen and ROOTFS_BINARIES & seen:
        return ROOTFS_TARBALL
    raise not_lxd(image_id, 'a tar archive with neither metadata.yaml nor '
                  'a root file system (etc/, bin/ or usr/) at its top')


class _PlainLoader(yaml.SafeLoader):
    """YAML without anchors and aliases, nested at most METADATA_DEPTH.

    A few hundred bytes of aliases stand for gigabytes once anything
    walks or prints the value; LXD's metadata never needs them.
    """

    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if (isinstance(event, yaml.AliasEvent) or
                getattr(event, 'anchor', None)):
            raise _Refused(_BAD_METADATA % 'written with YAML anchors and '
                           'aliases, which are not accepted')
        self._depth += 1
        try:
            if self._depth > METADATA_DEPTH:
                raise _Refused(_BAD_METADATA % 'nested more than %d levels '
                               'deep' % METADATA_DEPTH)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_BAD_METADATA = 'the metadata.yaml of this LXD image is %s'


def _check_metadata(tar: tarfile.TarFile, member: tarfile.TarInfo,
                    image_id: str) -> None:
    """A unified tarball's metadata.yaml must be one LXD can take."""
    if member.size > METADATA_LIMIT:
        raise _bad_metadata(image_id, 'larger than 1 MiB')
    data = tar.extractfile(member)    # None: not a file
    text = data.read(METADATA_LIMIT) if data else b''
    try:
        metadata = yaml.load(text, Loader=_PlainLoader)
    except yaml.YAMLError as e:
        raise _bad_metadata(image_id, 'not valid YAML (%s)' % _short(e))
    if not isinstance(metadata, dict):
        raise _bad_metadata(image_id, 'not a YAML mapping')
    found = metadata.get('architecture')
    if lxd_architecture(found) is None:
        raise _bad_metadata(image_id, 'without a known architecture '
                            '(found %s)' % _shown(found))


def _shown(value: object) -> str:
    """A tenant's value in a fault: a short scalar, else only its type."""
    if isinstance(value, (str, int, float, type(None))):
        text = repr(value)
        if len(text) <= 64:
            return text
    return 'a %s' % type(value).__name__


def _bad_metadata(image_id: str, why: str) -> Exception:
    return exception.ImageUnacceptable(image_id=image_id,
                                       reason=_BAD_METADATA % why)


# -- squashfs -----------------------------------------------------------


def _squashfs(head: bytes, file_size: int, limits: Limits) -> Inspection:
    """Its superblock: version, inode count (its files), bytes used.

    What the files add up to is in the inode table only: squashfs_size.
    """
    if len(head) < SQUASHFS_SUPERBLOCK.size:
        raise _Refused('it is a truncated squashfs')
    (_, inodes, _, _, _, _, _, _, _, major, _, _,
     used) = SQUASHFS_SUPERBLOCK.unpack_from(head)
    if major != 4:
        raise _Refused('it is a squashfs of version %d; LXD reads version '
                       '4' % major)
    if used > file_size:
        raise _Refused('it is a truncated squashfs (%d of %d bytes)' % (
            file_size, used))
    if inodes > limits.files:
        raise _Refused('its squashfs holds %d files, more than %d ([lxd] '
                       'image_max_files)' % (inodes, limits.files))
    return Inspection(SQUASHFS, None, inodes)


def squashfs_size(lines: Iterable[bytes], image_id: str,
                  limits: Limits) -> int:
    """What a squashfs's files add up to, from ``unsquashfs -lls``.

    Lines are ``<mode> <owner>/<group> <size> <date> <time> <path>``; a
    line that does not parse (a device's ``major, minor``, the rest of a
    name with a line break) adds nothing: a name can only add lines, never
    take a real line's size away.
    """
    size = 0
    for line in lines:
        fields = line.split(None, 3)
        if len(fields) > 2 and fields[2].isdigit():
            size += int(fields[2])
            if size > limits.size:
                raise refused(image_id, _too_big(size, limits, 'at least '))
    return size


# -- metadata for rootfs-only images ----------------------------------


def lxd_architecture(name: object) -> str | None:
    """LXD's name for an architecture, or None when LXD has none."""
    name = str(name or '').strip().lower()
    name = ARCHITECTURE_ALIASES.get(name, name)
    return name if name in LXD_ARCHITECTURES else None


def architecture(meta: Meta, member_arch: str) -> str:
    """The image's hw_architecture, else the member's, as LXD names it."""
    wanted = meta['properties'].get('hw_architecture')
    if not wanted:
        return member_arch
    found = lxd_architecture(wanted)
    if found is None:
        raise exception.ImageUnacceptable(
            image_id=meta['id'],
            reason='hw_architecture %r is not an architecture LXD runs '
                   '(%s)' % (wanted, ', '.join(sorted(LXD_ARCHITECTURES))))
    return found


def _clean(value: object) -> str:
    """One line of printable text: LXD shows these in listings."""
    text = ''.join(c if c.isprintable() else ' ' for c in str(value))
    return text.strip()[:PROPERTY_MAX_LENGTH]


def lxd_properties(meta: Meta) -> dict[str, str]:
    """Allowed Glance properties as LXD image properties; nothing else."""
    props = meta['properties']
    found = {}
    for glance_name, lxd_name in ALLOWED_PROPERTIES:
        value = _clean(props.get(glance_name) or '')
        if value:
            found[lxd_name] = value
    if 'description' not in found and meta.get('name'):
        found['description'] = _clean(meta['name'])
    if 'architecture' in found:
        found['architecture'] = architecture(meta, found['architecture'])
    return found


def creation_date(meta: Meta) -> int:
    """Glance's created_at as a Unix time; now when Glance has none.

    Glance's date keeps generated metadata, hence the LXD fingerprint, the
    same in every nova-compute that imports the image.
    """
    created = meta.get('created_at')
    if isinstance(created, str):
        created = timeutils.parse_isotime(created)
    if isinstance(created, datetime.datetime):
        if created.tzinfo is None:
            created = created.replace(tzinfo=datetime.timezone.utc)
        return int(created.timestamp())
    return int(time.time())


def metadata_yaml(meta: Meta, member_arch: str) -> str:
    """metadata.yaml for an image that has none (rootfs tar, squashfs)."""
    arch = architecture(meta, member_arch)
    properties = lxd_properties(meta)
    properties['architecture'] = arch
    return yaml.safe_dump({'architecture': arch,
                           'creation_date': creation_date(meta),
                           'properties': properties},
                          default_flow_style=False)


def metadata_tarball(meta: Meta, member_arch: str) -> bytes:
    """The metadata tar of a split LXD image, the same bytes every time."""
    content = metadata_yaml(meta, member_arch).encode('utf-8')
    info = tarfile.TarInfo('metadata.yaml')
    info.size = len(content)
    info.mode = 0o644
    info.mtime = creation_date(meta)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w', format=tarfile.GNU_FORMAT) as t:
        t.addfile(info, io.BytesIO(content))
    return out.getvalue()


# -- pruning ----------------------------------------------------------


def last_used(image: Image) -> datetime.datetime:
    """When an LXD image last served a new instance (else its upload)."""
    used = timeutils.parse_isotime(image['last_used_at'])
    if used.year > 1:
        return used
    return timeutils.parse_isotime(image['uploaded_at'])


def ours(image: Image) -> bool:
    """True when every alias of an LXD image is one of ours.

    An image that also carries another alias (an operator's, the test
    bed's) is someone else's even when it gained ours by de-duplication.
    """
    names = [a['name'] for a in image.get('aliases') or ()]
    return bool(names) and all(
        n.startswith(constants.GLANCE_IMAGE_PREFIX) for n in names)


def _unused(image: Image, in_use: Collection[str], now: datetime.datetime,
            max_unused_age_seconds: float) -> bool:
    if image['fingerprint'] in in_use:
        return False
    age = (now - last_used(image)).total_seconds()
    return age >= max_unused_age_seconds


def prunable(image: Image, in_use: Collection[str], now: datetime.datetime,
             max_unused_age_seconds: float) -> bool:
    """Ours, used by no instance, and unused for at least the age."""
    return ours(image) and _unused(image, in_use, now,
                                   max_unused_age_seconds)


def stale_aliases(image: Image, in_use: Collection[str],
                  now: datetime.datetime,
                  max_unused_age_seconds: float) -> list[str]:
    """Our aliases on someone else's unused image (found by fingerprint).

    The image stays; only the aliases this driver added go.
    """
    if ours(image) or not _unused(image, in_use, now,
                                  max_unused_age_seconds):
        return []
    return [a['name'] for a in image.get('aliases') or ()
            if a['name'].startswith(constants.GLANCE_IMAGE_PREFIX)]


def snapshot_orphan(image: Image, now: datetime.datetime, age: float,
                    in_flight: Collection[str] = ()) -> bool:
    """A published snapshot no pipeline exports any more.

    Its aliases are all nova-snapshot-<image id> (as published), none of
    them ``in_flight``, and it was published at least ``age`` ago.
    """
    names = [a['name'] for a in image.get('aliases') or ()]
    if not names or any(not n.startswith(constants.SNAPSHOT_PREFIX) or
                        n in in_flight for n in names):
        return False
    published = timeutils.parse_isotime(image['uploaded_at'])
    return (now - published).total_seconds() >= age
