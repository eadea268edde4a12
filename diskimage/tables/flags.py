"""Boot flags patched in place: the MBR active flag and GPT attribute bits.

Nothing else of the table changes.  The writes are computed first, as a
list of ``(disk offset, bytes)``, and written by :func:`apply` (pwrite,
then fsync), so a caller can check them, keep them or lay them over bytes
it read (:func:`overlay`).

* MBR: the boot_indicator of partition record *i* (slot i + 1) is byte
  ``446 + 16 * i`` of sector 0: 0x80 active, 0x00 not.
* GPT: the attributes of entry *n* are the u64 at byte 48 of that entry
  (``partition_entry_lba * sector_size + (n - 1) * sizeof_partition_entry
  + 48``), in the primary array and in the backup array; each array's
  CRC32 (over ``num_partition_entries * sizeof_partition_entry`` bytes)
  goes into its header's ``partition_entry_array_crc32`` (header byte 88),
  and the header's own CRC32 (byte 16, over ``header_size`` bytes with
  that field zero) is computed again.  Both copies, always.
"""

import struct
import zlib

from ..errors import InputError, TableError
from ..host import device
from . import gpt, mbr
from .partitions import read_table

ACTIVE, INACTIVE = 0x80, 0x00
ATTRS_AT = 48                   # u64 in a GPT partition entry
HEADER_CRC_AT = 16              # u32 in the GPT header
ARRAY_CRC_AT = 88               # u32 in the GPT header


def _read_fn(disk):
    """(read(offset, length), size, close) for a path or an open Disk."""
    if isinstance(disk, device.Disk):
        return disk.read, disk.size, lambda: None
    opened = device.open_source(str(disk))
    return opened.read, opened.size, opened.close


def _table(read, size, table):
    return table if table is not None else read_table(read, size)


# --- MBR ----------------------------------------------------------------------
def mbr_indicator(number):
    """The disk offset of primary *number*'s boot indicator byte."""
    return mbr.PARTITION_RECORD_OFFSET + 16 * (number - 1)


def mbr_active_writes(disk, table, active_numbers):
    """The writes that make exactly *active_numbers* (primaries 1-4) the
    active partitions of the MBR at sector 0; only the bytes that change."""
    read, size, close = _read_fn(disk)
    try:
        table = _table(read, size, table)
        if table.kind != "mbr":
            raise TableError(f"{disk}: not an MBR disk ({table.kind})")
        sector = bytes(read(0, 512))
    finally:
        close()
    active = set(active_numbers)
    if not active <= {1, 2, 3, 4}:
        raise InputError(f"{disk}: only primary partitions 1-4 can be "
                         f"active, not {sorted(active - {1, 2, 3, 4})}")
    used = {p.number for p in table.partitions}
    if active - used:
        raise InputError(f"{disk}: no partition {sorted(active - used)[0]} "
                         f"in the MBR to make active")
    writes = []
    for i in range(4):
        at = mbr.PARTITION_RECORD_OFFSET + 16 * i
        want = ACTIVE if i + 1 in active else INACTIVE
        if sector[at] != want:
            writes.append((at, bytes([want])))
    return writes


def mbr_active(disk):
    """The numbers of the active MBR primaries, read from sector 0."""
    read, _, close = _read_fn(disk)
    try:
        sector = bytes(read(0, 512))
    finally:
        close()
    return [i + 1 for i in range(4)
            if sector[mbr.PARTITION_RECORD_OFFSET + 16 * i] == ACTIVE]


# --- GPT ----------------------------------------------------------------------
def _gpt_copies(read, size, table):
    """[(header offset, header sector bytes, header, array offset, array)]
    for the primary and the backup copy, both checked."""
    ss = table.sector_size
    sectors = size // ss
    copies = []
    header, array = gpt.load_copy(read, gpt.PRIMARY_LBA, ss, sectors)
    lbas = [gpt.PRIMARY_LBA, header.alternate_lba]
    for lba in lbas:
        try:
            h, arr = gpt.load_copy(read, lba, ss, sectors)
        except gpt.Invalid as err:
            which = "primary" if lba == gpt.PRIMARY_LBA else "backup"
            raise TableError(f"the {which} GPT header at LBA {lba} is "
                             f"damaged ({err}): flags are patched only "
                             f"in a whole table") from None
        copies.append((lba * ss, bytes(read(lba * ss, ss)), h,
                       h.partition_entry_lba * ss, bytearray(arr)))
    return copies


def gpt_attr_writes(disk, table, attrs):
    """The writes that set the attribute u64 of each GPT entry in *attrs*
    ({number: attrs}) in both copies, with both copies' CRCs again."""
    read, size, close = _read_fn(disk)
    try:
        table = _table(read, size, table)
        if table.kind != "gpt":
            raise TableError(f"{disk}: not a GPT disk ({table.kind})")
        copies = _gpt_copies(read, size, table)
    finally:
        close()
    writes = []
    for head_at, sector, h, array_at, array in copies:
        esize = h.sizeof_partition_entry
        changed = False
        for number, value in sorted(attrs.items()):
            number = int(number)
            if not 1 <= number <= h.num_partition_entries:
                raise InputError(f"{disk}: no GPT entry {number}")
            at = (number - 1) * esize
            if array[at:at + 16] == bytes(16):
                raise InputError(f"{disk}: GPT entry {number} is unused")
            new = struct.pack("<Q", value)
            if array[at + ATTRS_AT:at + ATTRS_AT + 8] != new:
                array[at + ATTRS_AT:at + ATTRS_AT + 8] = new
                writes.append((array_at + at + ATTRS_AT, new))
                changed = True
        if not changed:
            continue
        header = bytearray(sector[:h.header_size])
        header[ARRAY_CRC_AT:ARRAY_CRC_AT + 4] = struct.pack(
            "<I", zlib.crc32(bytes(array)))
        header[HEADER_CRC_AT:HEADER_CRC_AT + 4] = bytes(4)
        header[HEADER_CRC_AT:HEADER_CRC_AT + 4] = struct.pack(
            "<I", zlib.crc32(bytes(header)))
        writes.append((head_at, bytes(header)))
    return writes


def gpt_attrs(disk, table=None):
    """{number: attributes} of the used GPT entries."""
    read, size, close = _read_fn(disk)
    try:
        table = _table(read, size, table)
    finally:
        close()
    return {p.number: p.attrs for p in table.partitions}


# --- saved flags, for arming and its undoing -----------------------------------
def snapshot(disk, table=None):
    """The flags as they are now, as JSON: {"table": "mbr", "active":
    [numbers]} or {"table": "gpt", "attrs": {"number": attrs}}.  What
    arming keeps in state.armed.bios.flags_before."""
    read, size, close = _read_fn(disk)
    try:
        table = _table(read, size, table)
    finally:
        close()
    if table.kind == "mbr":
        return {"table": "mbr", "active": mbr_active(disk)}
    if table.kind == "gpt":
        return {"table": "gpt", "attrs": {str(p.number): p.attrs
                                          for p in table.partitions}}
    raise TableError(f"{disk}: no partition table")


def restore_writes(disk, table, saved):
    """The writes that put back the flags of :func:`snapshot`'s *saved*."""
    if saved["table"] == "mbr":
        return mbr_active_writes(disk, table, saved["active"])
    return gpt_attr_writes(disk, table, {int(n): v for n, v in
                                         saved["attrs"].items()})


def overlay(data, offset, writes):
    """*data* (the bytes at disk *offset*) with the *writes* that fall in
    it laid over; for checking what a disk would hold after them."""
    out = bytearray(data)
    for at, chunk in writes:
        lo, hi = max(at, offset), min(at + len(chunk), offset + len(out))
        if lo < hi:
            out[lo - offset:hi - offset] = chunk[lo - at:hi - at]
    return bytes(out)


def apply(disk, writes):
    """pwrite each of *writes* to the disk (a path: opened without O_EXCL,
    its other partitions may be mounted), then fsync."""
    if isinstance(disk, device.Disk):
        target, close = disk, lambda: None
    else:
        target = device.open_target(str(disk), exclusive=False)
        close = target.close
    try:
        for at, chunk in writes:
            device.write_all(target, at, chunk)
        device.sync(target)
    finally:
        close()
