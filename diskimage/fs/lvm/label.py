"""The binary parts of an LVM2 physical volume: the label (`LABELONE` in
one of the first four sectors) with its pv_header (the PV UUID, the device
size, the data, metadata and bootloader area lists), and each metadata
area's mda_header with the raw_locn of the current text metadata, which
may wrap round the area's circular buffer.  Every CRC is checked with
lvm2's calc_crc.  Layouts from lvm2's lib/label/label.h and
lib/format_text/layout.h (docs/filesystems/lvm.md, byte by byte)."""

import struct
import zlib
from dataclasses import dataclass, field

from ..usedmap import MapError, read_exact

SECTOR = 512
LABEL_SCAN_SECTORS = 4
LABEL_ID = b"LABELONE"
LABEL_TYPE = b"LVM2 001"
MDA_MAGIC = b"\x20LVM2\x20x[5A%r0N*>"
MDA_HEADER_SIZE = 512
INITIAL_CRC = 0xF597A6CF
RAW_LOCN_IGNORED = 0x1
#: More text than this is not lvm2's (its own limit is far lower): refused
#: before it is read.
MAX_TEXT = 64 << 20
#: A pv_header's lists end with a zero entry; a sector holds at most this
#: many 16-byte entries after the 40 fixed bytes.
MAX_LOCNS = (SECTOR - 32 - 40) // 16

# label_header: id[8], sector_xl u64, crc_xl u32, offset_xl u32, type[8]
LABEL_HEADER = struct.Struct("<8sQII8s")
# pv_header: pv_uuid[32], device_size_xl u64, then disk_locn lists
PV_HEADER = struct.Struct("<32sQ")
DISK_LOCN = struct.Struct("<QQ")                # offset, size (bytes)
PV_HEADER_EXT = struct.Struct("<II")            # version, flags
# mda_header: checksum_xl u32, magic[16], version u32, start u64, size u64,
# then raw_locn entries: offset u64, size u64, checksum u32, flags u32
MDA_HEADER = struct.Struct("<I16sIQQ")
RAW_LOCN = struct.Struct("<QQII")
assert (LABEL_HEADER.size, PV_HEADER.size, MDA_HEADER.size,
        RAW_LOCN.size) == (32, 40, 40, 24)


def calc_crc(data, initial=INITIAL_CRC):
    """lvm2's calc_crc: the CRC-32 polynomial of zlib, reflected, without
    the final inversion, started from `initial`."""
    return zlib.crc32(data, initial ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def dashed_uuid(raw):
    """A 32-character LVM UUID grouped 6-4-4-4-4-4-6, as lvm2 prints it."""
    text = raw.decode("ascii", "replace")
    groups, at = [], 0
    for width in (6, 4, 4, 4, 4, 4, 6):
        groups.append(text[at:at + width])
        at += width
    return "-".join(groups)


@dataclass
class Label:
    sector: int                 # the label's sector (0 to 3)
    pv_uuid: str                # dashed
    device_size: int            # bytes, as pvcreate saw the device
    data_areas: list            # [(offset, size)]; size 0: to the end
    metadata_areas: list        # [(offset, size)]
    bootloader_areas: list = field(default_factory=list)


def _locns(sector, at, what):
    found = []
    for _ in range(MAX_LOCNS + 1):
        if at + DISK_LOCN.size > len(sector):
            break
        offset, size = DISK_LOCN.unpack_from(sector, at)
        at += DISK_LOCN.size
        if offset == 0 and size == 0:
            return found, at
        found.append((offset, size))
    raise MapError(f"LVM2 label: the {what} list has no end in the label "
                   f"sector")


def read_label(read, volume_size):
    """The PV label of the volume read by read(offset, length); MapError
    when it is missing, its CRC is wrong or an area lies outside."""
    head = read_exact(read, 0, LABEL_SCAN_SECTORS * SECTOR, "LVM2 label")
    for number in range(LABEL_SCAN_SECTORS):
        sector = head[number * SECTOR:(number + 1) * SECTOR]
        if sector[:8] == LABEL_ID:
            break
    else:
        raise MapError("LVM2 label: no LABELONE in sectors 0-3")
    ident, sector_xl, crc_xl, offset_xl, kind = \
        LABEL_HEADER.unpack_from(sector)
    if sector_xl != number:
        raise MapError(f"LVM2 label in sector {number} says it is in "
                       f"sector {sector_xl}")
    if calc_crc(sector[20:]) != crc_xl:
        raise MapError(f"LVM2 label: CRC mismatch in sector {number}")
    if kind != LABEL_TYPE:
        raise MapError(f"LVM2 label: type {kind!r}, not {LABEL_TYPE!r}")
    if not LABEL_HEADER.size <= offset_xl <= SECTOR - PV_HEADER.size - 32:
        raise MapError(f"LVM2 label: pv_header offset {offset_xl} outside "
                       f"the label sector")
    raw_uuid, device_size = PV_HEADER.unpack_from(sector, offset_xl)
    data, at = _locns(sector, offset_xl + PV_HEADER.size, "data area")
    metadata, at = _locns(sector, at, "metadata area")
    boot = []
    if at + PV_HEADER_EXT.size <= len(sector):
        version, _flags = PV_HEADER_EXT.unpack_from(sector, at)
        if version >= 1:
            boot, at = _locns(sector, at + PV_HEADER_EXT.size,
                              "bootloader area")
    label = Label(number, dashed_uuid(raw_uuid), device_size, data,
                  metadata, boot)
    _check_areas(label, volume_size)
    return label


def _check_areas(label, volume_size):
    if label.device_size > volume_size:
        raise MapError(f"LVM2 label: the PV is {label.device_size} bytes, "
                       f"the volume only {volume_size}")
    if len(label.data_areas) != 1:
        raise MapError(f"LVM2 label: {len(label.data_areas)} data areas "
                       f"(lvm2 writes one)")
    areas = [(o, s, "metadata area") for o, s in label.metadata_areas]
    areas += [(o, s, "bootloader area") for o, s in label.bootloader_areas]
    for offset, size, what in areas:
        if size == 0 or offset < LABEL_SCAN_SECTORS * SECTOR or \
                offset + size > label.device_size:
            raise MapError(f"LVM2 label: {what} at {offset} of {size} "
                           f"bytes outside the PV of {label.device_size}")
    offset, size = label.data_areas[0]
    if offset > label.device_size or offset + size > label.device_size:
        raise MapError(f"LVM2 label: data area at {offset} outside the PV")


@dataclass
class Metadata:
    area: tuple                 # (offset, size) of the metadata area
    text: str                   # the current text metadata
    where: tuple                # [(offset in the volume, length)] read


def read_metadata(read, area):
    """The current text metadata of the metadata area `area` (offset,
    size), or None when the area is marked ignored or holds none yet;
    MapError when its header or the text's CRC is wrong."""
    start, size = area
    if size < 2 * MDA_HEADER_SIZE:
        raise MapError(f"LVM2 metadata area at {start}: {size} bytes")
    header = read_exact(read, start, MDA_HEADER_SIZE, "LVM2 mda_header")
    checksum, magic, version, mda_start, mda_size = \
        MDA_HEADER.unpack_from(header)
    if magic != MDA_MAGIC:
        raise MapError(f"LVM2 metadata area at {start}: bad magic")
    if calc_crc(header[4:]) != checksum:
        raise MapError(f"LVM2 metadata area at {start}: header CRC "
                       f"mismatch")
    if version != 1:
        raise MapError(f"LVM2 metadata area at {start}: version {version}")
    if (mda_start, mda_size) != (start, size):
        raise MapError(f"LVM2 metadata area at {start} of {size} bytes "
                       f"says it is at {mda_start} of {mda_size}")
    offset, length, text_crc, flags = \
        RAW_LOCN.unpack_from(header, MDA_HEADER.size)
    if flags & RAW_LOCN_IGNORED or (offset, length) == (0, 0):
        return None
    room = size - MDA_HEADER_SIZE
    if not MDA_HEADER_SIZE <= offset < size or not 0 < length <= room or \
            length > MAX_TEXT:
        raise MapError(f"LVM2 metadata area at {start}: text at {offset} "
                       f"of {length} bytes outside its {size} bytes")
    first = min(length, size - offset)
    where = [(start + offset, first)]
    if first < length:                  # wraps round the circular buffer
        where.append((start + MDA_HEADER_SIZE, length - first))
    raw = b"".join(read_exact(read, o, n, "LVM2 text metadata")
                   for o, n in where)
    if calc_crc(raw) != text_crc:
        raise MapError(f"LVM2 metadata area at {start}: text metadata CRC "
                       f"mismatch")
    try:
        text = raw.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MapError(f"LVM2 metadata area at {start}: text metadata is "
                       f"not UTF-8 ({exc})") from None
    return Metadata(area, text, tuple(where))
