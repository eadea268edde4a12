"""The DOS (MBR) partition table: the boot record at LBA 0 and the chain of
extended boot records (EBRs) inside an extended partition.

Field names follow the UEFI specification's "Legacy MBR" tables.  Everything
here counts in sectors (LBAs); :mod:`diskimage.tables.partitions` turns the result
into byte offsets.  Partitions are numbered as Linux numbers them: primaries
1-4 by slot, logicals from 5 in chain order.
"""

from dataclasses import dataclass, field

from ..errors import TableError
from ..structs import Struct

MBR_FIELDS = [
    ("440s", "boot_code"),
    ("I", "unique_mbr_disk_signature"),
    ("H", "unknown"),
    ("64s", "partition_record"),     # four PARTITION_RECORDs
    ("H", "signature"),              # 0xAA55, the bytes 55 AA
]
MBR = Struct("MBR", MBR_FIELDS, size=512)
EBR = Struct("EBR", MBR_FIELDS, size=512)   # same layout, first two records used
PARTITION_RECORD_OFFSET = 446

PARTITION_RECORD = Struct("MBR partition record", [
    ("B", "boot_indicator"),         # 0x80 active, 0x00 not
    ("3s", "starting_chs"),
    ("B", "os_type"),
    ("3s", "ending_chs"),
    ("I", "starting_lba"),
    ("I", "size_in_lba"),
], size=16)

MBR_SIGNATURE = 0xAA55
PROTECTIVE_TYPE = 0xEE
EXTENDED_TYPES = {0x05, 0x0F, 0x85}
FIRST_LOGICAL = 5
MAX_LBAS = 1 << 32           # an MBR's 32-bit LBAs: nothing ends past this
MAX_EBRS = 256               # a chain longer than this is taken for a loop

# Where a FAT, exFAT or NTFS boot sector keeps its names: the OEM name after
# the jump instruction, and the file system type of a FAT12/16 or FAT32 BPB.
BOOT_JUMPS = {0xEB, 0xE9}
OEM_NAME = slice(3, 11)
FAT16_FS_TYPE = slice(54, 62)
FAT32_FS_TYPE = slice(82, 90)


@dataclass
class MbrEntry:
    """One data partition, in sectors."""
    number: int
    start_lba: int
    size_lba: int
    os_type: int
    bootable: bool


@dataclass
class MbrTable:
    disk_signature: int
    entries: list                      # MbrEntry, data partitions only
    ebrs: list                         # (EBR LBA, end LBA exclusive) per EBR
    warnings: list = field(default_factory=list)
    extended: list = field(default_factory=list)  # (slot, [its logicals])


def read_boot_record(read, disk_size):
    """The MBR at LBA 0 and its four partition records, or ``None`` when the
    disk is shorter than a sector or has no 0x55AA signature there."""
    if disk_size < MBR.size:
        return None
    mbr = MBR.read(read, 0)
    if mbr.signature != MBR_SIGNATURE:
        return None
    return mbr, _records(mbr, 0)


def _records(record, offset):
    return [PARTITION_RECORD.unpack(
                record.partition_record, 16 * i,
                at=offset + PARTITION_RECORD_OFFSET + 16 * i)
            for i in range(4)]


def is_used(record):
    """A slot is in use when it has a size (as libfdisk and Linux see it)."""
    return record.size_in_lba != 0


def is_protective(records):
    """True when a used slot has type 0xEE: a protective or hybrid MBR."""
    return any(is_used(r) and r.os_type == PROTECTIVE_TYPE for r in records)


def filesystem_boot_sector(boot_code):
    """The file system named by a FAT/exFAT/NTFS boot sector at LBA 0
    ("FAT32", "NTFS", ...), or "" when the sector does not look like one."""
    if boot_code[0] not in BOOT_JUMPS:
        return ""
    oem = boot_code[OEM_NAME]
    if oem in (b"NTFS    ", b"EXFAT   "):
        return oem.decode().strip()
    for where in (FAT32_FS_TYPE, FAT16_FS_TYPE):
        name = boot_code[where]
        if name.startswith(b"FAT"):
            return name.decode("ascii", "replace").strip()
    return ""


def _problem(record, disk_sectors, truncated=False):
    """Why a used slot cannot be a real partition record, or ""."""
    if record.boot_indicator not in (0x00, 0x80):
        return f"boot indicator 0x{record.boot_indicator:02x}"
    if record.starting_lba == 0:
        return "starts at LBA 0"
    if record.starting_lba + record.size_in_lba > disk_sectors and \
            not truncated:
        return "ends past the disk end"
    return ""


def read_mbr(read, boot, disk_size, sector_size, truncated=False):
    """Parse a (non-protective) MBR read by :func:`read_boot_record`.

    Returns ``(MbrTable, [])``, or ``(None, warnings)`` when LBA 0 holds no
    partition table after all: no used slot, or a file system boot sector
    whose slots are garbage.  A partition past the disk end, an EBR link out
    of its extended partition or a loop raises TableError; with
    *truncated*, a partition past the disk end is kept for the caller to
    clip and warn about.
    """
    mbr, records = boot
    disk_sectors = disk_size // sector_size
    used = [(slot + 1, r) for slot, r in enumerate(records) if is_used(r)]
    if not used:
        return None, []
    problems = [(n, _problem(r, disk_sectors, truncated)) for n, r in used]
    problems = [(n, why) for n, why in problems if why]
    fs = filesystem_boot_sector(mbr.boot_code)
    if fs and problems:
        n, why = problems[0]
        return None, [f"LBA 0 is a {fs} boot sector, not a partition table "
                      f"(slot {n}: {why})"]
    bad_flags = [(n, why) for n, why in problems if why.startswith("boot indicator")]
    if bad_flags:
        n, why = bad_flags[0]
        return None, [f"LBA 0 has a 0x55AA signature but slot {n} has {why}: "
                      f"not a partition table"]

    table = MbrTable(mbr.unique_mbr_disk_signature, [], [])
    if fs:
        table.warnings.append(f"LBA 0 looks like a {fs} boot sector but its "
                              f"partition records are valid; read as an MBR")
    extended = []
    for number, r in used:
        if not truncated:
            _check_end(f"MBR partition {number}", r.starting_lba,
                       r.size_in_lba, disk_sectors, sector_size, disk_size)
        if r.starting_lba == 0:
            table.warnings.append(f"MBR partition {number} starts at LBA 0 and "
                                  f"holds the partition table itself")
        if r.os_type in EXTENDED_TYPES:
            extended.append((number, r))
        else:
            table.entries.append(MbrEntry(number, r.starting_lba, r.size_in_lba,
                                          r.os_type, r.boot_indicator == 0x80))
    number = FIRST_LOGICAL
    for slot, r in extended:
        first = number
        number = _read_chain(read, table, r.starting_lba, r.size_in_lba, number,
                             disk_sectors, sector_size, disk_size, truncated)
        table.extended.append((slot, list(range(first, number))))
    return table, []


def _check_end(what, start, size, disk_sectors, sector_size, disk_size):
    if start + size > disk_sectors:
        raise TableError(
            f"{what} (LBA {start}, {size} sectors) ends at byte offset "
            f"{(start + size) * sector_size}, past the disk end at {disk_size}")


def _read_chain(read, table, ext_start, ext_size, number,
                disk_sectors, sector_size, disk_size, truncated=False):
    """Follow the EBR chain of one extended partition; return the next
    logical partition number."""
    ext_end = ext_start + ext_size
    ebr_lba, seen = ext_start, set()
    while True:
        offset = ebr_lba * sector_size
        if ebr_lba in seen or len(seen) >= MAX_EBRS:
            raise TableError(f"the EBR chain loops back to LBA {ebr_lba} "
                             f"(byte offset {offset})")
        seen.add(ebr_lba)
        ebr = EBR.read(read, offset)
        if ebr.signature != MBR_SIGNATURE:
            rest = min(ext_end, disk_sectors)
            table.warnings.append(
                f"EBR at byte offset {offset} has no 0x55AA signature; the "
                f"logical partitions end there (as Linux reads it), and the "
                f"rest of the extended partition, bytes {offset} to "
                f"{rest * sector_size}, is copied whole (restored in place "
                f"only)")
            table.ebrs.append((ebr_lba, max(rest, ebr_lba + 1)))
            return number
        records = _records(ebr, offset)[:2]
        data = [r for r in records if is_used(r) and r.os_type not in EXTENDED_TYPES]
        links = [r for r in records if is_used(r) and r.os_type in EXTENDED_TYPES]
        end = ebr_lba + 1
        if data:
            r = data[0]
            start = ebr_lba + r.starting_lba
            what = f"logical partition {number}"
            if r.starting_lba == 0:
                raise TableError(f"{what} starts on its own EBR at byte offset {offset}")
            if start + r.size_in_lba > MAX_LBAS:
                raise TableError(
                    f"{what} (record 1 of the EBR at byte offset {offset}) "
                    f"starts at LBA {start} ({r.starting_lba} past its EBR "
                    f"at LBA {ebr_lba}), {r.size_in_lba} sectors: past the "
                    f"2^32 sectors an MBR addresses")
            if not truncated:
                _check_end(what, start, r.size_in_lba, disk_sectors,
                           sector_size, disk_size)
            if start + r.size_in_lba > ext_end:
                table.warnings.append(f"{what} ends past its extended partition")
            table.entries.append(MbrEntry(number, start, r.size_in_lba, r.os_type,
                                          r.boot_indicator == 0x80))
            end = start
            number += 1
        table.ebrs.append((ebr_lba, end))
        if not links:
            return number
        next_lba = ext_start + links[0].starting_lba
        if not ext_start <= next_lba < ext_end:
            raise TableError(
                f"EBR at byte offset {offset} links to LBA {next_lba}, outside "
                f"its extended partition (LBA {ext_start} to {ext_end - 1})")
        ebr_lba = next_lba
