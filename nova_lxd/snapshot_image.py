"""What a server snapshot becomes in Glance: LXD's image minus the seed.

The config drive (admin password, user data, vendor data, network data)
lives in the container's root file system, under cloud_init's
CONFIG_DRIVE_SEED. A snapshot published as is would carry it to everyone
the image is shared with, and a server booted from it would come up with
the old server's identity (cloud-init's ConfigDrive datasource reads the
seed before any other). So the tar LXD publishes (uncompressed) is
streamed through here on its way to Glance: every member at or under the
seed is left out, every other member passes byte for byte, and the result
is gzip-compressed. The running server is not touched, and nothing is
held in memory but one member's headers and one chunk of data.

Pure: it reads and writes streams only.
"""

import io
import tarfile
import zlib

from nova_lxd import cloud_init

# The seed as a unified tarball names it.
DROPPED = 'rootfs/' + cloud_init.CONFIG_DRIVE_SEED.strip('/')
BLOCK = tarfile.BLOCKSIZE
CHUNK = 1024 * 1024
# GNU long names/links and PAX headers LXD writes: paths, xattrs.
EXTENDED = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK,
            tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
EXTENDED_LIMIT = 16 * 1024 * 1024
GZIP_LEVEL = 6


class SnapshotImageError(ValueError):
    """LXD's published image is not the plain tar this module reads."""


def without_seed(source):
    """A readable file of the gzip-compressed tar, seed left out.

    ``source``: a readable file of the uncompressed tar LXD exports.
    """
    return io.BufferedReader(_Chunks(_gzip(_kept(source))), CHUNK)


def dropped(name):
    """True for the seed folder and everything under it."""
    while name.startswith('./'):
        name = name[2:]
    name = name.lstrip('/')
    return name == DROPPED or name.startswith(DROPPED + '/')


def _exact(source, size):
    """``size`` bytes of ``source``; SnapshotImageError if it ends first."""
    parts = []
    while size:
        data = source.read(min(size, CHUNK))
        if not data:
            raise SnapshotImageError('the image ends within a member')
        parts.append(data)
        size -= len(data)
    return b''.join(parts)


def _pax(data):
    """The records of a PAX extended header: {keyword: value}."""
    found = {}
    pos = 0
    while pos < len(data) and data[pos:pos + 1] != b'\0':
        length, _, rest = data[pos:pos + 20].partition(b' ')
        if not length.isdigit() or not _:
            raise SnapshotImageError('a damaged PAX header')
        record = data[pos:pos + int(length)]
        keyword, _, value = record[len(length) + 1:-1].partition(b'=')
        found[keyword.decode('utf-8', 'surrogateescape')] = value.decode(
            'utf-8', 'surrogateescape')
        pos += int(length)
    return found


def _kept(source):
    """The tar's bytes without the seed's members, as chunks."""
    pending = []            # extended headers of the coming member
    names = {}              # 'name', 'linkname', 'size' they set
    while True:
        header = _exact(source, BLOCK)
        if header == bytes(BLOCK):
            yield bytes(2 * BLOCK)          # the end of the archive
            return
        try:
            info = tarfile.TarInfo.frombuf(header, 'utf-8',
                                           'surrogateescape')
        except tarfile.HeaderError as e:
            raise SnapshotImageError('not a plain tar archive (%s)' % e)
        if info.type in EXTENDED or info.type == tarfile.XGLTYPE:
            if info.size > EXTENDED_LIMIT:
                raise SnapshotImageError('an extended header of %d bytes'
                                         % info.size)
            data = _exact(source, info._block(info.size))
            if info.type == tarfile.XGLTYPE:
                yield header + data         # applies to all that follow
                continue
            pending += [header, data]
            names.update(_extended(info, data[:info.size]))
            continue
        if info.type == tarfile.GNUTYPE_SPARSE:
            raise SnapshotImageError('a GNU sparse member')
        name = names.get('name', info.name)
        linkname = names.get('linkname', info.linkname)
        size = int(names.get('size', info.size))
        carries = info.isreg() or info.type not in tarfile.SUPPORTED_TYPES
        length = info._block(size) if carries else 0
        leave = dropped(name) or (info.islnk() and dropped(linkname))
        if not leave:
            yield b''.join(pending) + header
        pending, names = [], {}
        while length:
            data = source.read(min(length, CHUNK))
            if not data:
                raise SnapshotImageError('the image ends within a member')
            length -= len(data)
            if not leave:
                yield data


def _extended(info, data):
    if info.type == tarfile.GNUTYPE_LONGNAME:
        return {'name': _text(data)}
    if info.type == tarfile.GNUTYPE_LONGLINK:
        return {'linkname': _text(data)}
    records = _pax(data)
    return {key: records[pax] for key, pax in (
        ('name', 'path'), ('linkname', 'linkpath'), ('size', 'size'))
        if pax in records}


def _text(data):
    return data.split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')


def _gzip(chunks):
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


class _Chunks(io.RawIOBase):
    """A generator of byte strings as a raw readable file."""

    def __init__(self, chunks):
        self._chunks = chunks
        self._left = memoryview(b'')

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size
