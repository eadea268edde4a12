"""What is installed on a disk, pending and stored: `bwpart status`.

    {"disk", "installed": bool, "partition": {number, start, size,
     part_id, table}, "installed_at", "tool", "env": {"slot", "version"} |
     None, "size", "free", "store": [{name, size}], "job": {name, sha256,
     tries, used, left} | None, "armed": state.armed, "last": state.last,
     "remove": {"areas": [{what, offset, size, state}], "nvram":
     [{name, guid, action}], "shrunk", "can_remove": bool}, "notes": []}

An area's state: "installed" (as the install left it: remove puts the
before-bytes back), "before" (already as before the install) or "changed"
(changed since: remove refuses).
"""

import os
from dataclasses import dataclass

from ..errors import DiskImageError
from ..host import device
from ..tables.partitions import read_table
from . import record as records
from . import state as states
from . import tail

GPT_TYPE = "b10262f8-ab25-4a01-be00-a2803022d1bf"
MBR_TYPE = "0x1c"


@dataclass
class Service:
    """Stand-in for partition.Service (part A) until it is merged."""
    disk: str
    number: int
    start: int
    size: int
    table_kind: str
    part_id: str

    @property
    def fs_size(self):
        return self.size - tail.TAIL_SIZE

    @property
    def tail_offset(self):
        return self.start + self.size - tail.TAIL_SIZE


def read_disk_table(disk):
    with device.open_source(str(disk)) as opened:
        return read_table(opened.read, opened.size)


def find_service(disk):
    """The disk's service partition, or None: partition.find_service when
    part A's module is there, else the same rule here (the service type
    and a valid record in its tail; a type alone is never trusted)."""
    try:
        from .partition import find_service as found
    except ImportError:
        found = None
    if found is not None:
        return found(str(disk))
    table = read_disk_table(disk)
    for p in table.partitions:
        kind = p.type.lower()
        if not (table.kind == "gpt" and kind == GPT_TYPE or
                table.kind == "mbr" and kind == MBR_TYPE):
            continue
        if p.size <= tail.TAIL_SIZE:
            continue
        part_id = p.uuid if table.kind == "gpt" else \
            f"{table.disk_id[2:]}-{p.number:02d}"
        service = Service(str(disk), p.number, p.start, p.size, table.kind,
                          part_id)
        try:
            if tail.read_record(service, fat_copy=False) is not None:
                return service
        except tail.Damaged:
            continue
    return None


def remove_view(disk, record, armed_writes=()):
    """What remove would do with each area and NVRAM variable."""
    from ..tables import flags
    areas = []
    for area, data in zip(record["areas"],
                          records.current(disk, record["areas"])):
        seen = flags.overlay(data, area["offset"], armed_writes)
        areas.append({"what": area["what"], "offset": area["offset"],
                      "size": area["size"],
                      "state": records.area_state(area, seen)})
    nvram = [{"name": v["name"], "guid": v["guid"],
              "action": "delete" if v["before"] is None else "put back"}
             for v in record.get("nvram", [])]
    return {"areas": areas, "nvram": nvram, "shrunk": record.get("shrunk"),
            "can_remove": all(a["state"] != "changed" for a in areas)}


def _fat_facts(service, result):
    """The env version, free space and store, from part C's modules."""
    try:
        from . import envslots, fatfs, store
    except ImportError:
        result["notes"].append("environment, free space and store: not "
                               "read (bw-files not merged)")
        return
    try:
        with fatfs.open_fat(service) as fat:
            slot, info = envslots.active(fat)
            result["env"] = {"slot": slot,
                             "version": (info or {}).get("version")}
            result["free"] = fat.free()
        result["store"] = store.ls(service)
    except DiskImageError as err:
        result["notes"].append(f"the service FAT: {err}")


def status(disk):
    """The status dict of *disk* (see the module docstring)."""
    disk = os.fspath(disk)
    result = {"disk": disk, "installed": False, "partition": None,
              "installed_at": None, "tool": None, "env": None,
              "size": None, "free": None, "store": [], "job": None,
              "armed": None, "last": None, "remove": None, "notes": []}
    service = find_service(disk)
    if service is None:
        return result
    record = tail.read_record(service)
    result.update(installed=True, size=service.size,
                  installed_at=record.get("installed"),
                  tool=record.get("tool"),
                  partition={"number": service.number,
                             "start": service.start, "size": service.size,
                             "part_id": service.part_id,
                             "table": service.table_kind})
    try:
        state = states.load(service)
    except tail.Damaged as err:
        result["notes"].append(str(err))
        state = states.empty()
    job = state["job"]
    if job:
        result["job"] = {"name": job["name"], "sha256": job["sha256"],
                         "tries": job["tries"], "used": job["used"],
                         "left": states.tries_left(state)}
    result["armed"], result["last"] = state["armed"], state["last"]
    from .remove import arming_writes
    result["remove"] = remove_view(disk, record,
                                   arming_writes(disk, state))
    _fat_facts(service, result)
    return result
