"""Writing partition tables for a restore that moves or resizes partitions,
keeps protected ones, changes the sector size, or gives new identities.

A GPT is written whole, both copies: the header and entry array at LBA 1-2
and the backup at the target's end, with the last usable LBA and both CRC32s
computed for the target.  LBA 0 keeps its boot code and gets one protective
0xEE record covering the disk (a hybrid MBR's other records are dropped,
since they would name the old places).  An MBR keeps its boot code and its
logical partitions (which never move); the four primary records are written
from the new layout.

The functions return ``[(offset, bytes)]`` to write, so the caller decides
when: restore writes them last.
"""

import uuid
import zlib

from . import gpt, mbr

ENTRIES = 128
REVISION = 0x00010000


def _guid(text):
    return uuid.UUID(text).bytes_le


def _name(text):
    return (text or "").encode("utf-16-le")[:72]


def gpt_writes(partitions, disk_size, sector_size, disk_guid, sector0):
    """GPT for *partitions* (dicts: number, start, size, type, uuid, name,
    attrs; byte offsets) on a disk of *disk_size* bytes.  *sector0* is the
    current first sector (its boot code is kept)."""
    ss = sector_size
    count = max([ENTRIES] + [p["number"] for p in partitions])
    array = bytearray(count * gpt.GPT_ENTRY.size)
    for p in partitions:
        entry = gpt.GPT_ENTRY.pack(
            partition_type_guid=_guid(p["type"]),
            unique_partition_guid=_guid(p["uuid"]),
            starting_lba=p["start"] // ss,
            ending_lba=(p["start"] + p["size"]) // ss - 1,
            attributes=p.get("attrs", 0), partition_name=_name(p.get("name")))
        at = (p["number"] - 1) * gpt.GPT_ENTRY.size
        array[at:at + len(entry)] = entry
    array_sectors = -(-len(array) // ss)
    array = bytes(array) + bytes(array_sectors * ss - len(array))
    sectors = disk_size // ss
    last = sectors - 1
    common = dict(signature=gpt.SIGNATURE, revision=REVISION,
                  header_size=gpt.GPT_HEADER.size,
                  first_usable_lba=2 + array_sectors,
                  last_usable_lba=last - 1 - array_sectors,
                  disk_guid=_guid(disk_guid), num_partition_entries=count,
                  sizeof_partition_entry=gpt.GPT_ENTRY.size,
                  partition_entry_array_crc32=zlib.crc32(array))

    def header(my_lba, alternate, array_lba):
        fields = dict(common, my_lba=my_lba, alternate_lba=alternate,
                      partition_entry_lba=array_lba)
        crc = zlib.crc32(gpt.GPT_HEADER.pack(**fields))
        raw = gpt.GPT_HEADER.pack(**dict(fields, header_crc32=crc))
        return raw + bytes(ss - len(raw))

    backup_array = last - array_sectors
    return [
        (0, protective_mbr(sector0, sectors)),
        (ss, header(1, last, 2)),
        (2 * ss, array),
        (backup_array * ss, array),
        (last * ss, header(last, 1, backup_array)),
    ]


def _record(boot, os_type, start_lba, size_lba):
    return mbr.PARTITION_RECORD.pack(
        boot_indicator=0x80 if boot else 0, starting_chs=b"\xfe\xff\xff",
        os_type=os_type, ending_chs=b"\xfe\xff\xff",
        starting_lba=start_lba, size_in_lba=size_lba)


def protective_mbr(sector0, sectors):
    """Sector 0 with its boot code and one 0xEE record over the disk."""
    records = _record(False, mbr.PROTECTIVE_TYPE, 1,
                      min(sectors - 1, 0xFFFFFFFF)) + bytes(48)
    return _with_records(sector0, records)


def _with_records(sector0, records, signature=None):
    out = bytearray(sector0[:512].ljust(512, b"\0"))
    at = mbr.PARTITION_RECORD_OFFSET
    out[at:at + 64] = records
    out[510:512] = b"\x55\xaa"
    if signature is not None:
        out[440:444] = signature.to_bytes(4, "little")
    return bytes(out)


def mbr_writes(sector0, updates, sector_size, signature=None):
    """Sector 0 with the primary records of *updates* (dicts: number 1-4,
    start, size, type "0x83", bootable) rewritten, the other records (the
    extended container among them) kept, and, when given, a new disk
    signature."""
    at = mbr.PARTITION_RECORD_OFFSET
    records = bytearray(sector0[at:at + 64])
    for p in updates:
        rec = _record(p.get("bootable"), int(p["type"], 16),
                      p["start"] // sector_size, p["size"] // sector_size)
        slot = (p["number"] - 1) * 16
        records[slot:slot + 16] = rec
    return [(0, _with_records(sector0, bytes(records), signature))]
