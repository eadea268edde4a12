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
FAT12/16/32 grown here (fat.grow),     volume ID in the boot sector (and the
            up to its type's           FAT32 backup boot sector), written here
            cluster limit; shrunk
            here (fat.shrink): used
            clusters moved below
            the new end, within its
            type's cluster range
exFAT       not resized: the           ``tune.exfat -I``
            partition may grow, the
            filesystem keeps its size
swap        ``mkswap`` again, with     ``mkswap -U random``
            its label and UUID
==========  =========================  ====================================

Each filesystem's record (:mod:`diskimage.fs.registry`) says which of
these it has, and its own module runs the tools; the functions here ask the
record.  Everything else keeps its size inside a partition that may grow
(never shrink).  fatresize, libparted's FAT resizer, aborts on a partition
of a disk file or loop device; exfatprogs has no resizer.  Each function
takes a *path* naming just the filesystem: a temporary file, or a loop
device over the partition's bytes of the target (:func:`region`).
"""

import contextlib
import inspect

from ..errors import MissingToolError, ToolError
from ..host.loop import loop_device
from . import registry
from . import tooling
from .tooling import ResizeError

__all__ = ["ResizeError", "can_grow", "grow_floor_note", "can_shrink",
           "renews_ids", "min_size", "resize", "check", "new_identity",
           "region"]
MiB = 1 << 20


def _record(fs):
    """The record of the kind *fs* as the image names it (no alias)."""
    record = registry.lookup(fs)
    return record if record and fs in record.kinds else None


def can_grow(fs, size=None):
    """The filesystem of kind *fs* is grown (into a partition of *size*
    bytes, when given: not below the record's grow_floor)."""
    record = _record(fs)
    return bool(record and record.grow) and \
        (size is None or size >= record.grow_floor)


def grow_floor_note(fs, size):
    """Why the filesystem of kind *fs* keeps its size in a grown partition
    of *size* bytes, or None when it grows (or never does)."""
    record = _record(fs)
    if not (record and record.grow) or size >= record.grow_floor:
        return None
    return (f"filesystem keeps its size: {record.title} grows only into "
            f"{record.grow_floor // MiB} MiB or more "
            f"({record.grow_floor_why})")


def can_shrink(fs):
    record = _record(fs)
    return bool(record and record.shrink)


def title(fs):
    """How messages name the filesystem of kind *fs* ("XFS")."""
    record = _record(fs)
    return record.title if record else fs


def renews_ids(fs):
    """--new-ids gives a filesystem of kind *fs* a new identity."""
    record = _record(fs)
    return bool(record and record.new_ids)


def min_size(fs, used, size, block_size=None):
    """The smallest partition the filesystem can be shrunk into, judged
    from its used bytes before any byte is written (a margin above what the
    tools compute, so that the plan never promises what they refuse).
    A record's min_size that takes ``kind`` or ``block_size`` (FAT's: the
    fewest clusters of its type) is given them too."""
    if not can_shrink(fs) or used is None:
        return size
    record = _record(fs)
    if record.min_size:
        facts = {"kind": fs, "block_size": block_size}
        takes = inspect.signature(record.min_size).parameters
        return record.min_size(used, size, **{
            k: v for k, v in facts.items() if k in takes})
    margin = max(used // 10, 16 * MiB)
    return min(size, -(-(used + margin) // MiB) * MiB)


def resize(fs, path, size, what):
    """Make the filesystem at *path* *size* bytes long (grow or shrink).
    Returns its size after: *size*, or less for a FAT volume that reached
    its type's cluster limit."""
    record = _record(fs)
    change = record and (record.grow or record.shrink)
    if change and record.grow is not record.shrink and record.shrink and \
            size < tooling.device_size(path):
        change = record.shrink
    if not change:
        raise ResizeError(f"{what}: {fs} cannot be resized")
    return change(path, size, what)


def check(fs, path, what):
    """The filesystem's own checker, read-only; ResizeError when unclean."""
    what = f"{what}: check after restore"
    try:
        verdict = registry.fsck(fs, path)
    except MissingToolError as exc:     # exit 10, saying what needed it
        raise MissingToolError(exc.tool, exc.package, what) from None
    if verdict is not None and not verdict[0]:
        # the output ends with what the checker wrote to stderr last
        lines = verdict[1].splitlines()
        raise ResizeError(f"{what}: {_record(fs).check[0]} failed: "
                          f"{lines[-1] if lines else 'no output'}")


def new_identity(fs, path, what):
    """Give the filesystem at *path* a new UUID / serial / volume ID.
    Returns {"filesystem": (old, new)} as text, with the identities the
    record's new_ids says it renewed inside the volume ("LV root
    filesystem" of an LVM2 PV), or {} when *fs* has no such id here."""
    if not renews_ids(fs):
        return {}
    old = tooling.blkid(path, "UUID")
    inside = _record(fs).new_ids(path, what)
    return {"filesystem": (old, tooling.blkid(path, "UUID")),
            **(inside or {})}


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
