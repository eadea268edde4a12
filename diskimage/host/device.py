"""Access to block devices and disk image files: opening a source or a
target (a busy target refused), reading, writing, zeroing and syncing.

Everything here is Linux: sizes come from the block-layer ioctls.  The
state of devices (mounted, held, listed) is read by :mod:`diskimage.host.sysfs`,
and whether two paths are the same storage is :mod:`diskimage.host.identity`'s.
"""

import ctypes
import errno
import fcntl
import os
import stat
import struct
from dataclasses import dataclass

from ..errors import (NO_SPACE_ERRNOS, DiskImageError, InputError,
                      NoSpaceError, TargetError)

from .links import refuse_dangling_link, what_is_there  # noqa: F401
from .sysfs import busy_reason
# Re-exported, for imports written before they moved out of this module.
from .identity import same_storage  # noqa: F401
from .sysfs import disk_model, list_disks  # noqa: F401

# <linux/fs.h>: _IO(0x12, n) and _IOR(0x12, 114, size_t)
BLKROGET = 0x125E  # int: read-only flag
BLKSSZGET = 0x1268  # int: logical sector size
BLKGETSIZE64 = 0x80081272  # u64: size in bytes
BLKPBSZGET = 0x127B  # unsigned int: physical sector size
BLKZEROOUT = 0x127F  # u64 range[2] = {start, length}
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02

ZERO_BLOCK = 4 << 20
_ZEROS = bytes(ZERO_BLOCK)
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOTTY, errno.ENOSYS, errno.EINVAL)


@dataclass
class Disk:
    """An open disk image file or block device."""

    path: str
    fd: int
    size: int
    logical_sector_size: int
    physical_sector_size: int
    is_block: bool
    created: bool = False

    def read(self, offset, length):
        """Up to *length* bytes at *offset*; shorter only at the end."""
        parts = []
        while length > 0:
            try:
                chunk = os.pread(self.fd, min(length, 1 << 30), offset)
            except OSError as e:
                raise DiskImageError(f"{self.path}: read failed at offset {offset}: {e.strerror}") from e
            if not chunk:
                break
            parts.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(parts)

    def prefetch(self, offset, length):
        """Ask the kernel to start reading [offset, offset+length) into the
        page cache now (POSIX_FADV_WILLNEED), so the read that follows
        finds it there: more than one read in flight on the device.  Only
        a hint; errors are ignored."""
        try:
            os.posix_fadvise(self.fd, offset, length,
                             os.POSIX_FADV_WILLNEED)
        except OSError:
            pass

    def close(self):
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _disk(path, fd, created=False):
    """A Disk for *fd*, which is closed if that fails."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISBLK(st.st_mode):
            return Disk(path, fd, st.st_size, 512, 512, False, created)
        size = struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, bytes(8)))[0]
        logical = struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, bytes(4)))[0]
        physical = struct.unpack("I", fcntl.ioctl(fd, BLKPBSZGET, bytes(4)))[0]
        return Disk(path, fd, size, logical, physical, True)
    except BaseException:
        os.close(fd)
        raise


_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
          stat.S_IFIFO: "a pipe", stat.S_IFSOCK: "a socket"}


def _check_kind(path, st, error):
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise error(f"{path} is {kind}, not a disk or image file")


def open_source(path):
    """Open an image file or block device read-only."""
    try:
        _check_kind(path, os.stat(path), InputError)
        return _disk(path, os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except OSError as e:
        raise InputError(f"{path}: cannot open: {e.strerror}") from e


def open_target(path, *, create_size=None, exclusive=True):
    """Open a block device or image file for writing.

    A block device is opened with O_EXCL when *exclusive*, so the kernel
    refuses it while mounted or held; an image file attached to a busy loop
    device is refused too.  A missing file is created sparse, *create_size*
    bytes long, and the Disk is marked ``created``; an existing file keeps
    its size.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if create_size is None:
            raise InputError(f"{path}: no such file or device") from None
        return _create(path, create_size)
    except OSError as e:
        raise TargetError(f"{path}: cannot open: {e.strerror}") from e
    _check_kind(path, st, TargetError)
    is_block = stat.S_ISBLK(st.st_mode)
    reason = busy_reason(path) if exclusive and not is_block else None
    if reason:  # O_EXCL guards block devices; nothing guards an image file
        raise TargetError(f"{path} is in use ({reason})")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (os.O_EXCL if is_block and exclusive else 0))
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise TargetError(f"{path} is in use ({busy_reason(path) or 'mounted or held'})") from e
        if e.errno == errno.EROFS:
            raise TargetError(f"{path} is read-only") from e
        raise TargetError(f"{path}: cannot open for writing: {e.strerror}") from e
    disk = _disk(path, fd)
    if is_block and struct.unpack("i", fcntl.ioctl(fd, BLKROGET, bytes(4)))[0]:
        disk.close()  # newer kernels open a read-only device for writing anyway
        raise TargetError(f"{path} is read-only")
    return disk


def _create(path, size):
    refuse_dangling_link(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as e:
        if e.errno == errno.EEXIST:
            refuse_dangling_link(path)  # made a dangling link meanwhile
        raise TargetError(f"{path}: cannot create: {e.strerror}") from e
    try:
        os.ftruncate(fd, size)
    except OSError as e:
        os.close(fd)
        os.unlink(path)
        cls = NoSpaceError if e.errno in NO_SPACE_ERRNOS else TargetError
        raise cls(f"{path}: cannot make it {size} bytes: {e.strerror}") from e
    return _disk(path, fd, created=True)


def data_extents(fd, end):
    """(start, stop) of every data region of the first *end* bytes of the
    file *fd*, skipping holes (SEEK_DATA / SEEK_HOLE)."""
    offset = 0
    while offset < end:
        try:
            offset = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:     # ENXIO: no data after offset
            return
        if offset >= end:
            return
        hole = min(os.lseek(fd, offset, os.SEEK_HOLE), end)
        yield offset, hole
        offset = hole


class FileHoles:
    """Where the disk file *fd* (of *size* bytes) has data and where holes,
    asked in increasing order: one SEEK_DATA and one SEEK_HOLE for each
    data extent passed.  A filesystem that cannot tell holes has none."""

    def __init__(self, fd, size):
        self.fd, self.size = fd, size
        # [hole_from, data_from) is a hole, [data_from, data_to) data
        self.hole_from = self.data_from = self.data_to = 0

    def data_in(self, start, end):
        """The (from, to) extents of data within [start, end): the rest of
        it reads as zeros."""
        found, pos = [], start
        while pos < end:
            if not self.hole_from <= pos < self.data_to:
                self._find(pos)
            if pos < self.data_from:        # in the hole before the data
                pos = self.data_from
                continue
            stop = min(end, self.data_to)
            found.append((pos, stop))
            pos = stop
        return found

    def _find(self, offset):
        try:
            data = os.lseek(self.fd, offset, os.SEEK_DATA)
        except OSError as e:
            if e.errno != errno.ENXIO:      # no holes known here
                self.hole_from, self.data_from = 0, 0
                self.data_to = float("inf")
                return
            data = self.size                # no data after offset
        try:
            stop = os.lseek(self.fd, data, os.SEEK_HOLE) \
                if data < self.size else self.size
        except OSError:
            stop = self.size
        self.hole_from, self.data_from = offset, data
        self.data_to = max(stop, data + 1)


# --- writing -----------------------------------------------------------------
def _write_error(disk, offset, e):
    cls = NoSpaceError if e.errno in NO_SPACE_ERRNOS else DiskImageError
    where = f"at offset {offset}" if offset is not None else "on flush"
    return cls(f"{disk.path}: write failed {where}: {e.strerror}")


def write_all(disk, offset, data):
    """Write all of *data* at *offset*."""
    view = memoryview(data).cast("B")
    while view:
        try:
            done = os.pwrite(disk.fd, view, offset)
        except OSError as e:
            raise _write_error(disk, offset, e) from e
        if done == 0:
            raise _write_error(disk, offset, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        view = view[done:]
        offset += done


def _write_zeros(disk, offset, length):
    while length > 0:
        n = min(length, ZERO_BLOCK)
        write_all(disk, offset, memoryview(_ZEROS)[:n])
        offset += n
        length -= n


def _blkzeroout(fd, offset, length):
    fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", offset, length))


_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def _fallocate(fd, mode, offset, length):
    if _libc.fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def zero_range(disk, offset, length):
    """Make [offset, offset + length) read as zeros: BLKZEROOUT on a block
    device, a punched hole in a file (extended if the range passes its
    end), and written zeros where neither works."""
    if length <= 0:
        return
    start, end = offset, offset + length
    try:
        if disk.is_block:  # the ioctl takes whole logical sectors only
            mask = disk.logical_sector_size - 1
            start, end = (offset + mask) & ~mask, (offset + length) & ~mask
            if end > start:
                _blkzeroout(disk.fd, start, end - start)
        else:
            _fallocate(disk.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)
            if os.fstat(disk.fd).st_size < end:
                os.ftruncate(disk.fd, end)
    except OSError as e:
        if e.errno not in _UNSUPPORTED:
            raise _write_error(disk, start, e) from e
        start = end = offset + length
    if end <= start:  # nothing zeroed in place: write it all
        start = end = offset + length
    _write_zeros(disk, offset, start - offset)
    _write_zeros(disk, end, offset + length - end)


def sync(disk):
    """Flush everything written to *disk* to stable storage."""
    try:
        os.fsync(disk.fd)
    except OSError as e:
        raise _write_error(disk, None, e) from e
