"""btrfs changed by btrfs-progs: grown with ``btrfs filesystem resize max``
on a temporary mount (btrfs resizes only while mounted), a new UUID with
``btrfstune -u -f`` (unmounted; every tree block is rewritten with the new
fsid, so any kernel mounts it, unlike ``-m``'s metadata_uuid).  Not shrunk:
a shrink relocates whole chunks, and whether it fits depends on how the
chunks are filled, not on the used bytes the plan knows (see
docs/filesystems/btrfs.md)."""

import os

from .. import tooling
from .super import DEV_ITEM, SUPERBLOCK, SUPER_OFFSET

#: What the restore plan should say of a btrfs that grows.
GROW_PLAN = "grown on a temporary mount (btrfs filesystem resize max)"
#: The kernel's resize ioctl (fs/btrfs/ioctl.c, btrfs_ioctl_resize)
#: refuses a new size under 256 MiB with EINVAL; into a smaller partition
#: the filesystem keeps its size, as the plan says before writing.
GROW_FLOOR = 256 << 20
GROW_FLOOR_WHY = "the kernel refuses to resize a btrfs to less"


def _forget(what):
    """After the unmount: the kernel's list of btrfs devices forgets the
    loop device it was scanned through (which goes away)."""
    def forget(dev):
        tooling.call(["btrfs", "device", "scan", "--forget", dev], what)
    return forget


def _mounted(path, what):
    return tooling.mounted(path, "btrfs", what, after=_forget(what))


def size_of(path):
    """The filesystem's size (its device item's total_bytes) at *path*."""
    with open(path, "rb") as dev:
        dev.seek(SUPER_OFFSET)
        sb = SUPERBLOCK.unpack(dev.read(SUPERBLOCK.size))
    return DEV_ITEM.unpack(sb.dev_item).total_bytes


def grow(path, size, what):
    """Grow the btrfs at *path* to *size* bytes (whole sectors; "max" when
    that is the whole device); returns the size reached."""
    target = "max" if size >= tooling.device_size(path) else str(size)
    with _mounted(path, what) as mnt:
        tooling.run(["btrfs", "filesystem", "resize", target, mnt], what)
    return size_of(path)


def new_ids(path, what):
    tooling.run(["btrfstune", "-f", "-u", os.fspath(path)], what)
