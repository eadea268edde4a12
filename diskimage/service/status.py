"""What is installed on a disk, pending and stored: `bwpart status`.

    {"disk", "installed": bool, "interrupted": bool (the install was cut
     short: only remove is for it), "partition": {number, start, size,
     part_id, table}, "installed_at", "tool", "env": {"slot", "version",
     "id", "built", "loaders": {"bios", "uefi"} (the slot each boots),
     "leftovers": {"slots", "new"} (envslots.leftovers)} | None, "size", "free", "store": [{name, size}], "job": {name, sha256,
     tries, used, left} | None, "armed": state.armed, "last": state.last,
     "remove": {"areas": [{what, offset, size, state}], "nvram":
     [{name, guid, action}], "shrunk", "can_remove": bool}, "restore":
     [the same as lines of text], "state_damaged": None | why (both
     state slots damaged: "armed" is then what the install record says,
     with "from_record": true), "notes": []}

An area's state: "installed" (as the install left it: remove puts the
before-bytes back), "before" (already as before the install) or "changed"
(changed since: remove refuses).
"""

import os

from ..errors import DiskImageError
from . import partition
from . import record as records
from . import state as states
from . import tail


def find_service(disk):
    """The disk's service partition, or None (partition.find_service)."""
    return partition.find_service(os.fspath(disk))


def why_not_found(disk):
    """When find_service found nothing: a line about each partition of the
    service type whose tail holds no record and that is not ours (an MBR
    0x1c of someone else's; None if there is none of that type)."""
    table = read_disk_table(disk)
    said = [f"partition {part.number} has the service type but its tail "
            f"holds no record (not a service partition)"
            for part in table.partitions
            if partition.is_service_type(table, part)]
    return "; ".join(said) or None


def find_or_repair(disk):
    """(Service or None, why): find_service (DamagedService, an
    InputError naming the copy and its offset, when neither copy of the
    record is whole); a tail copy damaged or missing beside a whole
    /bwpart/install.json is written back (tail.read_record) and *why*
    says so."""
    service = find_service(disk)
    if service is None:
        return None, why_not_found(disk)
    why = partition.tail_check(service)
    if why is None:
        return service, None
    tail.read_record(service)           # the FAT copy written back
    return service, (f"partition {service.number}: {why}: written back from "
                     f"{tail.INSTALL_JSON} (whole)")


def read_disk_table(disk):
    return partition.read_disk(os.fspath(disk))[0]


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


SAID = {"installed": "put back as before install",
        "before": "as before install already",
        "changed": "CHANGED since install: remove refuses"}


def restore_lines(view):
    """What remove would restore, one line each (for the text output)."""
    lines = [f"{a['what']} (bytes {a['offset']} to "
             f"{a['offset'] + a['size']}): {SAID[a['state']]}"
             for a in view["areas"]]
    lines += [f"UEFI {v['name']}: {'deleted' if v['action'] == 'delete' else 'put back'}"
              for v in view["nvram"]]
    if view["shrunk"]:
        lines.append(f"partition {view['shrunk']['number']}'s "
                     f"{view['shrunk']['fs']}: grown back to "
                     f"{view['shrunk']['old_size']} bytes")
    return lines


def _fat_facts(service, result):
    """The active environment, the FAT's free space and the store."""
    from . import envslots, fatfs, store
    try:
        with fatfs.open_fat(service) as fat:
            slot, info = envslots.active(fat)
            info = info or {}
            result["env"] = {"slot": slot, "version": info.get("version"),
                             "id": info.get("id"),
                             "built": info.get("built"),
                             "loaders": envslots.loader_slots(fat),
                             "leftovers": envslots.leftovers(fat)}
            left = envslots.left_text(fat)
            if left:
                result["notes"].append(left)
            result["free"] = fat.free()
            result["store"] = store.ls(service, fat)
    except DiskImageError as err:
        result["notes"].append(f"the service FAT: {err}")


def _state_damaged(service, record, err, result):
    """Both state slots damaged: "state_damaged" says so, "armed" is
    what the install record says is armed (fallback.armed_by_record: our
    flag on the table, our Boot#### in BootOrder), and the BIOS flags
    arming set count as our own change in what remove would restore.
    Returns (an empty state with that "armed", the flag writes)."""
    from . import fallback
    seen = fallback.armed_by_record(service, rec=record)
    state = states.empty()
    if seen["bios"]:
        method = "active-flag" if service.table_kind == "mbr" else \
            "legacy-attr"
        state["armed"] = {"firmware": "bios", "bios": {"method": method},
                          "from_record": True}
    elif seen["uefi"]:
        state["armed"] = {"firmware": "uefi",
                          "uefi": {"entry": seen["uefi"][0]},
                          "from_record": True}
    result["state_damaged"] = str(err)
    result["notes"].append(
        f"state damaged: {err}; the install record says armed: "
        f"{', '.join(seen['lines']) or 'nothing'}; bwpart remove or "
        f"bwpart boot-next disarms from the record")
    return state, seen["bios"]


def status(disk):
    """The status dict of *disk* (see the module docstring)."""
    disk = os.fspath(disk)
    result = {"disk": disk, "installed": False, "interrupted": False,
              "partition": None,
              "installed_at": None, "tool": None, "env": None,
              "size": None, "free": None, "store": [], "job": None,
              "armed": None, "last": None, "remove": None, "restore": [],
              "state_damaged": None, "notes": []}
    service, why = find_or_repair(disk)
    if why:
        result["notes"].append(why)
    if service is None:
        return result
    record = tail.read_record(service)
    result["interrupted"] = not records.whole(service)
    if result["interrupted"]:
        result["notes"].append(records.INTERRUPTED)
    result.update(installed=True, size=service.size,
                  installed_at=record.get("installed"),
                  tool=record.get("tool"),
                  partition={"number": service.number,
                             "start": service.start, "size": service.size,
                             "part_id": service.part_id,
                             "table": service.table_kind})
    armed_writes = None
    try:
        state = states.load(service)
    except tail.Damaged as err:
        state, armed_writes = _state_damaged(service, record, err, result)
    job = state["job"]
    if job:
        result["job"] = {"name": job["name"], "sha256": job["sha256"],
                         "tries": job["tries"], "used": job["used"],
                         "left": states.tries_left(state)}
    result["armed"], result["last"] = state["armed"], state["last"]
    from .remove import arming_writes
    if armed_writes is None:
        armed_writes = arming_writes(disk, state)
    result["remove"] = remove_view(disk, record, armed_writes)
    result["restore"] = restore_lines(result["remove"])
    _fat_facts(service, result)
    return result
