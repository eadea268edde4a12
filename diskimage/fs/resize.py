"""Growing, shrinking and re-identifying filesystems with the field's tools.

Restore moves partitions and changes their sizes itself; what is inside them
is changed by the tools that know the filesystem best:

==========  =========================  ====================================
filesystem  grow / shrink              new identity (``--new-ids``)
==========  =========================  ====================================
ext2/3/4    ``resize2fs`` (after       ``tune2fs -U random``
            ``e2fsck -fy``)
NTFS        ``ntfsresize``             ``ntfslabel --new-serial`` (its
                                       dirty mark, which ntfsresize sets,
                                       cleared for it and set again)
FAT12/16/32 grown here               volume ID in the boot sector (and the
            (:mod:`fatgrow`), up to    FAT32 backup boot sector), written here
            its type's cluster limit;
            not shrunk
exFAT       not resized: the           ``tune.exfat -I``
            partition may grow, the
            filesystem keeps its size
swap        ``mkswap`` again, with     ``mkswap -U random``
            its label and UUID
==========  =========================  ====================================

Everything else keeps its size inside a partition that may grow (never
shrink).  fatresize, libparted's FAT resizer, aborts on a partition of a
disk file or loop device; exfatprogs has no resizer.  Each
function takes a *path* naming just the filesystem: a temporary file, or a
loop device over the partition's bytes of the target (:func:`region`).
"""

import contextlib
import os
import secrets

from .fat import grow as fatgrow
from .ntfs import used as ntfs
from ..errors import DiskImageError, MissingToolError, ToolError
from ..host import tools
from ..host.loop import loop_device
from .usedmap import MapError

MiB = 1 << 20
_EXT = ("ext2", "ext3", "ext4")
_FAT = ("fat12", "fat16", "fat32")
SHRINKABLE = set(_EXT) | {"ntfs", "swap"}
GROWABLE = SHRINKABLE | set(_FAT)
NEW_IDS = set(_EXT) | {"ntfs", "fat12", "fat16", "fat32", "exfat", "swap"}


class ResizeError(DiskImageError):
    """A filesystem tool refused or failed (restore reports it as
    TargetChangedError: the tools run after the first write)."""


def can_grow(fs):
    return fs in GROWABLE


def can_shrink(fs):
    return fs in SHRINKABLE


def min_size(fs, used, size):
    """The smallest partition the filesystem can be shrunk into, judged
    from its used bytes before any byte is written (a margin above what the
    tools compute, so that the plan never promises what they refuse)."""
    if not can_shrink(fs) or used is None:
        return size
    if fs == "swap":
        return min(size, MiB)
    margin = max(used // 10, 16 * MiB)
    return min(size, -(-(used + margin) // MiB) * MiB)


def _run(args, what, input_text=None):
    done = tools.run(args, input=input_text, check=False, what=what)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        detail = lines[-1] if lines else f"exit {done.returncode}"
        raise ResizeError(f"{what}: {args[0]} failed: {detail}")
    return done.stdout


def resize(fs, path, size, what):
    """Make the filesystem at *path* *size* bytes long (grow or shrink).
    Returns its size after: *size*, or less for a FAT volume that reached
    its type's cluster limit."""
    if fs in _FAT:
        try:
            return fatgrow.grow(path, size)
        except MapError as exc:
            raise ResizeError(f"{what}: cannot grow: {exc}") from None
    if fs in _EXT:
        _e2fsck(path, what)
        _run(["resize2fs", "-f", path, f"{size // 1024}K"], what)
    elif fs == "ntfs":
        _run(["ntfsresize", "--force", "--force", "--no-progress-bar",
              "--size", str(size), path], what, input_text="y\n")
    elif fs == "swap":
        _mkswap(path, size, what)
    else:
        raise ResizeError(f"{what}: {fs} cannot be resized")
    return size


def _e2fsck(path, what):
    """e2fsck -fy: exit 1 means errors were fixed, which resize2fs needs."""
    done = tools.run(["e2fsck", "-fy", path], check=False, what=what)
    if done.returncode not in (0, 1):
        raise ResizeError(f"{what}: e2fsck found errors it could not fix "
                          f"(exit {done.returncode})")


CHECKERS = {"ext2": ["e2fsck", "-fn"], "ext3": ["e2fsck", "-fn"],
            "ext4": ["e2fsck", "-fn"], "ntfs": ["ntfsfix", "-n"],
            "fat12": ["fsck.fat", "-n"], "fat16": ["fsck.fat", "-n"],
            "fat32": ["fsck.fat", "-n"], "exfat": ["fsck.exfat", "-n"]}


def check(fs, path, what):
    """The filesystem's own checker, read-only; ResizeError when unclean."""
    args = CHECKERS.get(fs)
    if args:
        _run(args + [path], f"{what}: check after restore")


def _blkid(path, tag):
    try:
        done = tools.run(["blkid", "-p", "-o", "value", "-s", tag, path],
                         check=False)
    except MissingToolError:
        return ""
    return done.stdout.strip()


def _mkswap(path, size, what, new_uuid=False):
    label = _blkid(path, "LABEL")
    args = ["mkswap", "-U", "random" if new_uuid else
            (_blkid(path, "UUID") or "random")]
    if label:
        args += ["-L", label]
    _run(args + [path, str(size // 1024)], what)


def new_identity(fs, path, what):
    """Give the filesystem at *path* a new UUID / serial / volume ID.
    Returns (old, new) as text, or None when *fs* has no such id here."""
    if fs not in NEW_IDS:
        return None
    old = _blkid(path, "UUID")
    if fs in _EXT:
        _e2fsck(path, what)
        _run(["tune2fs", "-U", "random", path], what, input_text="y\n")
    elif fs == "ntfs":
        _ntfs_new_serial(path, what)
    elif fs == "exfat":
        _run(["tune.exfat", "-I", f"0x{secrets.randbits(32):08x}", path],
             what)
    elif fs == "swap":
        _mkswap(path, os.path.getsize(path) if os.path.isfile(path)
                else _device_size(path), what, new_uuid=True)
    else:
        _fat_volume_id(path, fs)
    return old, _blkid(path, "UUID")


def _ntfs_new_serial(path, what):
    """ntfslabel --new-serial, which refuses a volume marked dirty (as
    ntfsresize leaves it): the mark is cleared for it (ntfsfix -d) and set
    again after (ntfsfix), so that Windows still checks a resized volume."""
    with open(path, "rb") as dev:
        size = dev.seek(0, os.SEEK_END)
        try:
            dirty = ntfs.volume_dirty(
                lambda offset, length: os.pread(dev.fileno(), length, offset),
                size)
        except MapError as exc:
            raise ResizeError(f"{what}: {exc}") from None
    if dirty:
        _run(["ntfsfix", "-d", path], what)
    _run(["ntfslabel", "--new-serial", path], what)
    if dirty:
        _run(["ntfsfix", path], what)


def _device_size(path):
    with open(path, "rb") as dev:
        return dev.seek(0, os.SEEK_END)


# FAT volume ID: offset 0x27 in a FAT12/16 boot sector, 0x43 in FAT32, where
# the FAT32 backup boot sector (its sector number at 0x32) holds it again.
def _fat_volume_id(path, fs):
    new = secrets.token_bytes(4)
    with open(path, "r+b") as dev:
        boot = dev.read(512)
        sector_size = int.from_bytes(boot[11:13], "little")
        if fs != "fat32":
            dev.seek(0x27)
            dev.write(new)
            return
        dev.seek(0x43)
        dev.write(new)
        backup = int.from_bytes(boot[0x32:0x34], "little")
        if backup not in (0, 0xFFFF):
            dev.seek(backup * sector_size + 0x43)
            dev.write(new)


@contextlib.contextmanager
def region(path, start, size):
    """A writable loop device over bytes [start, start+size) of the disk or
    disk file *path*, for the tools above; detached on exit."""
    try:
        with loop_device(path, start, size, read_only=False) as dev:
            yield dev
    except MissingToolError:        # its own code: 10, naming the package
        raise
    except ToolError as exc:        # losetup failed to attach or detach
        raise ResizeError(f"{path}: a loop device over bytes {start}-"
                          f"{start + size}: {exc}") from None
