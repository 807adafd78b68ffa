"""Hostile Glance images, generated here (never downloaded).

Each generator writes one image file that a tenant could upload as
``--disk-format raw --container-format bare`` and returns it as an
``Image``: its path, what it is, and the words the server's fault names
when the driver refuses it. tools/hostile-images uploads and boots them on
a cloud; the functional tests (tests/functional/test_hostile_images.py)
boot them through Nova's API on the test bed. Only the standard library
and, for squashfs, mksquashfs (squashfs-tools).

Sizes are parameters: the defaults are what tools/hostile-images uploads;
tests pass smaller ones where the check does not depend on them.
"""

import collections
import io
import lzma
import os
import struct
import subprocess
import tarfile
import tempfile
import zlib

GiB = 1 << 30
MiB = 1 << 20

Image = collections.namedtuple('Image', 'name path what fault')

METADATA = b'architecture: x86_64\ncreation_date: 1700000000\n'


def _info(name, size=0, kind=tarfile.REGTYPE, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else mode
    info.mtime = 1700000000
    return info


def _dir(tar, name):
    tar.addfile(_info(name, kind=tarfile.DIRTYPE))


def _file(tar, name, data):
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _unified_start(tar, metadata=METADATA):
    """metadata.yaml and a root file system that looks like one."""
    _file(tar, 'metadata.yaml', metadata)
    for folder in ('rootfs', 'rootfs/etc', 'rootfs/bin'):
        _dir(tar, folder)
    _file(tar, 'rootfs/etc/hostname', b'hostile\n')


def alias_bomb(path, depth=7, fan=9):
    """A unified tarball whose metadata.yaml nests YAML aliases.

    ``fan`` ** ``depth`` strings as soon as anything turns the parsed
    architecture into text (seven levels of nine: 4.8 million); the file
    is a few hundred bytes.
    """
    lines = ['l0: &l0 "%s"' % ('lol' * 8)]
    for level in range(1, depth + 1):
        lines.append('l%d: &l%d [%s]' % (
            level, level, ', '.join(['*l%d' % (level - 1)] * fan)))
    lines.append('architecture: *l%d' % depth)
    metadata = ('\n'.join(lines) + '\n').encode()
    with tarfile.open(path, 'w:gz') as tar:
        _unified_start(tar, metadata)
    return Image('alias-bomb', path,
                 'metadata.yaml with YAML aliases nested %d deep, %d '
                 'bytes' % (depth, os.path.getsize(path)),
                 'YAML anchors and aliases')


def deep_yaml(path, depth=100000):
    """A unified tarball whose metadata.yaml nests lists ``depth`` deep."""
    metadata = b'architecture: ' + b'[' * depth + b']' * depth + b'\n'
    with tarfile.open(path, 'w:gz') as tar:
        _unified_start(tar, metadata)
    return Image('deep-yaml', path,
                 'metadata.yaml with lists nested %d deep' % depth,
                 'metadata.yaml')


def many_members(path, count=100000, unified=False):
    """A tar.xz of ``count`` empty files (about 130 KB for 100,000).

    ``unified``: inside a unified tarball's rootfs/ (a real image but for
    its file count); else at the top of a tar that is nothing else.
    """
    with tarfile.open(path, 'w:xz', format=tarfile.GNU_FORMAT) as tar:
        prefix = ''
        if unified:
            _unified_start(tar)
            prefix = 'rootfs/many/'
            _dir(tar, prefix)
        for number in range(count):
            tar.addfile(_info('%sf%07d' % (prefix, number)))
    return Image('many-members' + ('-unified' if unified else ''), path,
                 '%d empty files, %d bytes as xz' % (
                     count, os.path.getsize(path)),
                 'files' if unified else
                 'neither metadata.yaml nor a root file system')


def long_name(path, size=64 * MiB, pax=False):
    """A tar.xz with one member whose name is ``size`` bytes long.

    GNU format: a ././@LongLink header of that size; ``pax``: a PAX
    extended header holding the name instead.
    """
    name = 'rootfs/' + 'n' * size
    fmt = tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT
    with tarfile.open(path, 'w:xz', format=fmt) as tar:
        # First: a check that stops once it knows the kind reads it too.
        tar.addfile(_info(name))
        _unified_start(tar)
    return Image('long-name-pax' if pax else 'long-name', path,
                 'a %s header of %d MiB, %d bytes as xz' % (
                     'PAX' if pax else 'GNU long-name', size // MiB,
                     os.path.getsize(path)),
                 'header')


def _xz_block(data):
    """(block bytes, unpadded size) of ``data`` compressed as one xz block."""
    stream = lzma.compress(data, format=lzma.FORMAT_XZ,
                           check=lzma.CHECK_CRC32)
    backward = (struct.unpack('<I', stream[-8:-4])[0] + 1) * 4
    index = stream[-12 - backward:-12]
    block = stream[12:-12 - backward]
    # The index's one record: (unpadded size, uncompressed size).
    unpadded, _ = _varints(index[2:], 2)
    return block, unpadded


def _varints(data, count):
    values, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7f) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value, shift = 0, 0
            if len(values) == count:
                return values
    raise ValueError('truncated varints')


def _varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7f | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _xz_of_blocks(parts):
    """One xz stream of blocks [(block bytes, unpadded, uncompressed)]."""
    flags = b'\x00\x01'                 # CRC32 checks
    header = b'\xfd7zXZ\x00' + flags + struct.pack(
        '<I', zlib.crc32(flags))
    index = bytearray(b'\x00' + _varint(len(parts)))
    for _, unpadded, size in parts:
        index += _varint(unpadded) + _varint(size)
    index += b'\x00' * (-len(index) % 4)
    index += struct.pack('<I', zlib.crc32(index))
    footer_body = struct.pack('<I', len(index) // 4 - 1) + flags
    footer = (struct.pack('<I', zlib.crc32(footer_body)) + footer_body +
              b'YZ')
    return header + b''.join(p[0] for p in parts) + bytes(index) + footer


def zeros_bomb(path, expanded=16 * GiB, block=16 * MiB):
    """A unified tar.xz whose rootfs holds one file of zeros.

    The file's bytes are one xz block of ``block`` zeros repeated (every
    xz block is decoded on its own), so any size costs no more time to
    make than one block: 16 GiB of zeros is about 100 KB.
    """
    expanded -= expanded % block
    head = io.BytesIO()
    with tarfile.open(fileobj=head, mode='w',
                      format=tarfile.GNU_FORMAT) as tar:
        _unified_start(tar)
        head.write(_info('rootfs/zeros', expanded).tobuf(tarfile.GNU_FORMAT))
        prelude = head.getvalue()       # before close() ends the archive
    tail = b'\0' * (2 * tarfile.BLOCKSIZE)
    parts = [_xz_block(prelude) + (len(prelude),)]
    parts += [_xz_block(b'\0' * block) + (block,)] * (expanded // block)
    parts += [_xz_block(tail) + (len(tail),)]
    with open(path, 'wb') as f:
        f.write(_xz_of_blocks(parts))
    return Image('zeros-bomb', path,
                 '%d GiB of zeros in %d bytes of xz' % (
                     expanded // GiB, os.path.getsize(path)),
                 'expands to')


def squashfs_bomb(path, expanded=16 * GiB):
    """A squashfs root file system with one sparse file of ``expanded``.

    mksquashfs reads the holes (about 5 s per GiB here); squashfs keeps
    them as sparse blocks: 4 KB whatever the size.
    """
    with tempfile.TemporaryDirectory() as root:
        os.chmod(root, 0o755)
        for folder in ('etc', 'bin'):
            os.mkdir(os.path.join(root, folder))
        with open(os.path.join(root, 'zeros'), 'wb') as f:
            f.truncate(expanded)
        subprocess.run(['mksquashfs', root, path, '-all-root', '-noappend',
                        '-quiet', '-no-progress'], check=True,
                       stdout=subprocess.DEVNULL)
    return Image('squashfs-bomb', path,
                 'a squashfs of %d MiB, sparse, in %d bytes' % (
                     expanded // MiB, os.path.getsize(path)),
                 'expands to')


def sparse_member(path, expanded=16 * GiB):
    """A unified tar.gz with a GNU sparse file of ``expanded`` bytes."""
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode='w',
                      format=tarfile.GNU_FORMAT) as tar:
        _unified_start(tar)
        data = bytearray(body.getvalue())   # before close() ends it
    info = _info('rootfs/sparse', 0, kind=tarfile.GNUTYPE_SPARSE)
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    # One map entry (offset 0, 0 bytes); realsize at 483 (12 octal bytes).
    header[386:398] = b'%011o\0' % 0
    header[398:410] = b'%011o\0' % 0
    header[483:495] = b'%011o\0' % expanded
    header[148:156] = b' ' * 8
    header[148:156] = b'%06o\0 ' % sum(header)
    data += header + b'\0' * (2 * tarfile.BLOCKSIZE)
    with open(path, 'wb') as f:
        f.write(zlib.compress(bytes(data), wbits=31))
    return Image('sparse-member', path,
                 'a GNU sparse file of %d GiB' % (expanded // GiB),
                 'sparse')


def qcow2_as_tar(path, size=MiB):
    """A qcow2 header in a file named like a tarball."""
    header = struct.pack('>4sIQIIQ', b'QFI\xfb', 3, 0, 0, 16, size)
    with open(path, 'wb') as f:
        f.write(header + bytes(64 * 1024 - len(header)))
    return Image('qcow2-as-tar', path, 'a qcow2 disk named .tar.gz',
                 'a qcow2 disk image')


def _generators(small):
    """(name, file name, generator of the image into a path)."""
    scale = GiB if small else 16 * GiB
    header = 4 * MiB if small else 64 * MiB
    return (
        ('alias-bomb', 'alias-bomb.tar.gz', alias_bomb),
        ('deep-yaml', 'deep-yaml.tar.gz', deep_yaml),
        ('many-members', 'many-members.tar.xz', many_members),
        ('long-name', 'long-name.tar.xz',
         lambda path: long_name(path, size=header)),
        ('long-name-pax', 'long-name-pax.tar.xz',
         lambda path: long_name(path, size=header, pax=True)),
        ('zeros-bomb', 'zeros-bomb.tar.xz',
         lambda path: zeros_bomb(path, expanded=2 * scale)),
        ('sparse-member', 'sparse-member.tar.gz',
         lambda path: sparse_member(path, expanded=2 * scale)),
        ('qcow2-as-tar', 'qcow2-as-tar.tar.gz', qcow2_as_tar),
        # mksquashfs reads the holes: 5 s or so per GiB.
        ('squashfs-bomb', 'squashfs-bomb.sqfs',
         lambda path: squashfs_bomb(
             path, expanded=GiB + MiB if small else 4 * GiB)),
    )


NAMES = tuple(name for name, _, _ in _generators(True))


def generate(folder, small=False, only=None):
    """The hostile images (those named in ``only``) into ``folder``.

    ``small``: quick sizes (bombs of 1-2 GiB, headers of 4 MiB).
    """
    return [make(os.path.join(folder, file_name))
            for name, file_name, make in _generators(small)
            if not only or name in only]
