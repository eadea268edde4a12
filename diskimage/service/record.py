"""The install record: every byte area an install may change, with what it
held before and a digest of what the install left; the NVRAM variables
boot-next made; what the partition is.  Written twice: the tail's copy
(tail.py) and /bwpart/install.json on the FAT.

    {"format": 1, "tool": version, "installed": iso,
     "disk": {"size", "sector_size", "table", "disk_id"},
     "partition": {"number", "start", "size", "part_id", "type"},
     "shrunk": null | {"number", "fs", "old_size", "new_size"},
     "areas": [{"what", "offset", "size", "before" (base64),
                "before_sha256", "after_sha256"}],
     "nvram": [{"name", "guid", "before" (base64 or null), "after_sha256"}],
     "bios": {"code", "method"} | {"unsupported": reason}}

Areas: GPT: "lba0" (the protective MBR), "gpt-primary" (LBA 1, the
header, through the end of the entry array), "gpt-backup" (the backup
array through the backup header at the last LBA); MBR: "mbr" (sector 0)
and one "ebr" per extended boot record's sector.
"""

import base64
import datetime
import hashlib

from ..errors import DiskImageError, InputError, TableError
from ..host import device
from ..tables import gpt, mbr
from ..tables.partitions import read_table
from . import fields as f
from . import tail

FORMAT = 1
#: The biggest area an install records (a GPT's header and array of
#: 4096-byte sectors is 33 sectors), and the most areas (EBRs) it lists.
AREA_LIMIT, AREAS_LIMIT = 1 << 20, 256
AREA_NAMES = ("lba0", "gpt-primary", "gpt-backup", "mbr", "ebr")

_AREA = f.obj({"what": f.text(16, choices=AREA_NAMES),
               "offset": f.integer(), "size": f.integer(1, AREA_LIMIT),
               "before": f.b64(AREA_LIMIT),
               "before_sha256": f.text(64, f.HEX64),
               "after_sha256": f.nullable(f.text(64, f.HEX64))})
_NVRAM = f.obj({"name": f.text(16, f.VARIABLE), "guid": f.text(36, f.GUID),
                "before": f.nullable(f.b64(64 << 10)),
                "after_sha256": f.nullable(f.text(64, f.HEX64))})
SPEC = f.obj({
    "format": f.integer(FORMAT, FORMAT),
    "disk": f.obj({"size": f.integer(1),
                   "sector_size": f.integer(512, 65536),
                   "table": f.text(8, choices=("gpt", "mbr")),
                   "disk_id": f.nullable(f.text(64))}),
    "partition": f.obj({"number": f.integer(1, 256), "start": f.integer(1),
                        "size": f.integer(1),
                        "part_id": f.text(36, f.PART_ID),
                        "type": f.text(64)}),
    "shrunk": f.nullable(f.obj({"number": f.integer(1, 256),
                                "fs": f.text(64, f.WORD),
                                "old_size": f.integer(1),
                                "new_size": f.integer(1)})),
    "areas": f.items(_AREA, AREAS_LIMIT),
    "nvram": f.items(_NVRAM, 64),
}, {"tool": f.text(64), "installed": f.text(64),
    "efi_loader": f.text(8, choices=("shim", "grub")),
    "bios": f.nullable(f.obj(optional={"code": f.text(64),
                                       "method": f.text(64),
                                       "unsupported": f.text(1024)}))})


def validate(value, where):
    """*value* (a record read back) when every field it has is of its
    kind and in its bounds; InputError naming the field and *where*."""
    return f.run(SPEC, value, where, "the record")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def b64(data):
    return base64.b64encode(data).decode("ascii")


def unb64(text):
    return base64.b64decode(text.encode("ascii"), validate=True)


def _areas(read, size, table):
    """[(what, offset, size)] of every area an install may change."""
    ss = table.sector_size
    if table.kind == "gpt":
        found, reasons = gpt.read_gpt(read, size, ss)
        if found is None or found.backup_area is None:
            raise TableError(f"the GPT is not whole (both copies are needed "
                             f"for a record): {'; '.join(reasons) or 'no backup'}")
        first, end = found.primary_array
        back_first, back_end = found.backup_area
        return [("lba0", 0, ss),
                ("gpt-primary", gpt.PRIMARY_LBA * ss,
                 (max(end, gpt.PRIMARY_LBA + 1) - gpt.PRIMARY_LBA) * ss),
                ("gpt-backup", back_first * ss, (back_end - back_first) * ss)]
    if table.kind == "mbr":
        boot = mbr.read_boot_record(read, size)
        parsed, _ = mbr.read_mbr(read, boot, size, ss)
        ebrs = [("ebr", lba * ss, ss) for lba, _ in parsed.ebrs] \
            if parsed else []
        return [("mbr", 0, ss)] + ebrs
    raise TableError("no partition table: nothing to record")


def snapshot(disk, table=None):
    """The before-bytes of every area an install may change, as the
    record's "areas" list (after_sha256 still None: :func:`seal` fills
    it once the install has written)."""
    with device.open_source(str(disk)) as opened:
        if table is None:
            table = read_table(opened.read, opened.size)
        areas = []
        for what, offset, length in _areas(opened.read, opened.size, table):
            data = opened.read(offset, length)
            areas.append({"what": what, "offset": offset, "size": length,
                          "before": b64(data), "before_sha256": sha256(data),
                          "after_sha256": None})
    return areas


def seal(disk, areas):
    """Fill each area's after_sha256 from what the disk holds now (at the
    end of the install, or after update changed the table)."""
    with device.open_source(str(disk)) as opened:
        for area in areas:
            area["after_sha256"] = sha256(opened.read(area["offset"],
                                                      area["size"]))
    return areas


def current(disk, areas):
    """The bytes each area holds now, in order."""
    with device.open_source(str(disk)) as opened:
        return [opened.read(a["offset"], a["size"]) for a in areas]


def new(*, disk, table, areas, partition, shrunk=None, bios=None,
        tool=None, installed=None):
    """The whole record dict.  *disk* the path, *table* the
    PartitionTable read before the install, *partition* a dict (number,
    start, size, part_id, type) or anything with those attributes."""
    if tool is None:
        from .. import __version__ as tool
    if not isinstance(partition, dict):
        partition = {key: getattr(partition, key) for key in
                     ("number", "start", "size", "part_id", "type")}
    return {
        "format": FORMAT,
        "tool": tool,
        "installed": installed or datetime.datetime.now(
            datetime.timezone.utc).isoformat(timespec="seconds"),
        "disk": {"size": table.disk_size, "sector_size": table.sector_size,
                 "table": table.kind, "disk_id": table.disk_id},
        "partition": dict(partition),
        "shrunk": shrunk,
        "areas": areas,
        "nvram": [],
        "bios": bios,
    }


def check(record):
    """InputError unless *record* has what remove needs."""
    if record.get("format") != FORMAT:
        raise InputError(f"service record format {record.get('format')}, "
                         f"this tool reads format {FORMAT}")
    for area in record.get("areas", []):
        if area.get("after_sha256") is None:
            raise InputError(f"service record: area {area.get('what')} at "
                             f"byte {area.get('offset')} was never sealed "
                             f"(the install did not finish)")
        if sha256(unb64(area["before"])) != area["before_sha256"]:
            raise InputError(f"service record: area {area['what']} at byte "
                             f"{area['offset']}: before-bytes fail their "
                             f"sha256")
    return record


def _before_reader(opened, areas):
    """read(offset, length) of the disk as the areas' before-bytes say it
    was: the disk's bytes with each area's before-bytes laid over."""
    from ..tables import flags
    writes = [(a["offset"], unb64(a["before"])) for a in areas]

    def read(offset, length):
        return flags.overlay(opened.read(offset, length), offset, writes)
    return read


def check_areas(disk, record, service):
    """InputError (nothing written yet) unless the record's areas are the
    table areas of *disk* and their before-bytes a table remove may put
    back: each area one the disk's table kind defines (LBA 0, the GPT's
    primary header+array and its backup array+header at the end; MBR
    sector 0 and the EBRs of the chain), its length that area's, its
    before-bytes of that length and sha256; the table they make the
    disk's own without the service partition (partition N of "shrunk"
    with its old size, recorded in "shrunk" as the one that covered the
    service partition's space).  A forged record cannot aim its bytes
    into a partition's data or past the disk."""
    where = f"{disk}: service record"
    areas = record["areas"]
    with device.open_source(str(disk)) as opened:
        size = opened.size
        table = read_table(opened.read, size)
        if table.kind != record["disk"]["table"]:
            raise InputError(f"{where}: field disk.table is "
                             f"{record['disk']['table']}, the disk's table "
                             f"is {table.kind}")
        defined = {(o, n): w for w, o, n in _areas(opened.read, size, table)}
        seen = set()
        for index, area in enumerate(areas):
            name = f"field areas[{index}]"
            key = (area["offset"], area["size"])
            if defined.get(key) != area["what"] or key in seen:
                raise InputError(
                    f"{where}: {name} ({area['what']}, {area['size']} bytes "
                    f"at byte {area['offset']}) is not a table area of this "
                    f"{table.kind} disk; nothing written")
            seen.add(key)
            before = unb64(area["before"])
            if len(before) != area["size"] or \
                    sha256(before) != area["before_sha256"]:
                raise InputError(f"{where}: {name}.before is not "
                                 f"{area['size']} bytes of sha256 "
                                 f"before_sha256; nothing written")
        if not areas:
            return
        missing = [w for k, w in defined.items() if k not in seen]
        if missing and table.kind == "gpt":
            raise InputError(f"{where}: field areas lacks the "
                             f"{', '.join(missing)} area: a GPT is put "
                             f"back whole or not at all; nothing written")
        try:
            old = read_table(_before_reader(opened, areas), size)
        except (TableError, ValueError) as err:
            raise InputError(f"{where}: field areas: the before-bytes are "
                             f"no partition table ({err}); nothing "
                             f"written") from None
    _same_but_service(where, old, table, service, record.get("shrunk"))


def _same_but_service(where, old, now, service, shrunk):
    """InputError unless *old* (the table the record puts back) is *now*
    without the service partition, the shrunk one with its old size."""
    grown = (shrunk or {}).get("number")
    want = {p.number: (p.start, p.size) for p in now.partitions
            if p.start != service.start}
    have = {p.number: (p.start, p.size) for p in old.partitions}
    if grown is not None and grown in want and grown in have:
        if have[grown] != (want[grown][0], shrunk["old_size"]) or \
                want[grown][1] != shrunk["new_size"]:
            raise InputError(f"{where}: field shrunk: partition {grown} is "
                             f"{want[grown][1]} bytes now and "
                             f"{have[grown][1]} in the before-bytes, not "
                             f"{shrunk['new_size']} and "
                             f"{shrunk['old_size']}; nothing written")
        want[grown] = have[grown]
    if old.kind != now.kind or have != want:
        raise InputError(f"{where}: field areas: the before-bytes make a "
                         f"table that is not this disk's without the "
                         f"service partition; nothing written")


def area_state(area, data):
    """"installed" (as the install left it), "before" (as before the
    install) or "changed", for the bytes *data* the area holds now."""
    digest = sha256(data)
    if digest == area["after_sha256"]:
        return "installed"
    if digest == area["before_sha256"]:
        return "before"
    return "changed"


INTERRUPTED = "interrupted install: bwpart remove undoes it"


def whole(service):
    """True when the install that wrote the tail record finished: its
    last write, /bwpart/install.json on the FAT, is there (later writes
    of it go through X.new renamed over X, so it never goes away).  A
    tail record without it is an install cut short (a signal, a power
    cut): the partition is found, and only `bwpart remove` is for it."""
    from . import fatfs, layout
    try:
        with fatfs.open_fat(service) as fat:
            return fat.exists(layout.RECORD_PATH)
    except DiskImageError:
        return False


def write_both(service, record):
    """The record written to the tail, then to /bwpart/install.json on
    the FAT (as X.new, read back, renamed over X)."""
    from . import fatfs, layout
    tail.write_record(service, record)
    with fatfs.open_fat(service) as fat:
        fat.makedirs(layout.RECORD_PATH.rsplit("/", 1)[0])
        fat.put_checked(tail.encode(record) + b"\n",
                        layout.RECORD_PATH + layout.NEW_SUFFIX)
        fat.rename(layout.RECORD_PATH + layout.NEW_SUFFIX,
                   layout.RECORD_PATH)


def reseal(service):
    """After our own table change (partition.grow at update --size, with
    the grown Service): the areas' after_sha256 taken again, the
    partition's size noted, both copies rewritten, so remove takes the
    new table as the install's."""
    record = tail.read_record(service)
    if record is None:
        raise InputError(f"{service.disk}: no service record to reseal")
    seal(service.disk, record["areas"])
    record["partition"]["size"] = service.size
    write_both(service, record)
    return record


def add_nvram(service, name, guid, before, after=None):
    """Note a UEFI variable boot-next wrote (*before*: its bytes before,
    None when it did not exist; *after*: what was written) and rewrite
    both copies of the record.  A variable already noted keeps its first
    before-bytes (the ones before the install)."""
    record = tail.read_record(service)
    if record is None:
        raise InputError(f"{service.disk}: no service record to add "
                         f"{name} to")
    after_sha = sha256(after) if after is not None else None
    for item in record.setdefault("nvram", []):
        if item["name"] == name and item["guid"] == guid:
            item["after_sha256"] = after_sha
            break
    else:
        record["nvram"].append({
            "name": name, "guid": guid,
            "before": b64(before) if before is not None else None,
            "after_sha256": after_sha})
    write_both(service, record)
    return record
