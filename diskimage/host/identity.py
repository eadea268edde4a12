"""Whether two paths (or open file descriptors) name the same storage, so
that writing one could change the bytes of the other.

Each is followed to the bytes it names: a regular file by its device and
inode, a loop device to its backing file (with its offset and size), a
partition to its disk (with its start and size), any other block device by
its number.  Restore uses this to refuse a target that is its own image;
capture and ``imgx import`` to refuse an image written over its source.
"""

import os
import re
import stat

from ..errors import TargetError
from .sysfs import backing_file, fstat_of, read_attr, sectors, stat_of, sysdir_of
from ..image.volumes import PARTIAL, volume_name

_END = float("inf")
_VOLUME = re.compile(r"(.*)\.r\d{2,}(?:\.partial)?")


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


def image_names(path):
    """Every existing name that writing an image to `path` could write,
    replace or remove: `path` and `path`.partial, and each volume
    ``BASE.rNN`` of a split image and its ``.partial`` (a capture renames
    its volumes over them, or drops them as stale, at the end)."""
    names = [path, path + PARTIAL]
    base = os.path.basename(volume_name(path, 1))[:-4]
    directory = os.path.dirname(path)
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        entries = []
    for entry in sorted(entries):
        match = _VOLUME.fullmatch(entry)
        if match and match.group(1) == base:
            names.append(os.path.join(directory, entry))
    return names


def refuse_image_over_source(source, out, name=None,
                             why="the image cannot be written over its own "
                                 "source"):
    """Raise TargetError (exit 5, nothing written) when writing the image
    `out` could change or remove the bytes of `source`.  `out` is an image
    path (every name of :func:`image_names` is compared) or an open file
    descriptor such as stdout's, shown as `name`; `why` ends the
    message."""
    if isinstance(out, int):
        candidates = [(out, name or f"file descriptor {out}")]
    else:
        candidates = [(each, each) for each in image_names(out)]
    for each, shown in candidates:
        if same_storage(each, source):
            raise TargetError(f"{shown}: is {source} (the same file, or "
                              f"a loop device over it); {why}")
