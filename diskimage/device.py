"""Access to block devices and disk image files, and the checks that keep a
restore off a disk that is mounted, held, or the source itself.

Everything here is Linux: sizes come from the block-layer ioctls, the
state of devices from sysfs and ``/proc/self/mountinfo``.
"""

import ctypes
import errno
import fcntl
import os
import re
import stat
import struct
from dataclasses import dataclass

from diskimage.errors import DiskImageError, InputError, NoSpaceError, TargetError

# <linux/fs.h>: _IO(0x12, n) and _IOR(0x12, 114, size_t)
BLKROGET = 0x125E  # int: read-only flag
BLKSSZGET = 0x1268  # int: logical sector size
BLKGETSIZE64 = 0x80081272  # u64: size in bytes
BLKPBSZGET = 0x127B  # unsigned int: physical sector size
BLKZEROOUT = 0x127F  # u64 range[2] = {start, length}
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02

# Where the kernel's view of devices is read; tests point these at a fake tree.
SYSFS = "/sys"
MOUNTINFO = "/proc/self/mountinfo"
SWAPS = "/proc/swaps"

ZERO_BLOCK = 4 << 20
_ZEROS = bytes(ZERO_BLOCK)
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOTTY, errno.ENOSYS, errno.EINVAL)
_END = float("inf")


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


def what_is_there(path):
    """How a refusal names what is at an output path: "exists", or, for a
    symlink to nothing, that (an output is never written through it)."""
    if os.path.islink(path) and not os.path.exists(path):
        return (f"is a symlink to {os.readlink(path)}, which does not "
                f"exist")
    return "exists"


def refuse_dangling_link(path):
    """A target that is a symlink to nothing: refused, not created at the
    link's end (a link to an existing file or device is followed)."""
    if os.path.islink(path) and not os.path.exists(path):
        raise TargetError(
            f"{path}: {what_is_there(path)}; restore does not create files "
            f"through links: give the new file's own path")


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
        cls = NoSpaceError if e.errno in _NO_SPACE else TargetError
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


# --- the kernel's view: sysfs and mountinfo ---------------------------------
def _read(*path, default=None):
    try:
        with open(os.path.join(*path)) as f:
            return f.read().strip()
    except OSError:
        return default


def _sectors(*path):
    """A sysfs count of 512-byte sectors (whatever the device's), in bytes."""
    return int(_read(*path, default="0")) * 512


def _listdir(*path):
    try:
        return sorted(os.listdir(os.path.join(*path)))
    except OSError:
        return []


def _stat(path):
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _fstat(fd):
    try:
        return os.fstat(fd)
    except OSError:
        return None


def _sysdir(rdev):
    """The sysfs directory of the block device numbered *rdev*, or None."""
    link = os.path.join(SYSFS, "dev", "block", f"{os.major(rdev)}:{os.minor(rdev)}")
    return os.path.realpath(link) if os.path.exists(link) else None


def _block_sysdirs(prefix=""):
    return [os.path.realpath(os.path.join(SYSFS, "block", name))
            for name in _listdir(SYSFS, "block") if name.startswith(prefix)]


def _partitions(sysdir):
    """Sysfs directories of the partitions of the whole disk at *sysdir*."""
    name = os.path.basename(sysdir)
    return [os.path.join(sysdir, e) for e in _listdir(sysdir)
            if e.startswith(name) and os.path.exists(os.path.join(sysdir, e, "partition"))]


def _unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mounts():
    """(major:minor, mount point, source) of every mount we can see."""
    mounts = []
    try:
        with open(MOUNTINFO) as f:
            for line in f:
                fields = line.split()
                tail = fields.index("-")
                source = _unescape(fields[tail + 2]) if len(fields) > tail + 2 else ""
                mounts.append((fields[2], _unescape(fields[4]), source))
    except (OSError, ValueError, IndexError):
        pass
    return mounts


def _mounted_at(sysdir, mounts):
    """Mount points of the device at *sysdir* (by number, or by source name
    for filesystems such as btrfs that report an anonymous number)."""
    number = _read(sysdir, "dev")
    node = "/dev/" + os.path.basename(sysdir)
    return [point for majmin, point, source in mounts
            if majmin == number or (source.startswith("/dev/") and os.path.realpath(source) == node)]


def _backing_file(sysdir):
    backing = _read(sysdir, "loop", "backing_file")
    return backing.removesuffix(" (deleted)") if backing else None


def _block_busy(sysdir, mounts):
    node = "/dev/" + os.path.basename(sysdir)
    points = _mounted_at(sysdir, mounts)
    if points:
        return f"mounted at {', '.join(points)}"
    holders = _listdir(sysdir, "holders")
    if holders:
        return f"held by {', '.join(holders)}"
    for part in _partitions(sysdir):
        reason = _block_busy(part, mounts)
        if reason:
            return f"partition /dev/{os.path.basename(part)} is {reason}"
    swaps = (_read(SWAPS) or "").splitlines()[1:]
    if any(line.split() and os.path.realpath(_unescape(line.split()[0])) == node for line in swaps):
        return "in use as swap"
    return None


def busy_reason(path):
    """Why *path* must not be written now, or None when it is free.

    A block device is busy when it or one of its partitions is mounted,
    held (device-mapper, LVM, md), or used as swap, and a loop device also
    when its backing file is busy through another loop device; an image
    file when a loop device attached to it is busy.  Missing paths are free.
    """
    st, mounts = _stat(path), _mounts()
    if st and stat.S_ISBLK(st.st_mode):
        sysdir = _sysdir(st.st_rdev)
        reason = _block_busy(sysdir, mounts) if sysdir else None
        backing = _backing_file(sysdir) if sysdir and not reason else None
        under = busy_reason(backing) if backing else None
        return f"its backing file {backing} is {under}" if under else reason
    if not (st and stat.S_ISREG(st.st_mode)):
        return None
    for loop in _block_sysdirs("loop"):
        backing = _stat(_backing_file(loop) or "")
        if backing and (backing.st_dev, backing.st_ino) == (st.st_dev, st.st_ino):
            reason = _block_busy(loop, mounts)
            if reason:
                return f"attached to /dev/{os.path.basename(loop)}, which is {reason}"
    return None


def disk_model(path):
    """The model of the block device *path* (its disk's, for a partition),
    "" for files and devices that do not say."""
    st = _stat(path)
    if not (st and stat.S_ISBLK(st.st_mode)):
        return ""
    sysdir = _sysdir(st.st_rdev)
    if not sysdir:
        return ""
    model = _read(sysdir, "device", "model", default="") or \
        _read(os.path.dirname(sysdir), "device", "model", default="")
    if not model and _backing_file(sysdir):
        model = f"loop over {_backing_file(sysdir)}"
    return model.strip()


# --- same storage -------------------------------------------------------------
def _extent(path, depth=0):
    """(storage, start, end) of the bytes *path* (or the open file
    descriptor *path*) names, following loop devices to their backing file
    and partitions to their disk."""
    st = _fstat(path) if isinstance(path, int) else _stat(path)
    if st is None:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return ("inode", st.st_dev, st.st_ino), 0, _END
    sysdir = _sysdir(st.st_rdev)
    return _block_extent(sysdir, st.st_rdev, depth) if sysdir else (("dev", st.st_rdev), 0, _END)


def _block_extent(sysdir, rdev, depth):
    backing = _backing_file(sysdir)
    under = _extent(backing, depth + 1) if backing and depth < 8 else None
    if under:
        storage, start, end = under
        start += int(_read(sysdir, "loop", "offset", default="0"))
        return storage, start, min(end, start + _sectors(sysdir, "size"))
    if os.path.exists(os.path.join(sysdir, "partition")):
        parent = os.path.dirname(sysdir)
        major, minor = _read(parent, "dev", default="0:0").split(":")
        storage, start, _ = _block_extent(parent, os.makedev(int(major), int(minor)), depth)
        start += _sectors(sysdir, "start")
        return storage, start, start + _sectors(sysdir, "size")
    return ("dev", rdev), 0, _END


def same_storage(path_a, path_b):
    """True when writing one path could change the bytes of the other: the
    same file or device, a loop device over the other (or over a part of it
    that overlaps), or a partition of the other.  Either may be an open
    file descriptor (stdin's, for an image read from it), compared by its
    fstat device and inode (or device number).  False if either is
    missing."""
    a, b = _extent(path_a), _extent(path_b)
    if a is None or b is None:
        return False
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


# --- listing -----------------------------------------------------------------
def list_disks():
    """The whole disks in /sys/block, without RAM disks, zram, unattached
    loop devices and empty drives."""
    mounts = _mounts()
    disks = []
    for sysdir in _block_sysdirs():
        name, backing = os.path.basename(sysdir), _backing_file(sysdir)
        size = _sectors(sysdir, "size")
        if name.startswith(("ram", "zram")) or size == 0 or (name.startswith("loop") and not backing):
            continue
        disks.append({
            "name": name, "path": f"/dev/{name}", "size": size,
            "model": _read(sysdir, "device", "model", default=""),
            "logical_sector_size": int(_read(sysdir, "queue", "logical_block_size", default="512")),
            "physical_sector_size": int(_read(sysdir, "queue", "physical_block_size", default="512")),
            "removable": _read(sysdir, "removable") == "1",
            "rotational": _read(sysdir, "queue", "rotational") == "1",
            "read_only": _read(sysdir, "ro") == "1",
            "partitions": [{
                "name": os.path.basename(part), "path": f"/dev/{os.path.basename(part)}",
                "start": _sectors(part, "start"), "size": _sectors(part, "size"),
                "mounted_at": _mounted_at(part, mounts), "holders": _listdir(part, "holders"),
            } for part in _partitions(sysdir)],
            "mounted_at": _mounted_at(sysdir, mounts), "holders": _listdir(sysdir, "holders"),
            "backing_file": backing,
        })
    return disks


# --- writing -----------------------------------------------------------------
def _write_error(disk, offset, e):
    cls = NoSpaceError if e.errno in _NO_SPACE else DiskImageError
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
