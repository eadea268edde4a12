"""What a test needs from the machine, and why it is skipped without it.

The one place that decides: `@pytest.mark.needs("mkfs.ext4", "mcopy",
root=True, fuse=True)` on a test, a class or a module (`pytestmark`), read
by tests/conftest.py before any fixture is built.  The project skips only
for what the machine lacks; `make deps` installs every tool below, so on a
machine set up by the Makefile nothing skips.
"""

import os
import shutil

# Root's tools live in sbin, which a user's PATH may not hold.
SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

#: The Debian package each tool comes from, for the skip reason.  Kept small
#: on purpose: a tool not listed is still checked, only named alone.
PACKAGES = {
    "sfdisk": "fdisk", "sgdisk": "gdisk", "losetup": "mount",
    "blkid": "util-linux", "fsfreeze": "util-linux",
    "mkfs.ext4": "e2fsprogs", "mke2fs": "e2fsprogs", "e2fsck": "e2fsprogs",
    "dumpe2fs": "e2fsprogs", "debugfs": "e2fsprogs", "tune2fs": "e2fsprogs",
    "resize2fs": "e2fsprogs", "e2image": "e2fsprogs", "filefrag": "e2fsprogs",
    "mkfs.fat": "dosfstools", "fsck.fat": "dosfstools",
    "mcopy": "mtools", "minfo": "mtools", "mshowfat": "mtools",
    "mkfs.exfat": "exfatprogs", "fsck.exfat": "exfatprogs",
    "dump.exfat": "exfatprogs", "mount.exfat-fuse": "exfat-fuse",
    "mkntfs": "ntfs-3g", "ntfs-3g": "ntfs-3g", "ntfsinfo": "ntfs-3g",
    "ntfsfix": "ntfs-3g", "ntfsresize": "ntfs-3g",
    "mkfs.xfs": "xfsprogs", "mkfs.btrfs": "btrfs-progs",
    "cryptsetup": "cryptsetup-bin", "pvcreate": "lvm2",
    "qemu-img": "qemu-utils", "qemu-system-x86_64": "qemu-system-x86",
    "lz4": "lz4", "zstd": "zstd",
}


def package(tool):
    if tool.startswith("partclone."):
        return "partclone"
    return PACKAGES.get(tool)


def which(tool):
    return shutil.which(tool, path=SEARCH)


def missing(*tools, root=False, fuse=False):
    """Why a test needing `tools` (and root, /dev/fuse) cannot run here, as
    one line, or None when it can."""
    lacking = []
    if root and os.geteuid() != 0:
        lacking.append("root")
    if fuse and not os.path.exists("/dev/fuse"):
        lacking.append("/dev/fuse")
    for tool in tools:
        if which(tool) is None:
            pkg = package(tool)
            lacking.append(f"{tool} (Debian package {pkg})" if pkg else tool)
    if lacking:
        return ("needs " + ", ".join(lacking) +
                " (make deps installs the tools)")
    return None


def require(*tools, **kw):
    """Skip the calling test (or fixture) unless it can run here."""
    import pytest
    reason = missing(*tools, **kw)
    if reason:
        pytest.skip(reason)
