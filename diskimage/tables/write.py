"""Writing partition tables for a restore that moves or resizes partitions,
keeps protected ones, changes the sector size, or gives new identities.

A GPT is written whole, both copies: the header and entry array at LBA 1-2
and the backup at the target's end, with the last usable LBA and both CRC32s
computed for the target.  LBA 0 keeps its boot code and gets one protective
0xEE record covering the disk; a hybrid MBR keeps its other records, each
following the GPT partition it names to its new place (a record that names
no partition restored there, or a place past what 32-bit sector numbers
reach, is dropped), and its 0xEE record keeps covering what it covered: the sectors
before the first hybrid partition, after the last, or the whole disk.

An MBR keeps its boot code; the four primary records are written from the
new layout.  Logical partitions that did not move keep their EBRs as the
image holds them.  When they move or resize, the EBR chain is written anew,
in partition-number order, as libfdisk writes one: each EBR (at the offset
the layout gives, one alignment unit before its logical on an aligned disk)
holds the logical's record, its start relative to that EBR, and a link to
the next EBR (type 0x05, start relative to the extended partition's start,
size from that EBR to the end of its logical); the last EBR has no link.
The extended partition's record keeps its slot and type and is set to span
the chain exactly: from the first EBR to the end of the last logical.  Any
other extended record is cleared (their logicals are in the one chain now).

The functions return ``[(offset, bytes)]`` to write, so the caller decides
when: restore writes them last.
"""

import struct
import uuid
import zlib

from . import gpt, mbr
from ..errors import TableError

ENTRIES = 128
LINK_TYPE = 0x05            # the type libfdisk gives an EBR's link record
REVISION = 0x00010000


def _guid(text):
    return uuid.UUID(text).bytes_le


def _name(text):
    return (text or "").encode("utf-16-le")[:72]


def gpt_writes(partitions, disk_size, sector_size, disk_guid, sector0,
               moved=None, old_sector_size=512):
    """GPT for *partitions* (dicts: number, start, size, type, uuid, name,
    attrs; byte offsets) on a disk of *disk_size* bytes.  *sector0* is the
    current first sector (its boot code is kept; its LBAs count sectors of
    *old_sector_size*), *moved* maps the (start, size) in bytes of each
    partition restored to its new (start, size), for a hybrid MBR."""
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
        (0, protective_mbr(sector0, sectors, ss, moved or {},
                           old_sector_size)),
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


def protective_mbr(sector0, sectors, ss=512, moved=None, old_ss=512):
    """Sector 0 with its boot code and its 0xEE record over the disk, or,
    when it is a hybrid MBR, its records moved with their partitions (see
    the module's docstring)."""
    whole = (1, min(sectors - 1, 0xFFFFFFFF))
    at = mbr.PARTITION_RECORD_OFFSET
    old = [mbr.PARTITION_RECORD.unpack(sector0, at + 16 * slot)
           for slot in range(4)] if len(sector0) >= 512 else []
    guard = [slot for slot, r in enumerate(old)
             if r.os_type == mbr.PROTECTIVE_TYPE and r.size_in_lba]
    hybrid = {}
    for slot, r in enumerate(old):
        if slot in guard or not mbr.is_used(r):
            continue
        new = (moved or {}).get((r.starting_lba * old_ss,
                                 r.size_in_lba * old_ss))
        if new and new[0] // ss + new[1] // ss <= 0xFFFFFFFF:
            hybrid[slot] = (r, new[0] // ss, new[1] // ss)
    if not guard or not hybrid:
        return _with_records(sector0, _record(False, mbr.PROTECTIVE_TYPE,
                                              *whole) + bytes(48))
    records = bytearray(64)
    for slot, (r, start, size) in hybrid.items():
        records[16 * slot:16 * slot + 16] = _record(
            r.boot_indicator == 0x80, r.os_type, start, size)
    g = old[guard[0]]
    kept = [r for r, _, _ in hybrid.values()]
    first = min(start for _, start, _ in hybrid.values())
    end = max(start + size for _, start, size in hybrid.values())
    if g.starting_lba + g.size_in_lba <= min(r.starting_lba for r in kept):
        place = (1, first - 1)
    elif g.starting_lba >= max(r.starting_lba + r.size_in_lba for r in kept):
        place = (end, min(sectors - end, 0xFFFFFFFF))
    else:
        place = whole
    records[16 * guard[0]:16 * guard[0] + 16] = _record(
        False, mbr.PROTECTIVE_TYPE, *place)
    return _with_records(sector0, bytes(records))


def _with_records(sector0, records, signature=None):
    out = bytearray(sector0[:512].ljust(512, b"\0"))
    at = mbr.PARTITION_RECORD_OFFSET
    out[at:at + 64] = records
    out[510:512] = b"\x55\xaa"
    if signature is not None:
        out[440:444] = signature.to_bytes(4, "little")
    return bytes(out)


def mbr_writes(sector0, rows, sector_size, signature=None, ebrs=None):
    """Sector 0 with the primary records of *rows* (dicts: number, start,
    size, type "0x83", bootable; numbers 1-4 primaries, from 5 logicals)
    rewritten, the other records (the extended container among them)
    kept, and, when given, a new disk signature.  With *ebrs* ({logical
    number: the new byte offset of its EBR}), the EBR chain and the
    extended record are written anew (see the module's docstring).  When
    *rows* hold no logical, an extended record that a primary now overlaps
    is dropped: an empty container, which would otherwise overlap it.
    Returned as [(byte offset, sector)], sector 0 last."""
    updates = [p for p in rows if p["number"] < mbr.FIRST_LOGICAL]
    logicals = [dict(p, ebr=ebrs[p["number"]]) for p in rows
                if p["number"] in (ebrs or {})]
    empty_extended = len(updates) == len(rows)
    at = mbr.PARTITION_RECORD_OFFSET
    old = sector0[at:at + 64]
    extended = [old[16 * slot:16 * slot + 16] for slot in range(4)
                if _is_extended(old, slot)]
    records = bytearray(old)
    for slot in range(4):
        if _is_extended(old, slot):
            records[16 * slot:16 * slot + 16] = bytes(16)
    for p in updates:
        rec = _record(p.get("bootable"), int(p["type"], 16),
                      p["start"] // sector_size, p["size"] // sector_size)
        slot = (p["number"] - 1) * 16
        records[slot:slot + 16] = rec
    chain = []
    if logicals:
        chain = ebr_chain(logicals, sector_size)
        if not extended:
            raise TableError("sector 0 of the image has no extended "
                             "partition record for its logical partitions")
        ext_start, ext_size = chain[0]
        extended = [_record(False, extended[0][4], ext_start, ext_size)]
    if empty_extended and not logicals:
        spans = [(p["start"] // sector_size,
                  (p["start"] + p["size"]) // sector_size) for p in updates]
        extended = [r if not any(
            start < r_start + r_size and r_start < end
            for start, end in spans) else bytes(16)
            for r in extended
            for r_start, r_size in [struct.unpack_from("<II", r, 8)]]
    _place_extended(records, old, extended, {p["number"] for p in updates})
    # The EBRs first, sector 0 last: cut off in between (power lost), the
    # old table still points at the old chain, never a new extended
    # record at EBRs not written yet.
    return [(lba * sector_size, ebr) for lba, ebr in chain[1:]] + \
        [(0, _with_records(sector0, bytes(records), signature))]


def _is_extended(records, slot):
    at = 16 * slot
    return records[at + 4] in mbr.EXTENDED_TYPES and \
        mbr.PARTITION_RECORD.unpack(records, at).size_in_lba != 0


def _place_extended(records, old, extended, taken):
    """Put the *extended* records back into *records*: each in its old
    slot, or, when a primary of the new layout (a kept protected partition)
    took that slot, in the first empty one.  TableError when none is."""
    slots = [slot for slot in range(4) if _is_extended(old, slot)]
    for slot, record in zip(slots, extended):
        if not any(record):             # an empty one dropped
            continue
        if slot + 1 in taken:
            empty = [s for s in range(4) if s + 1 not in taken and
                     not any(records[16 * s:16 * s + 16])]
            if not empty:
                raise TableError("no MBR slot is left for the extended "
                                 "partition")
            slot = empty[0]
        taken = taken | {slot + 1}
        records[16 * slot:16 * slot + 16] = record


def ebr_chain(logicals, sector_size):
    """[(extended start LBA, extended size)] followed by (EBR LBA, EBR
    sector) for each of *logicals*, in number order.  TableError when they
    are not in disk order, an EBR is not before its logical, or a sector
    number does not fit in 32 bits."""
    ss = sector_size
    parts = sorted(logicals, key=lambda p: p["number"])
    numbers = [p["number"] for p in parts]
    if numbers != list(range(mbr.FIRST_LOGICAL,
                             mbr.FIRST_LOGICAL + len(parts))):
        raise TableError(f"logical partitions numbered {numbers}, not "
                         f"5 onwards without gaps")
    places = [(p["ebr"] // ss, p["start"] // ss, p["size"] // ss)
              for p in parts]
    ext_start = places[0][0]
    ext_end = places[-1][1] + places[-1][2]
    if ext_end > 0xFFFFFFFF + 1:
        raise TableError(f"the extended partition would end at LBA "
                         f"{ext_end}, past what an MBR counts")
    cursor = ext_start
    for number, (ebr, start, size) in zip(numbers, places):
        if not cursor <= ebr < start:
            raise TableError(f"the EBR of logical partition {number} (LBA "
                             f"{ebr}) is not between the end of the one "
                             f"before (LBA {cursor}) and its start (LBA "
                             f"{start})")
        cursor = start + size
    out = [(ext_start, ext_end - ext_start)]
    for i, (p, (ebr, start, size)) in enumerate(zip(parts, places)):
        records = _record(p.get("bootable"), int(p["type"], 16),
                          start - ebr, size)
        if i + 1 < len(places):
            nxt_ebr, nxt_start, nxt_size = places[i + 1]
            records += _record(False, LINK_TYPE, nxt_ebr - ext_start,
                               nxt_start + nxt_size - nxt_ebr)
        out.append((ebr, _with_records(bytes(512), records.ljust(64, b"\0"))))
    return out
