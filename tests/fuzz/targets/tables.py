"""The partition table readers over a hostile disk: the MBR and its chain
of EBRs, GPT (primary and backup header, the entry array), as capture,
restore, bwpart and `rdeploy info` read them (partitions.read_table with
512- and 4096-byte sectors, whole and as a disk file cut short), then what
is made of the table found: its JSON form, the protected partitions, and
the flag writes bwpart would make.  The input is the disk; a flip in a
CRC-checked GPT header is resealed in a second pass (anyone can write a
right CRC), so mutations reach the checks behind it."""

import os
import zlib

from diskimage.errors import DiskImageError
from diskimage.tables import flags, gpt, mbr, protected
from diskimage.tables.partitions import read_table
from tests.fuzz.targets_index import scratch

MAX_LEN = 65536


def _reader(data):
    def read(offset, length):
        if offset < 0 or length < 0:
            raise ValueError(f"read({offset}, {length})")   # a finding
        return data[offset:offset + length]
    return read


def _reseal(data, sector):
    """`data` with the GPT headers' and arrays' CRCs made right, for both
    copies, at `sector`-byte sectors."""
    out = bytearray(data)
    for lba in (1, len(data) // sector - 1):
        at = lba * sector
        raw = out[at:at + 92]
        if len(raw) < 92 or raw[:8] != gpt.SIGNATURE:
            continue
        entries = int.from_bytes(raw[80:84], "little")
        size = int.from_bytes(raw[84:88], "little")
        array_at = int.from_bytes(raw[72:80], "little") * sector
        if entries * size <= len(data) and array_at < len(data):
            array = bytes(out[array_at:array_at + entries * size])
            out[at + 88:at + 92] = zlib.crc32(array).to_bytes(4, "little")
        size = min(max(int.from_bytes(raw[12:16], "little"), 92), sector)
        out[at + 16:at + 20] = bytes(4)
        out[at + 16:at + 20] = zlib.crc32(out[at:at + size]).to_bytes(
            4, "little")
    return bytes(out)


def _read(data, sector, truncated):
    read = _reader(data)
    size = len(data) + (sector * 7 if truncated else 0)
    try:
        table = read_table(read, size, sector, truncated=truncated,
                           sector_size_from="" if truncated else None)
    except DiskImageError:
        return
    table.to_dict()
    table.warnings_for({p.number for p in table.partitions})
    protected.protected_partitions(table)
    if table.kind == "mbr":
        numbers = [p.number for p in table.partitions][:2]
        try:
            flags.mbr_active_writes(_Disk(data), table, numbers)
        except DiskImageError:
            pass
    elif table.kind == "gpt":
        attrs = {p.number: p.attrs ^ 4 for p in table.partitions}
        try:
            flags.gpt_attr_writes(_Disk(data), table, attrs)
        except DiskImageError:
            pass


_FILE = None


def _Disk(data):
    """A disk file holding `data` (flags' writers open a path), in one
    temp file reused."""
    global _FILE
    if _FILE is None:
        _FILE = os.path.join(scratch("tables"), "disk")
    with open(_FILE, "wb") as f:
        f.write(data)
    return _FILE


def one_input(data):
    mbr.read_boot_record(_reader(data), len(data))
    for sector in (512, 4096):
        for truncated in (False, True):
            _read(data, sector, truncated)
        sealed = _reseal(data, sector)
        if sealed != data:
            _read(sealed, sector, False)
