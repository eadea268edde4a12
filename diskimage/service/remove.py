"""`bwpart remove`: everything put back as the record says.

Checked first, nothing written before every check passed:

* the disk has a service partition whose tail record is whole;
* every area the install changed (table, boot code) still holds what the
  install left, or only our own later change (the BIOS flags arming set,
  laid back in memory for the check): otherwise TargetError naming the
  area, since the table was changed since and its before-bytes would
  undo someone else's change;
* with grow=N: N is the partition directly before the service partition,
  not mounted, its filesystem one the library grows.

Then, in this order: disarm (state.armed: arming.disarm, or the saved
flags written back), the NVRAM variables the record lists put back
(Boot#### entries deleted, BootOrder as before), every area's
before-bytes written (fsync), the service partition's first MiB and its
tail MiB zeroed so nothing finds it again, and the filesystem grown: the
one install shrank (its partition has its old size again with the
table), or partition N's, grown in the table over the freed space first.
A failure after the first write is TargetChangedError saying what was done.
"""

import os

from ..errors import (DiskImageError, InputError, TargetChangedError,
                      TargetError)
from ..fs import registry
from ..fs import resize as fsresize
from ..host import device, inuse
from ..host.tools import run
from ..tables import flags
from . import record as records
from . import state as states
from . import tail
from .status import find_service, read_disk_table

MiB = 1 << 20


def arming_writes(disk, state, table=None):
    """The writes that undo the BIOS flags arming set ([] when not armed
    for BIOS): what state.armed.bios.flags_before saved."""
    armed = (state or {}).get("armed") or {}
    saved = (armed.get("bios") or {}).get("flags_before")
    if armed.get("firmware") != "bios" or not saved:
        return []
    return flags.restore_writes(disk, table, saved)


def _check_areas(disk, record, undo):
    for area, data in zip(record["areas"],
                          records.current(disk, record["areas"])):
        seen = flags.overlay(data, area["offset"], undo)
        if records.area_state(area, seen) == "changed":
            end = area["offset"] + area["size"]
            raise TargetError(
                f"{disk}: the {area['what']} area (bytes {area['offset']} "
                f"to {end}) was changed since bwpart install: putting its "
                f"old bytes back would undo that change; nothing written")


def _grow_plan(disk, table, service, record, grow):
    """(partition, new partition size or None, fs kind) of the grow, or
    None; TargetError when it cannot be done."""
    shrunk = record.get("shrunk")
    number = grow if grow is not None else (shrunk or {}).get("number")
    if number is None:
        return None
    before = [p for p in table.partitions if p.end <= service.start]
    if not before:
        raise TargetError(f"{disk}: no partition before the service "
                          f"partition to grow")
    prev = max(before, key=lambda p: p.start)
    if prev.number != number:
        raise TargetError(f"{disk}: partition {number} is not the one "
                          f"directly before the service partition "
                          f"(partition {prev.number} is): only that one "
                          f"can grow over its space")
    for start, end, point, dev in inuse.rw_mounts(disk):
        if start < prev.end and prev.start < end:
            raise TargetError(f"{disk}: partition {number} is mounted at "
                              f"{point}: it cannot grow while mounted")
    with device.open_source(disk) as opened:
        kind = registry.detect(opened.read, prev.start, prev.size)
    if kind is None or not fsresize.can_grow(kind):
        raise TargetError(f"{disk}: partition {number} "
                          f"({kind or 'no filesystem known'}) cannot be "
                          f"grown by this tool")
    if shrunk and shrunk.get("number") == number:
        # the table put back gives it its old size: the filesystem follows
        return prev, None, shrunk["old_size"], kind
    new_size = service.start + service.size - prev.start
    return prev, new_size, new_size, kind


def _nvram_restore(record, notes):
    """Put back the UEFI variables the record lists (part D's efivars)."""
    items = record.get("nvram") or []
    if not items:
        return []
    try:
        from .efivars import Efivars
    except ImportError:
        notes.append("NVRAM: not put back (efivars not merged); "
                     "entries: " + ", ".join(v["name"] for v in items))
        return []
    variables = Efivars()
    if not variables.available():
        notes.append("NVRAM: not put back: this machine was not booted by "
                     "UEFI (entries: " + ", ".join(v["name"] for v in items)
                     + ")")
        return []
    done = []
    made = {int(v["name"][4:], 16) for v in items
            if v["name"].startswith("Boot") and v["name"][4:].isalnum()
            and len(v["name"]) == 8 and v["before"] is None}
    for item in reversed(items):
        name, guid = item["name"], item["guid"]
        now = variables.read(name, guid)
        if item["before"] is None:
            if now is not None:
                variables.delete(name, guid)
            done.append(f"{name} deleted")
            continue
        before = records.unb64(item["before"])
        if now is not None and item.get("after_sha256") not in (
                None, records.sha256(now[1])) and name == "BootOrder":
            # changed since by someone else: only our entries leave it
            order = [int.from_bytes(now[1][i:i + 2], "little")
                     for i in range(0, len(now[1]) - 1, 2)]
            before = b"".join(n.to_bytes(2, "little") for n in order
                              if n not in made)
        variables.write(name, guid, before)
        done.append(f"{name} put back")
    return done


def _disarm(service, state, undo):
    armed = state.get("armed")
    if not armed:
        return None
    try:
        from . import arming
    except ImportError:
        arming = None
    if arming is not None:
        arming.disarm(service)
    else:       # _can_disarm said BIOS
        flags.apply(service.disk, undo)
    return armed.get("firmware")


def _can_disarm(service, state):
    armed = state.get("armed")
    if not armed or armed.get("firmware") == "bios":
        return
    try:
        from . import arming  # noqa: F401
    except ImportError:
        raise TargetError(f"{service.disk}: armed for UEFI and the arming "
                          f"module is not there to disarm it; nothing "
                          f"written") from None


def _grow_table(disk, table, prev, new_size):
    """Partition *prev* made *new_size* bytes long (sfdisk -N)."""
    sectors = new_size // table.sector_size
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", "-N",
         str(prev.number), disk], input=f"{prev.start // table.sector_size},"
        f"{sectors}\n", what=f"{disk}: grow partition {prev.number}")


def remove(disk, grow=None, progress=None):
    """Take the service partition off *disk* (module docstring); returns
    a summary dict.  Destructive: the command asks first."""
    disk = os.fspath(disk)
    say = progress or (lambda text: None)
    service = find_service(disk)
    if service is None:
        raise TargetError(f"{disk}: no service partition (no partition of "
                          f"the service type with a valid record in its "
                          f"tail)")
    record = tail.read_record(service)
    try:
        records.check(record)
    except InputError as err:
        raise TargetError(f"{disk}: {err}") from None
    state = states.load(service)
    table = read_disk_table(disk)
    undo = arming_writes(disk, state, table)
    _check_areas(disk, record, undo)
    plan = _grow_plan(disk, table, service, record, grow)
    _can_disarm(service, state)

    done, notes = [], []
    try:
        say("disarming")
        firmware = _disarm(service, state, undo)
        if firmware:
            done.append(f"disarmed ({firmware})")
        say("putting the NVRAM entries back")
        done += _nvram_restore(record, notes)
        say("putting the partition table back")
        target = device.open_target(disk, exclusive=False)
        try:
            for area, data in zip(record["areas"],
                                  records.current(disk, record["areas"])):
                before = records.unb64(area["before"])
                if data != before:
                    device.write_all(target, area["offset"], before)
            device.sync(target)
            done.append("partition table put back")
            say("zeroing the service partition's first and last MiB")
            device.write_all(target, service.start, bytes(MiB))
            device.write_all(target, service.tail_offset, bytes(MiB))
            device.sync(target)
            done.append("service partition wiped (first and last MiB)")
        finally:
            target.close()
        grown = None
        if plan:
            prev, table_size, fs_size, kind = plan
            say(f"growing partition {prev.number} ({kind})")
            if table_size is not None:
                _grow_table(disk, table, prev, table_size)
                done.append(f"partition {prev.number} grown in the table")
            what = f"{disk}: partition {prev.number}"
            with fsresize.region(disk, prev.start, fs_size) as dev:
                fsresize.resize(kind, dev, fs_size, what)
            grown = {"number": prev.number, "fs": kind, "size": fs_size}
            done.append(f"partition {prev.number}'s {kind} grown")
    except DiskImageError as err:
        if isinstance(err, TargetChangedError):
            raise
        said = "; ".join(done) or "nothing yet"
        raise TargetChangedError(
            f"{disk}: remove failed: {err}; done: {said}") from None
    return {"disk": disk, "partition": service.number, "done": done,
            "grown": grown, "notes": notes,
            "areas": [a["what"] for a in record["areas"]]}
