"""Which parts of a capture source are mounted read-write right now.

A filesystem mounted read-write changes while it is read, so its image may
be inconsistent (and ext4 says its journal needs recovery).  The mounts are
read from ``/proc/self/mountinfo``; each mounted device is followed to the
bytes it names (a loop device with an offset over the source file, a
partition of the source disk) with :func:`diskimage.host.identity.extent`.
"""

import os

from . import sysfs
from .identity import block_extent, extent


def _rw_mounts():
    """(major:minor, mount point, source) of every read-write mount."""
    return [(majmin, point, source) for majmin, point, source, options
            in sysfs.mountinfo() if "ro" not in options]


def mount_extent(majmin, source):
    """(storage, start, end) of the bytes a mount's device names (as
    identity.extent), from its mountinfo major:minor and source; None for
    a mount with no block device behind it (tmpfs, proc, ...)."""
    if source.startswith("/dev/") and os.path.exists(source):
        return extent(source)
    try:
        major, minor = (int(x) for x in majmin.split(":"))
    except ValueError:
        return None
    if major == 0:
        return None     # no device behind it (tmpfs, proc, ...)
    sysdir = sysfs.sysdir_of(os.makedev(major, minor))
    return block_extent(sysdir, os.makedev(major, minor), 0) \
        if sysdir else None


_mount_extent = mount_extent     # the old private name, kept working


def rw_mounts(path):
    """(start, end, mount point, device) of every read-write mount whose
    device lies (partly) on the bytes of `path`, offsets relative to
    `path`'s start; [] for a path nothing mounted covers."""
    mine = extent(path)
    if mine is None:
        return []
    storage, start, end = mine
    found = []
    for majmin, point, source in _rw_mounts():
        theirs = mount_extent(majmin, source)
        if theirs is None or theirs[0] != storage:
            continue
        if theirs[1] < end and start < theirs[2]:
            found.append((max(theirs[1], start) - start,
                          min(theirs[2], end) - start, point, source))
    return found
