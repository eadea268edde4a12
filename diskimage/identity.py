"""Whether two paths (or open file descriptors) name the same storage, so
that writing one could change the bytes of the other.

Each is followed to the bytes it names: a regular file by its device and
inode, a loop device to its backing file (with its offset and size), a
partition to its disk (with its start and size), any other block device by
its number.  Restore uses this to refuse a target that is its own image;
capture and ``imgx import`` to refuse an image written over its source.
"""

import os
import stat

from .sysfs import backing_file, fstat_of, read_attr, sectors, stat_of, sysdir_of

_END = float("inf")


def extent(path, depth=0):
    """(storage, start, end) of the bytes *path* (or the open file
    descriptor *path*) names, following loop devices to their backing file
    and partitions to their disk."""
    st = fstat_of(path) if isinstance(path, int) else stat_of(path)
    if st is None:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return ("inode", st.st_dev, st.st_ino), 0, _END
    sysdir = sysdir_of(st.st_rdev)
    return block_extent(sysdir, st.st_rdev, depth) if sysdir else (("dev", st.st_rdev), 0, _END)


def block_extent(sysdir, rdev, depth):
    backing = backing_file(sysdir)
    under = extent(backing, depth + 1) if backing and depth < 8 else None
    if under:
        storage, start, end = under
        start += int(read_attr(sysdir, "loop", "offset", default="0"))
        return storage, start, min(end, start + sectors(sysdir, "size"))
    if os.path.exists(os.path.join(sysdir, "partition")):
        parent = os.path.dirname(sysdir)
        major, minor = read_attr(parent, "dev", default="0:0").split(":")
        storage, start, _ = block_extent(parent, os.makedev(int(major), int(minor)), depth)
        start += sectors(sysdir, "start")
        return storage, start, start + sectors(sysdir, "size")
    return ("dev", rdev), 0, _END


def same_storage(path_a, path_b):
    """True when writing one path could change the bytes of the other: the
    same file or device, a loop device over the other (or over a part of it
    that overlaps), or a partition of the other.  Either may be an open
    file descriptor (stdin's, for an image read from it), compared by its
    fstat device and inode (or device number).  False if either is
    missing."""
    a, b = extent(path_a), extent(path_b)
    if a is None or b is None:
        return False
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]
