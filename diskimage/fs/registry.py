"""The one list of filesystems the toolkit knows, and the questions asked of
it: which filesystem a volume holds (by its own superblock, not by a
partition type), its used-block map, its label and UUID, its checker.

Each entry of :data:`MODULES` names a module that declares ``FILESYSTEM``
(or ``FILESYSTEMS``), a :class:`~diskimage.fs.record.Filesystem`; detection
asks them all, and a volume more than one of them claims is named by none
(docs/filesystems/detection.md).  Adding a filesystem is
one new module and one entry here, plus the Debian package of each new tool
in diskimage.host.tools.PACKAGES (docs/filesystems.md, "Adding a
filesystem").  Resizing and new identities are asked through
:mod:`diskimage.fs.resize`.
"""

import functools
import importlib
import struct

from ..host.loop import loop_device
from ..host.tools import run
from .record import Filesystem

#: The filesystems, in the order messages list them in.  Detection asks
#: every record; a volume two of them claim is named by none (detect).
#: Relative names (".ext") are in this package.
MODULES = (".ext", ".foreign", ".fat", ".exfat", ".ntfs", ".swap", ".lvm",
           ".xfs", ".btrfs")
#: A volume this small or smaller is nothing (as libblkid sees it).
TINY = 1024
#: What detection reads in one go: up to btrfs's magic at 64 KiB + 64.
HEAD = 0x10040 + 8


@functools.lru_cache(maxsize=None)
def _records(modules):
    found = []
    for name in modules:
        module = importlib.import_module(name, __package__)
        single = getattr(module, "FILESYSTEM", None)
        found.extend([single] if single else module.FILESYSTEMS)
    for record in found:
        if not isinstance(record, Filesystem):
            raise TypeError(f"{record!r} is not a Filesystem record")
        if record.edit and not record.check:    # an edit is checked after
            raise TypeError(f"{record.kinds}: a filesystem imgx edits needs "
                            f"a checker (check=...)")
    return tuple(found)


def filesystems():
    """Every record, in detection order."""
    return _records(tuple(MODULES))


@functools.lru_cache(maxsize=None)
def _index(records):
    names = {}
    for record in records:
        for name in record.kinds + record.aliases:
            names.setdefault(name.lower(), record)
    return names


def lookup(kind):
    """The record covering `kind` (a kind or an alias, any case), or None."""
    if not kind:
        return None
    return _index(filesystems()).get(kind.lower())


def kinds(where=lambda record: True):
    """The kinds of the records `where(record)` accepts, in registry order."""
    return [k for r in filesystems() if where(r) for k in r.kinds]


def titles(where):
    """How messages list the filesystems `where(record)` accepts:
    "ext2/3/4, FAT12/16/32, exFAT and NTFS"."""
    names = [r.title for r in filesystems() if where(r)]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 \
        else "".join(names)


def _volume(read, start, size, pad=False):
    def volume_read(offset, length):
        length = max(0, min(length, size - offset))
        if not length:
            return b""
        data = read(start + offset, length)
        return data.ljust(length, b"\0") if pad else data
    return volume_read


def signatures(read, start, size):
    """Every kind whose detect() claims [start, start+size) of a disk read
    by read(offset, length), in registry order.  None of 1 KiB or less
    (libblkid probes no such volume)."""
    if size <= TINY:
        return []
    volume_read = _volume(read, start, size)
    head = volume_read(0, HEAD)

    def head_read(offset, length):
        if offset + length <= len(head):
            return head[offset:offset + length]
        return volume_read(offset, length)

    found = []
    for record in filesystems():
        if record.detect is not None:
            kind = record.detect(head_read)
            if kind and kind not in found:
                found.append(kind)
    return found


def detect(read, start, size):
    """The kind of the filesystem at [start, start+size) of a disk read by
    read(offset, length) ("ext4", "fat32", "ntfs", "swap", "xfs" ... as
    `blkid -p` names them), or None when nothing is recognised, or when
    more than one kind claims it (`blkid -p`'s "ambivalent result": a
    volume two filesystems claim is copied whole, never mapped)."""
    found = signatures(read, start, size)
    return found[0] if len(found) == 1 else None


def identity(read, start, size, kind):
    """(label, uuid) of a `kind` volume with no used-block map, read from
    its own header as `blkid -p` reads them, or None when not known."""
    record = lookup(kind)
    if record is None or record.identity is None:
        return None
    try:
        return record.identity(_volume(read, start, size, pad=True))
    except struct.error:
        return None


def why_whole(read, start, size, kind):
    """Why a `kind` volume with no used-block map is copied whole, as
    capture records it ("encrypted (LUKS2)", "no used-block map for
    xfs")."""
    record = lookup(kind)
    if record is not None and record.whole is not None:
        return record.whole(_volume(read, start, size))
    return f"no used-block map for {kind}"


def used_map(read, start, size, kind):
    """The UsedMap of the `kind` filesystem at [start, start+size) of a disk
    read by read(offset, length), or None when there is no reader for it.
    Raises MapError when the filesystem's maps cannot be trusted."""
    record = lookup(kind)
    if record is None or record.open_map is None:
        return None
    return record.open_map(_volume(read, start, size), size)


def fsck(kind, path):
    """The filesystem's own checker, read-only, on *path* (a device or file
    holding the filesystem alone): (clean, output), or None when `kind` has
    no checker.  A checker that is not installed raises MissingToolError
    (exit 10, naming its package)."""
    record = lookup(kind)
    if record is None or not record.check:
        return None
    done = run([*record.check, path], check=False)
    output = (done.stdout + done.stderr).strip()
    return bool(record.verdict(done.returncode, output)), output


def fsck_region(disk, start, size, kind):
    """:func:`fsck` on bytes [start, start+size) of the disk (or disk file)
    *disk*, through a read-only loop device."""
    record = lookup(kind)
    if record is None or not record.check:
        return None
    with loop_device(disk, start, size) as dev:
        return fsck(kind, dev)
