"""Read a disk's partition table into byte offsets: the partitions, and the
table areas a restore must lay down again.

:func:`read_table` decides between GPT, MBR and no table at all; the format
details live in :mod:`diskimage.tables.gpt` and :mod:`diskimage.tables.mbr`.  The rules:

* A protective (or hybrid) MBR, one with a 0xEE slot, means GPT: the primary
  copy is used when valid, else the backup with a warning; when neither is
  valid that is a TableError.
* A valid primary GPT with no 0x55AA MBR, or an MBR with no used slot, is
  read as GPT with a warning.  An MBR with real slots wins over a GPT header
  left behind (as Linux and libfdisk decide), with a warning.
* No 0x55AA signature, no used slot, or a FAT/exFAT/NTFS boot sector whose
  slots are garbage: kind "none", no partitions, no areas.
"""

from dataclasses import asdict, dataclass, field

from . import gpt, mbr
from ..errors import TableError
from ..fs import usedmap
from ..sizes import format_size

HEAD_LIMIT = 1 << 20        # head of a GPT without partitions: the first MiB
# What a capture refused for a table it cannot read says to do.
RAW_HINT = ("capture the whole disk with --raw: every byte is copied as it "
            "is, with a warning (not --partitions: which bytes each "
            "partition and the table's own sectors hold comes from the "
            "table read whole)")


@dataclass
class Partition:
    number: int             # MBR primaries 1-4, logicals 5+; GPT entry index + 1
    start: int              # byte offset on the disk
    size: int               # bytes
    type: str               # MBR "0x83"; GPT type GUID, lowercase
    name: str = ""          # GPT partition name
    uuid: str = ""          # GPT unique partition GUID, lowercase
    bootable: bool = False  # MBR active flag
    attrs: int = 0          # GPT attribute bits

    def to_dict(self):
        return asdict(self)

    @property
    def end(self):
        return self.start + self.size


@dataclass
class TableArea:
    kind: str               # "head", "ebr" or "gpt-backup"
    start: int
    size: int

    def to_dict(self):
        return asdict(self)

    @property
    def end(self):
        return self.start + self.size


@dataclass
class PartitionTable:
    kind: str               # "gpt", "mbr" or "none"
    sector_size: int
    disk_size: int
    disk_id: str            # GPT disk GUID, MBR "0x1234abcd", or ""
    partitions: list = field(default_factory=list)   # sorted by start
    areas: list = field(default_factory=list)        # sorted by start
    warnings: list = field(default_factory=list)
    #: partition number -> those of `warnings` that are about it alone (so
    #: a capture of other partitions leaves them out); not recorded
    about: dict = field(default_factory=dict)
    #: EBRs whose sector lies inside a partition (a record reaching over
    #: it): (EBR byte offset, that partition's number, the number of the
    #: logical the EBR describes or None); capture copies each sector
    #: with that partition; not recorded
    inner_ebrs: list = field(default_factory=list)
    #: MBR extended partitions: [{"number": slot, "logicals": [5, ...]}]
    extended: list = field(default_factory=list)

    def to_dict(self):
        fields = asdict(self)
        del fields["about"], fields["inner_ebrs"]
        if not fields["extended"]:
            del fields["extended"]
        return fields

    def warnings_for(self, numbers):
        """`warnings` less those about partitions not in `numbers` (None:
        every partition)."""
        if numbers is None:
            return list(self.warnings)
        drop = {id(w) for n, said in self.about.items()
                if n not in numbers for w in said}
        return [w for w in self.warnings if id(w) not in drop]


def read_table(read, disk_size, sector_size=512, truncated=False,
               sector_size_from=""):
    """Parse the partition table of a disk of *disk_size* bytes.

    *read(offset, length)* returns bytes, possibly short at the disk end.
    Raises :class:`~diskimage.errors.TableError` for a table that cannot be
    used; never prints.  With *truncated* (capture), a table whose
    partitions run past the disk end (a disk file cut short) is read: each
    such partition is cut at the disk end, or left out when it starts
    there, with a warning that says how much is missing.

    A GPT found with another sector size than *sector_size* is warned
    about when *sector_size_from* says where that size came from (the
    user's option, the device); None means it was a guess (a disk file
    says nothing of its sectors), so the GPT's own is no disagreement.
    """
    if sector_size < 512 or sector_size & (sector_size - 1):
        raise ValueError(f"sector size {sector_size} is not a power of two >= 512")
    boot = mbr.read_boot_record(read, disk_size)
    records = boot[1] if boot else []
    protective = mbr.is_protective(records)
    found, reasons = gpt.read_gpt(read, disk_size, sector_size, truncated)
    warnings = []
    gpt_warnings = []   # only when the GPT is the table read
    if found is not None and found.sector_size != sector_size and \
            sector_size_from is not None:
        said = f" of {sector_size_from}" if sector_size_from else ""
        gpt_warnings.append(f"GPT found with {found.sector_size}-byte "
                            f"sectors, not the {sector_size}{said}")

    if protective:
        if found is None:
            why = "; ".join(reasons) or "no EFI PART header at LBA 1 or at the disk's last LBA"
            raise TableError(f"the MBR at LBA 0 is protective (type 0xEE) "
                             f"but no GPT copy is valid: {why}")
        return _from_gpt(found, disk_size, warnings + gpt_warnings)

    from_primary = found is not None and found.header.my_lba == gpt.PRIMARY_LBA
    if found is not None and not from_primary:
        warnings.append("a backup GPT is ignored: no protective MBR and no "
                        "primary GPT header")
    if any(mbr.is_used(r) for r in records):
        table, notes = mbr.read_mbr(read, boot, disk_size, sector_size,
                                    truncated)
        warnings += notes
        if table is not None:
            if from_primary:
                warnings.append("a valid GPT header at LBA 1 is ignored: the MBR "
                                "is not protective (no 0xEE slot)")
            return _from_mbr(table, disk_size, sector_size, warnings)
    if from_primary:
        warnings.append("GPT without a protective MBR at LBA 0")
        return _from_gpt(found, disk_size, warnings + gpt_warnings)
    warnings += [f"ignored: {reason}" for reason in reasons]
    return PartitionTable("none", sector_size, disk_size, "", [], [], warnings)


def _from_gpt(found, disk_size, warnings):
    ss = found.sector_size
    warnings = warnings + found.warnings
    parts = [gpt_partition(e, ss) for e in found.entries]
    areas = []
    if found.backup_area:
        first, end = found.backup_area
        areas.append(TableArea("gpt-backup", first * ss, (end - first) * ss))
    if parts:
        head_end = min(p.start for p in parts)
    else:
        array_end = found.primary_array[1] * ss
        head_end = max(array_end, min(found.header.first_usable_lba * ss, HEAD_LIMIT))
    head_end = min([head_end] + [a.start for a in areas])
    areas.insert(0, TableArea("head", 0, head_end))
    return _finish("gpt", ss, disk_size, found.disk_guid, parts, areas, warnings)


def gpt_partition(entry, sector_size):
    return Partition(
        number=entry.number,
        start=entry.start_lba * sector_size,
        size=(entry.end_lba - entry.start_lba + 1) * sector_size,   # inclusive end
        type=entry.type_guid,
        name=entry.name,
        uuid=entry.unique_guid,
        attrs=entry.attributes)


def _from_mbr(table, disk_size, ss, warnings):
    warnings = warnings + table.warnings
    parts = [Partition(number=e.number, start=e.start_lba * ss, size=e.size_lba * ss,
                       type=f"0x{e.os_type:02x}", bootable=e.bootable)
             for e in table.entries]
    areas = [TableArea("ebr", first * ss, (end - first) * ss) for first, end in table.ebrs]
    head_end = min([p.start for p in parts] + [a.start for a in areas])
    areas.insert(0, TableArea("head", 0, head_end))
    disk_id = f"0x{table.disk_signature:08x}"
    found = _finish("mbr", ss, disk_size, disk_id, parts, areas, warnings)
    found.extended = [{"number": slot, "logicals": logicals}
                      for slot, logicals in table.extended]
    return found


def extended_said(table, number):
    """"partition 3 is the extended partition (...)" when *number* is an
    extended partition of *table* (an image's table metadata), else ""."""
    for ext in table.get("extended", []):
        if ext["number"] == number:
            inside = ", ".join(str(n) for n in ext["logicals"])
            return (f"partition {number} is the extended partition (a "
                    f"container of logical partitions {inside})"
                    if inside else f"partition {number} is an empty "
                    f"extended partition (a container of no logicals)")
    return ""


def _finish(kind, ss, disk_size, disk_id, parts, areas, warnings):
    """Sort, warn about overlapping partitions, and cut the areas so that no
    area overlaps a partition (a partition's bytes are captured with it)."""
    about = {}
    parts = _clip(parts, disk_size, warnings, about)
    parts.sort(key=lambda p: (p.start, p.number))
    for a, b in zip(parts, parts[1:]):
        if b.start < a.end:
            warnings.append(f"partitions {a.number} and {b.number} overlap")
    cut, inner = [], []
    for area in sorted(areas, key=lambda a: a.start):
        pieces = _subtract(area, parts)
        holder = next((p for p in parts if p.start <= area.start < p.end),
                      None)
        if area.kind == "ebr" and holder is not None:
            logical = next((p.number for p in parts if p.start == area.end
                            and p.number >= mbr.FIRST_LOGICAL), None)
            inner.append((area.start, holder.number, logical))
            warnings.append(
                f"the EBR at byte offset {area.start} lies inside partition "
                f"{holder.number} (its record reaches over it): its sector "
                f"is copied with partition {holder.number}, so the image "
                f"restores onto this layout only (a restore that moves or "
                f"resizes the logical partitions is refused)")
        elif area.size and pieces != [area]:
            warnings.append(f"{area.kind} area at byte offset {area.start} "
                            f"overlaps a partition; cut to fit")
        cut += pieces
    return PartitionTable(kind, ss, disk_size, disk_id, parts, cut, warnings,
                          about, inner)


def held_sectors(table, number, start, runs):
    """*runs* (offsets from *start*, partition *number*'s used runs) with
    the sector of each EBR inside that partition added, so the image holds
    it (:func:`_finish` says which)."""
    held = [(ebr - start, table.sector_size)
            for ebr, holder, _ in table.inner_ebrs if holder == number]
    if runs is None or not held:
        return runs
    return usedmap.LazyRuns(lambda: usedmap.merged(iter(runs), held))


def _clip(parts, disk_size, warnings, about):
    """*parts* cut at the disk end (only a truncated read lets one pass
    it), each cut said in *warnings* and, by partition, in *about*."""
    kept = []
    for p in parts:
        if p.end > disk_size:
            missing = p.end - max(p.start, disk_size)
            if p.start >= disk_size:
                said = (f"partition {p.number} (bytes {p.start} to {p.end}) "
                        f"starts past the end of the disk "
                        f"({format_size(disk_size)}): all of it is missing; "
                        f"not captured")
                warnings.append(said)
                about.setdefault(p.number, []).append(said)
                continue
            said = (f"partition {p.number} runs past the end of the disk: "
                    f"{format_size(missing)} of its {format_size(p.size)} "
                    f"are missing (the disk looks truncated); copying the "
                    f"{format_size(disk_size - p.start)} that exist")
            warnings.append(said)
            about.setdefault(p.number, []).append(said)
            p.size = disk_size - p.start
        kept.append(p)
    return kept


def _subtract(area, parts):
    """*area* minus the byte ranges of *parts*, as a list of areas."""
    pieces = [(area.start, area.end)]
    for p in parts:
        pieces = [piece for start, end in pieces
                  for piece in ((start, min(end, p.start)), (max(start, p.end), end))
                  if piece[0] < piece[1]]
    return [TableArea(area.kind, start, end - start) for start, end in pieces]
