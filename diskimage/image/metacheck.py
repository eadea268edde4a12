"""The image's metadata and chunk fields checked against what the readers
use, before any of it is used.

The whole-image digest proves the metadata was not changed since the
trailer was written, not that it is sane: anyone can write an image (no
secret is needed, and a signature only says who did), and restore runs
as root on boot media.  So the JSON's shape is checked here once, as a
table of the keys the code reads and the type each must have, and every
number is bounded (offsets and sizes fit in 63 bits, which os.pwrite and
struct need; sector sizes are powers of two from 512 to 64 KiB; an area
lies inside the source disk).  Keys no reader uses are left alone, so
newer writers may add them.  A fault is a CorruptImageError naming the
key, e.g. "metadata: areas[3].size is not a whole number >= 0".
"""

import re

from ..errors import CorruptImageError

BIG = (1 << 63) - 1          # the largest offset or size os.pwrite takes
KINDS = ("none", "mbr", "gpt")
MAX_GPT_NUMBER = 131072      # gpt.MAX_ARRAY_SIZE of 128-byte entries
MAX_MBR_NUMBER = 4 + 256     # four primaries, mbr.MAX_EBRS logicals
_GUID = re.compile(r"[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\Z")
_MBR_TYPE = re.compile(r"0x[0-9A-Fa-f]{2}\Z")
_MBR_ID = re.compile(r"0x[0-9A-Fa-f]{8}\Z")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _size(value):
    return _is_int(value) and 0 <= value <= BIG


def _bits64(value):
    return _is_int(value) and 0 <= value < 1 << 64


def _sector(value):
    return _is_int(value) and 512 <= value <= 65536 and \
        not value & (value - 1)


def _text(value):
    return isinstance(value, str)


def _opt_text(value):
    return value is None or isinstance(value, str)


def _opt_size(value):
    return value is None or _size(value)


def _texts(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _numbers(value):
    return isinstance(value, list) and all(_size(v) for v in value)


_WHAT = {_size: "a whole number >= 0", _bits64: "64 bits of attributes",
         _sector: "a sector size (a power "
         "of two, 512 to 65536)", _text: "text", _opt_text: "text or null",
         _opt_size: "a whole number >= 0 or null", _texts: "a list of texts",
         _numbers: "a list of whole numbers >= 0",
         bool: "true or false", dict: "an object", list: "a list"}

# key -> (check, required)
AREA = {"kind": (_text, True), "start": (_size, True), "size": (_size, True),
        "partition": (_opt_size, False), "filesystem": (_opt_text, False),
        "used_bytes": (_opt_size, False), "total_bytes": (_opt_size, False),
        "block_size": (_opt_size, False), "method": (_text, False),
        "fallback": (_opt_text, False), "ebr_inside": (_size, False),
        "label": (_opt_text, False), "uuid": (_opt_text, False)}
SOURCE = {"size": (_size, True), "logical_sector_size": (_sector, False),
          "physical_sector_size": (_sector, False), "path": (_text, False)}
TABLE = {"kind": (_text, True), "sector_size": (_sector, False),
         "disk_size": (_size, False), "disk_id": (_text, False),
         "partitions": (list, False), "areas": (list, False),
         "extended": (list, False), "warnings": (_texts, False)}
PARTITION = {"number": (_size, True), "start": (_size, True),
             "size": (_size, True), "type": (_text, False),
             "uuid": (_text, False), "name": (_text, False),
             "attrs": (_bits64, False), "bootable": (bool, False)}
TABLE_AREA = {"kind": (_text, True), "start": (_size, True),
              "size": (_size, True)}
EXTENDED = {"number": (_size, True), "logicals": (_numbers, True)}
TOP = {"areas": (list, True), "source": (dict, True), "table": (dict, True),
       "tool": (_text, False), "created": (_text, False),
       "description": (_text, False), "mode": (_text, False),
       "compression": (dict, False), "history": (_texts, False)}


def _bad(where, what, offset):
    raise CorruptImageError(f"metadata: {where} is not {what}", offset=offset)


def _fields(obj, table, where, offset):
    if not isinstance(obj, dict):
        _bad(where or "the metadata", "an object", offset)
    for key, (check, required) in table.items():
        if key not in obj:
            if required:
                raise CorruptImageError(f"metadata: {where + '.' if where else ''}"
                                        f"{key} is missing", offset=offset)
            continue
        value = obj[key]
        ok = isinstance(value, check) if isinstance(check, type) \
            else check(value)
        if not ok:
            _bad(f"{where + '.' if where else ''}{key}", _WHAT[check], offset)


def _each(items, table, where, offset):
    for number, item in enumerate(items):
        _fields(item, table, f"{where}[{number}]", offset)


def check_metadata(meta, offset=None):
    """`meta` (decoded JSON) when it has the shape the readers use, else
    CorruptImageError at the metadata's `offset`."""
    _fields(meta, TOP, "", offset)
    _fields(meta["source"], SOURCE, "source", offset)
    _fields(meta["table"], TABLE, "table", offset)
    table = meta["table"]
    if table["kind"] not in KINDS:
        _bad("table.kind", "none, mbr or gpt", offset)
    for key in ("sector_size", "disk_size", "partitions", "disk_id"):
        if table["kind"] != "none" and key not in table:
            raise CorruptImageError(f"metadata: table.{key} is missing",
                                    offset=offset)
    _each(table.get("partitions", []), PARTITION, "table.partitions", offset)
    _each(table.get("areas", []), TABLE_AREA, "table.areas", offset)
    _each(table.get("extended", []), EXTENDED, "table.extended", offset)
    _check_table(table, offset)
    _each(meta["areas"], AREA, "areas", offset)
    disk = meta["source"]["size"]
    numbers = {p["number"] for p in table.get("partitions", [])}
    for number, area in enumerate(meta["areas"]):
        if area["start"] + area["size"] > disk:
            raise CorruptImageError(
                f"metadata: areas[{number}] ends at byte "
                f"{area['start'] + area['size']}, past the source disk's "
                f"{disk}", offset=offset)
        if area["kind"] == "partition" and area.get("partition") is None:
            raise CorruptImageError(f"metadata: areas[{number}] is a "
                                    f"partition without its number",
                                    offset=offset)
        if area["kind"] == "partition" and table["kind"] != "none" and \
                area["partition"] not in numbers:
            raise CorruptImageError(
                f"metadata: areas[{number}] is partition "
                f"{area['partition']}, which the table does not list",
                offset=offset)
    return meta


def _check_table(table, offset):
    """What restore writes back into a new table: GUIDs and type codes it
    parses, partition numbers it makes room for (a GPT's entry array is
    sized by the highest number)."""
    kind = table["kind"]
    if kind == "gpt" and not _GUID.match(str(table.get("disk_id"))):
        _bad("table.disk_id", "a GUID", offset)
    if kind == "mbr" and "disk_id" in table and \
            not _MBR_ID.match(table["disk_id"]):
        _bad("table.disk_id", "an MBR disk signature (0x1234abcd)", offset)
    highest = MAX_GPT_NUMBER if kind == "gpt" else MAX_MBR_NUMBER
    for number, part in enumerate(table.get("partitions", [])):
        where = f"table.partitions[{number}]"
        if not 1 <= part["number"] <= highest:
            _bad(f"{where}.number", f"a partition number 1 to {highest}",
                 offset)
        if kind == "gpt":
            for key in ("type", "uuid"):
                if not _GUID.match(str(part.get(key))):
                    _bad(f"{where}.{key}", "a GUID", offset)
        elif kind == "mbr" and not _MBR_TYPE.match(str(part.get("type"))):
            _bad(f"{where}.type", "an MBR type (0x83)", offset)


def check_chunk(metadata, area, disk_offset, length, offset=None,
                chunk=None):
    """A DATA or ZERO record's (or index entry's) fields against the
    metadata: its area exists and the bytes lie inside that area."""
    areas = metadata["areas"]
    if area >= len(areas):
        raise CorruptImageError(f"chunk of area {area}, but the image has "
                                f"{len(areas)} areas", offset=offset,
                                chunk=chunk)
    start, size = areas[area]["start"], areas[area]["size"]
    if disk_offset < start or disk_offset + length > start + size:
        raise CorruptImageError(
            f"chunk at disk bytes {disk_offset}-{disk_offset + length} is "
            f"outside its area {area} ({start}-{start + size})",
            offset=offset, chunk=chunk)
