"""Where a service partition can go on a disk, decided before any write.

Two ways (:func:`find_room`):

* the free space at the end: after the last partition (and, on MBR, after
  the extended container), before the backup GPT a new table puts at the
  disk's end; the partition starts at the first 1 MiB boundary there;
* ``shrink=N``: partition N, the last one on the disk, is shrunk first
  (its filesystem by :mod:`diskimage.fs.resize`, the restore planner's
  code, to no less than :func:`~diskimage.fs.resize.min_size` of its used
  bytes), and the service partition goes right after its new end.

Refused with TargetError: a disk without a table, one that already holds a
service partition ("use bwpart update"), no room and nothing that shrinks
enough, a partition to shrink that is mounted (the mount point named),
encrypted (BitLocker, LUKS), of a kind that does not shrink, or not the
last; on MBR no free primary slot, or room only past the 2 TiB that
32-bit sector numbers reach.
"""

from dataclasses import dataclass, field

from ..errors import InputError, TargetError
from ..fs import registry, resize
from ..fs.usedmap import MapError
from ..host import sysfs
from ..host.device import open_source
from ..host.identity import extent
from ..host.inuse import mount_extent
from ..sizes import format_size
from ..tables import mbr
from . import layout, partition

ENCRYPTED = {"crypto_LUKS": "LUKS", "BitLocker": "BitLocker"}


@dataclass
class Room:
    disk: str
    start: int
    size: int
    number: int                 # the new partition's number
    table_kind: str
    shrink: tuple = None        # (number, fs kind, old size, new size)
    notes: list = field(default_factory=list)
    table: object = None        # the PartitionTable read (not in to_dict)
    sector0: bytes = b""

    @property
    def end(self):
        return self.start + self.size

    def to_dict(self):
        shrink = None
        if self.shrink:
            number, fs, old, new = self.shrink
            shrink = dict(number=number, fs=fs, old_size=old, new_size=new)
        return dict(disk=self.disk, start=self.start, size=self.size,
                    number=self.number, table=self.table_kind,
                    shrink=shrink, notes=list(self.notes))


def _up(n):
    return -(-n // layout.ALIGN) * layout.ALIGN


def _down(n):
    return n // layout.ALIGN * layout.ALIGN


def check_size(size):
    """*size* (None: the default) as a valid service partition size."""
    if size is None:
        return layout.DEFAULT_SIZE
    if size % layout.ALIGN or size < layout.MIN_SIZE:
        raise InputError(f"service partition size {format_size(size)}: it "
                         f"must be a whole number of MiB and at least "
                         f"{format_size(layout.MIN_SIZE)}")
    return size


def find_room(disk, size=None, shrink=None):
    """The Room for a service partition of *size* bytes on *disk*
    (partition *shrink* shrunk first when given).  Reads only."""
    size = check_size(size)
    table, sector0 = partition.read_disk(disk)
    if table.kind == "none":
        raise TargetError(f"{disk}: has no partition table (MBR or GPT): "
                          f"a service partition is added to one")
    try:
        service = partition.find_service(disk)
    except partition.DamagedService as err:
        raise TargetError(f"{disk}: a service partition is already here "
                          f"(damaged, partition {err.service.number}): "
                          f"bwpart status") from None
    if service is not None:
        raise TargetError(f"{disk}: already has a service partition "
                          f"(partition {service.number}): use bwpart update")
    number = _free_number(disk, table)
    used_end = max([p.end for p in table.partitions] +
                   [end for _, end in partition.extended_spans(table, sector0)] +
                   [a.end for a in table.areas if a.kind == "head"])
    free_start = _up(used_end)
    free_end = _down(partition.usable_end(table))
    if table.kind == "mbr":
        free_end = min(free_end, _down(mbr.MAX_LBAS * table.sector_size))
    room = Room(disk, free_start, size, number, table.kind, table=table,
                sector0=sector0)
    if shrink is None:
        if free_end - free_start < size:
            raise TargetError(_no_room(disk, table, free_start, free_end,
                                       size))
        return room
    part = _shrinkable(disk, table, shrink)
    new_end = _down(free_end - size)
    new_size = new_end - part.start
    if new_size >= part.size:
        room.start = _up(part.end)
        room.notes.append(f"partition {shrink} need not shrink: "
                          f"{format_size(free_end - room.start)} are free "
                          f"after it")
        return room
    kind, used, least = _fs_facts(disk, part)
    if new_size < least:
        raise TargetError(
            f"{disk}: partition {shrink} ({resize.title(kind)}, "
            f"{format_size(used)} used) can shrink to "
            f"{format_size(least)} at the least, but would have to be "
            f"{format_size(max(new_size, 0))} to make room for "
            f"{format_size(size)}")
    room.start = new_end
    room.shrink = (shrink, kind, part.size, new_size)
    room.notes.append(f"partition {shrink} ({resize.title(kind)}) shrinks "
                      f"from {format_size(part.size)} to "
                      f"{format_size(new_size)} ({format_size(used)} used)")
    return room


def _free_number(disk, table):
    taken = {p.number for p in table.partitions}
    if table.kind == "gpt":
        free = [n for n in range(1, 129) if n not in taken]
        if not free:
            raise TargetError(f"{disk}: all 128 GPT entries are in use")
        return free[0]
    taken |= {e["number"] for e in table.extended}
    free = [n for n in range(1, mbr.FIRST_LOGICAL) if n not in taken]
    if not free:
        raise TargetError(f"{disk}: no free primary slot in the MBR (all "
                          f"four are in use; logical partitions are never "
                          f"used for the service partition)")
    return free[0]


def _no_room(disk, table, start, end, size):
    free = max(0, end - start)
    where = "at the end of the disk"
    if table.kind == "mbr" and \
            table.disk_size > mbr.MAX_LBAS * table.sector_size:
        where = (f"below {format_size(mbr.MAX_LBAS * table.sector_size)} "
                 f"(what an MBR's 32-bit sector numbers reach)")
    last = max(table.partitions, key=lambda p: p.end, default=None)
    hint = f"; --shrink={last.number} makes room from the last partition" \
        if last is not None and _can_give(disk, table, last, end, size) \
        else ""
    return (f"{disk}: no room for a {format_size(size)} service partition: "
            f"{format_size(free)} free {where}{hint}")


def _can_give(disk, table, last, end, size):
    """True when shrinking *last* to its filesystem's least size would
    leave *size* bytes before *end* (the hint is given only then)."""
    try:
        part = _shrinkable(disk, table, last.number)
        least = _fs_facts(disk, part)[2]
    except (InputError, TargetError):
        return False
    return _down(end - size) - part.start >= least


def _shrinkable(disk, table, number):
    part = next((p for p in table.partitions if p.number == number), None)
    if part is None:
        have = ", ".join(str(p.number) for p in table.partitions) or "none"
        raise InputError(f"{disk}: has no partition {number} (partitions: "
                         f"{have})")
    if table.kind == "mbr" and number >= mbr.FIRST_LOGICAL:
        raise TargetError(f"{disk}: partition {number} is a logical "
                          f"partition: the space it gives would lie inside "
                          f"the extended partition, where no primary can go")
    after = [p.number for p in table.partitions if p.start >= part.end]
    if after:
        raise TargetError(f"{disk}: partition {number} is not the last on "
                          f"the disk (partition {after[0]} follows it): only "
                          f"the last partition shrinks to make room")
    point = _mounted_at(disk, part)
    kind = _detect(disk, part)
    if point:
        raise TargetError(f"{disk}: partition {number} ({resize.title(kind)}"
                          f") is mounted at {point}: it would have to shrink")
    return part


def _detect(disk, part):
    with open_source(disk) as opened:
        return registry.detect(opened.read, part.start, part.size) or \
            "unknown"


def _fs_facts(disk, part):
    """(kind, used bytes, least size) of *part*'s filesystem, or
    TargetError saying why it cannot shrink."""
    with open_source(disk) as opened:
        kind = registry.detect(opened.read, part.start, part.size)
        where = f"{disk}: partition {part.number}"
        if kind in ENCRYPTED:
            raise TargetError(f"{where} is encrypted ({ENCRYPTED[kind]}): "
                              f"it cannot be resized")
        if kind is None:
            raise TargetError(f"{where} holds no filesystem known here: it "
                              f"cannot shrink")
        if not resize.can_shrink(kind):
            can = registry.titles(lambda r: r.shrink)
            raise TargetError(f"{where} ({resize.title(kind)}) cannot "
                              f"shrink (only {can} do)")
        try:
            found = registry.used_map(opened.read, part.start, part.size,
                                      kind)
        except MapError as exc:
            raise TargetError(f"{where} ({resize.title(kind)}): its "
                              f"allocation map cannot be read, so how much "
                              f"it may shrink is not known: {exc}") from None
    if found is None:
        raise TargetError(f"{where} ({resize.title(kind)}): no used-block "
                          f"map, so how much it may shrink is not known")
    least = resize.min_size(kind, found.used_bytes, part.size,
                            found.block_size)
    return kind, found.used_bytes, least


def _mounted_at(disk, part):
    """The mount point of a mount (read-only too) whose device lies on
    *part*'s bytes of *disk*, or None."""
    mine = extent(disk)
    if mine is None:
        return None
    storage, base, _ = mine
    lo, hi = base + part.start, base + part.end
    for majmin, point, source, _ in sysfs.mountinfo():
        theirs = mount_extent(majmin, source)
        if theirs is not None and theirs[0] == storage and \
                theirs[1] < hi and lo < theirs[2]:
            return point
    return None
