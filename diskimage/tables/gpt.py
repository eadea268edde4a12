"""The GUID Partition Table: the header at LBA 1, its partition entry array,
and the backup copy at the end of the disk.

Field names follow the UEFI specification (chapter 5.3).  Everything here
counts in sectors (LBAs); ``ending_lba`` is inclusive.  A copy is valid when
its signature, header size, header CRC32, my_lba and entry array CRC32 all
check out; when the primary is damaged the backup is used and a warning says
why.
"""

import uuid
import zlib
from dataclasses import dataclass, field

from ..errors import TableError
from ..structs import Struct, read_exact

GPT_HEADER = Struct("GPT header", [
    ("8s", "signature"),                    # b"EFI PART"
    ("I", "revision"),
    ("I", "header_size"),
    ("I", "header_crc32"),                  # over header_size bytes, this field zero
    ("I", "reserved"),
    ("Q", "my_lba"),
    ("Q", "alternate_lba"),
    ("Q", "first_usable_lba"),
    ("Q", "last_usable_lba"),               # inclusive
    ("16s", "disk_guid"),
    ("Q", "partition_entry_lba"),
    ("I", "num_partition_entries"),
    ("I", "sizeof_partition_entry"),
    ("I", "partition_entry_array_crc32"),
], size=92)

GPT_ENTRY = Struct("GPT partition entry", [
    ("16s", "partition_type_guid"),         # all zero: unused entry
    ("16s", "unique_partition_guid"),
    ("Q", "starting_lba"),
    ("Q", "ending_lba"),                    # inclusive
    ("Q", "attributes"),
    ("72s", "partition_name"),              # UTF-16LE, NUL padded
], size=128)

SIGNATURE = b"EFI PART"
PRIMARY_LBA = 1
MAX_ARRAY_SIZE = 16 << 20       # far above any real table (128 x 128 = 16 KiB)
SECTOR_SIZES = (512, 4096)      # tried after the sector size the caller gives


class Invalid(TableError):
    """One GPT copy fails a check; *header* is set once it parsed.  Caught
    here, where it becomes a reason or a warning; a TableError (exit 3)
    all the same, so that none escapes the hierarchy."""

    def __init__(self, reason, header=None):
        super().__init__(reason)
        self.header = header


@dataclass
class GptEntry:
    number: int                 # entry index + 1
    start_lba: int
    end_lba: int                # inclusive
    type_guid: str
    unique_guid: str
    attributes: int
    name: str


@dataclass
class GptTable:
    sector_size: int
    header: object              # the GPT_HEADER record in use
    entries: list               # GptEntry, used entries only
    primary_array: tuple        # (first LBA, end LBA exclusive) at the disk start
    backup_area: tuple          # (first LBA, end LBA exclusive) or None
    warnings: list = field(default_factory=list)

    @property
    def disk_guid(self):
        return guid_text(self.header.disk_guid)


def guid_text(raw):
    """Mixed-endian on-disk GUID bytes as lowercase canonical text."""
    return str(uuid.UUID(bytes_le=bytes(raw)))


def _array_sectors(header, sector_size):
    size = header.num_partition_entries * header.sizeof_partition_entry
    return -(-size // sector_size)


def load_copy(read, lba, sector_size, disk_sectors, truncated=False):
    """Read and check the GPT header at *lba* and its entry array.

    Returns ``(header, array bytes)``; raises :class:`Invalid` naming the
    first check that fails.  With *truncated*, usable LBAs past the disk
    end are allowed (a disk file cut short: the caller warns).
    """
    if lba >= disk_sectors:
        raise Invalid(f"LBA {lba} is past the disk's last LBA {disk_sectors - 1}")
    offset = lba * sector_size
    sector = read_exact(read, offset, sector_size, "GPT header")
    h = GPT_HEADER.unpack(sector, at=offset)
    if h.signature != SIGNATURE:
        raise Invalid("no EFI PART signature")
    if not GPT_HEADER.size <= h.header_size <= sector_size:
        raise Invalid(f"header size {h.header_size}", h)
    zeroed = GPT_HEADER.pack(**h._replace(header_crc32=0)._asdict())
    if zlib.crc32(zeroed + sector[GPT_HEADER.size:h.header_size]) != h.header_crc32:
        raise Invalid("header CRC32 mismatch", h)
    if h.my_lba != lba:
        raise Invalid(f"my_lba is {h.my_lba}, not {lba}", h)
    if h.sizeof_partition_entry < GPT_ENTRY.size or h.sizeof_partition_entry % 8:
        raise Invalid(f"partition entry size {h.sizeof_partition_entry}", h)
    array_size = h.num_partition_entries * h.sizeof_partition_entry
    if array_size > MAX_ARRAY_SIZE:
        raise Invalid(f"partition entry array of {array_size} bytes", h)
    if h.first_usable_lba > h.last_usable_lba + 1 or (
            h.last_usable_lba >= disk_sectors and not truncated):
        raise Invalid(f"usable LBAs {h.first_usable_lba} to {h.last_usable_lba} "
                      f"do not fit a disk whose last LBA is {disk_sectors - 1}", h)
    if h.partition_entry_lba + _array_sectors(h, sector_size) > disk_sectors:
        raise Invalid(f"partition entry array at LBA {h.partition_entry_lba} "
                      f"runs past the disk end", h)
    array = read_exact(read, h.partition_entry_lba * sector_size, array_size,
                       "GPT partition entry array")
    if zlib.crc32(array) != h.partition_entry_array_crc32:
        raise Invalid("partition entry array CRC32 mismatch", h)
    return h, array


def _candidates(sector_size):
    return list(dict.fromkeys((sector_size,) + SECTOR_SIZES))


def read_gpt(read, disk_size, sector_size, truncated=False):
    """Find a valid GPT, trying the caller's sector size then 512 and 4096.

    Returns ``(GptTable, [])``, or ``(None, reasons)`` where *reasons* say
    what was wrong with every copy that had an EFI PART signature.  With
    *truncated*, a primary GPT (and partitions) that run past the disk end
    are read; the caller clips them and warns.
    """
    reasons, damaged = [], {}
    for ss in _candidates(sector_size):
        disk_sectors = disk_size // ss
        if disk_sectors < 3:
            continue
        try:
            header, array = load_copy(read, PRIMARY_LBA, ss, disk_sectors,
                                      truncated)
        except Invalid as err:
            if err.header is not None:
                damaged[ss] = err
                reasons.append(f"primary GPT header at LBA 1 ({ss}-byte sectors): {err}")
            continue
        return _build(read, header, array, ss, sector_size, disk_size, None,
                      truncated), []
    for ss in _candidates(sector_size):
        disk_sectors = disk_size // ss
        if disk_sectors < 3:
            continue
        last = disk_sectors - 1
        tries = [last]
        if ss in damaged and damaged[ss].header.alternate_lba < last:
            tries.insert(0, damaged[ss].header.alternate_lba)
        for lba in tries:
            try:
                header, array = load_copy(read, lba, ss, disk_sectors)
            except Invalid as err:
                if err.header is not None:
                    reasons.append(f"backup GPT header at LBA {lba} ({ss}-byte sectors): {err}")
                continue
            why = f" ({damaged[ss]})" if ss in damaged else " (no EFI PART signature)"
            note = (f"primary GPT header at LBA 1 is damaged{why}; "
                    f"using the backup at LBA {lba}")
            return _build(read, header, array, ss, sector_size, disk_size,
                          note, truncated), []
    return None, reasons


def _build(read, header, array, ss, asked_ss, disk_size, note, truncated):
    disk_sectors = disk_size // ss
    last = disk_sectors - 1
    # Another sector size than asked is for the caller to judge (a disk
    # file's guess of 512 is no disagreement): found.sector_size says it.
    warnings = [note] if note else []
    array_sectors = _array_sectors(header, ss)
    if header.my_lba == PRIMARY_LBA:
        primary = (header.partition_entry_lba, header.partition_entry_lba + array_sectors)
        backup_lba = header.alternate_lba
        backup_area = None
        if backup_lba > last:
            warnings.append(f"backup GPT header LBA {backup_lba} is past the "
                            f"disk's last LBA {last}: the disk looks truncated")
        else:
            try:
                backup, backup_array = load_copy(read, backup_lba, ss, disk_sectors)
            except Invalid as err:
                warnings.append(f"backup GPT header at LBA {backup_lba} is damaged ({err})")
                backup_area = (backup_lba - array_sectors, backup_lba + 1)
            else:
                if backup_array != array:
                    warnings.append("backup GPT partition entries differ from the primary")
                backup_area = (backup.partition_entry_lba, backup_lba + 1)
    else:
        # The primary array normally sits right after its header.
        primary = (PRIMARY_LBA + 1, PRIMARY_LBA + 1 + array_sectors)
        backup_lba = header.my_lba
        backup_area = (header.partition_entry_lba, backup_lba + 1)
    if backup_area and backup_lba != last:
        warnings.append(f"backup GPT header is at LBA {backup_lba}, not at the "
                        f"disk's last LBA {last} (disk grown?)")
    entries = parse_entries(header, array, ss, disk_size, warnings, truncated)
    return GptTable(ss, header, entries, primary, backup_area, warnings)


def parse_entries(header, array, sector_size, disk_size, warnings,
                  truncated=False):
    """The used entries of a checked entry array, numbered index + 1.  An
    entry past the disk end raises TableError, unless *truncated*."""
    disk_sectors = disk_size // sector_size
    array_offset = header.partition_entry_lba * sector_size
    entries = []
    for index in range(header.num_partition_entries):
        at = index * header.sizeof_partition_entry
        e = GPT_ENTRY.unpack(array, at, at=array_offset + at)
        if e.partition_type_guid == bytes(16):
            continue
        number = index + 1
        what = f"GPT partition {number}"
        if e.ending_lba < e.starting_lba:
            raise TableError(f"{what} ends (LBA {e.ending_lba}) before it starts "
                             f"(LBA {e.starting_lba}); entry at byte offset "
                             f"{array_offset + at}")
        if e.ending_lba >= disk_sectors and not truncated:
            raise TableError(
                f"{what} (LBA {e.starting_lba} to {e.ending_lba}) ends at byte "
                f"offset {(e.ending_lba + 1) * sector_size}, past the disk end at "
                f"{disk_size}")
        if e.starting_lba < header.first_usable_lba or e.ending_lba > header.last_usable_lba:
            warnings.append(f"{what} lies outside the usable LBAs "
                            f"{header.first_usable_lba} to {header.last_usable_lba}")
        name = e.partition_name.decode("utf-16-le", "replace").split("\0", 1)[0]
        entries.append(GptEntry(number, e.starting_lba, e.ending_lba,
                                guid_text(e.partition_type_guid),
                                guid_text(e.unique_partition_guid),
                                e.attributes, name))
    return entries
