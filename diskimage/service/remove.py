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
from ..tables import flags
from . import arming, efiboot, layout, loadoption, lock, partition
from . import record as records
from . import state as states
from . import tail
from .efivars import Efivars
from .status import find_or_repair

MiB = 1 << 20
ACTIVE = 0x80


def arming_writes(disk, state, table=None):
    """The writes that undo the BIOS flags arming set ([] when not armed
    for BIOS), from what state.armed.bios saved: part E's {"method":
    "active-flag", "flags_before": {slot: byte}} or {"method":
    "legacy-attr", "attrs_before": {number: attrs}}, or flags.snapshot's
    {"table": ...}."""
    armed = (state or {}).get("armed") or {}
    bios = armed.get("bios") or {}
    if armed.get("firmware") != "bios" or not bios:
        return []
    saved = bios.get("flags_before")
    if bios.get("method") == "active-flag":
        # each boot indicator byte as it was, exactly (as arming.disarm)
        with device.open_source(disk) as opened:
            sector0 = opened.read(0, 512)
        return [(flags.mbr_indicator(int(n)), bytes([flag]))
                for n, flag in sorted(saved.items())
                if sector0[flags.mbr_indicator(int(n))] != flag]
    if bios.get("method") == "legacy-attr":
        now = flags.gpt_attrs(disk, table)
        want = {int(n): a for n, a in bios["attrs_before"].items()
                if int(n) in now and now[int(n)] != a}
        return flags.gpt_attr_writes(disk, table, want) if want else []
    if saved and "table" in saved:
        return flags.restore_writes(disk, table, saved)
    return []


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
    if grow is not None and \
            all(p.number != number for p in table.partitions):
        have = ", ".join(str(p.number) for p in table.partitions)
        raise InputError(f"{disk}: --grow={number}: has no partition "
                         f"{number} (partitions: {have})")
    if number == service.number:
        raise TargetError(f"{disk}: --grow={number}: partition {number} is "
                          f"the service partition itself: grow the one "
                          f"directly before it")
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
    if table.kind == "mbr" and number >= 5:
        raise TargetError(f"{disk}: partition {number} is a logical "
                          f"partition: bwpart grows only a primary over the "
                          f"service partition's space")
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


def _not_ours(item, now, service):
    """Why the variable *now* ((attrs, data) or None) is not one remove
    may delete or write back (a record is input: it could name the
    machine's own Boot0000), or None.  Ours: a Boot#### we made whose load
    option points at the service partition's /EFI/rdeploy/ loader, or a
    variable still holding what we wrote (after_sha256)."""
    if now is None:
        return None
    if item.get("after_sha256") and \
            records.sha256(now[1]) == item["after_sha256"]:
        return None
    if item["before"] is None and item["name"] not in ("BootOrder",
                                                       "BootNext"):
        try:
            option = loadoption.parse(now[1])
        except DiskImageError:
            return "not a load option bwpart made"
        hd, path = option["hd"] or {}, (option["file"] or "").lower()
        if hd.get("start") == service.start // service.sector_size and \
                path.replace("/", "\\").startswith("\\efi\\rdeploy\\"):
            return None
        return "not the service partition's entry (the record says it is)"
    return "changed since bwpart wrote it"


def _nvram_restore(record, variables, notes, service):
    """Put back the UEFI variables the record lists: a Boot#### it made
    deleted (and taken out of BootOrder, efiboot.delete_entry), any other
    variable written back as it was before (deleted when it was not)."""
    items = record.get("nvram") or []
    if not items:
        return []
    if variables is None:
        notes.append("NVRAM entries not put back: this machine was not "
                     "booted by UEFI (" + ", ".join(v["name"] for v in items)
                     + " stay in the firmware of the machine that made "
                     "them)")
        return []
    done = []
    for item in reversed(items):
        name, guid = item["name"], item["guid"]
        now = variables.read(name, guid)
        why = _not_ours(item, now, service)
        if why:
            notes.append(f"{name} left as it is: {why}")
            continue
        if item["before"] is None:
            if guid == efiboot.EFI_GLOBAL_VARIABLE and \
                    name.startswith("Boot") and len(name) == 8:
                changed = efiboot.delete_entry(variables, name)
            else:
                changed = [name] if variables.delete(name, guid) else []
            done.append(f"{name} deleted" if name in changed
                        else f"{name} was gone already")
            continue
        before = records.unb64(item["before"])
        if now is None or now[1] != before:
            variables.write(name, guid, before)
        done.append(f"{name} put back")
    return done


def _variables(needed, given=None):
    """The Efivars (*given*, else this machine's) when *needed* and they
    are there, else None."""
    if not needed:
        return None
    variables = given if given is not None else Efivars()
    return variables if variables.available() else None


def _disarm(service, state, variables, notes):
    """arming.disarm; UEFI arming on a machine without efivars is left
    (BootNext and BootOrder live in the firmware of the machine that set
    them), with a note."""
    armed = state.get("armed")
    if not armed:
        return None
    if armed.get("firmware") == "uefi" and variables is None:
        notes.append("armed for UEFI: BootOrder and BootNext not put back "
                     "(this machine was not booted by UEFI)")
        return None
    arming.disarm(service, vars=variables, st=state)
    return armed.get("firmware")


def _grow_table(disk, prev, new_size):
    """Partition *prev* made *new_size* bytes long (both GPT copies, or
    its MBR record), with partition's own table writes."""
    table, sector0 = partition.read_disk(disk)
    partition.apply(disk, partition.table_writes(
        table, sector0, {prev.number: new_size}), "table")
    partition.check_written(disk, {prev.number: (prev.start, new_size)})


def remove(disk, grow=None, progress=None, efivars=None):
    """Take the service partition off *disk* (module docstring); returns
    a summary dict.  Destructive: the command asks first.  *efivars*: the
    UEFI variables to put back (default: this machine's efivarfs).  Holds
    the disk's lock (lock.held) throughout."""
    disk = os.fspath(disk)
    with lock.held(disk):
        return _remove(disk, grow, progress, efivars)


def check(disk, grow=None, efivars=None):
    """Every check remove makes, nothing written (the command calls it
    before it prints what remove would do): TargetError / InputError as
    remove's."""
    disk = os.fspath(disk)
    with lock.held(disk):
        _remove(disk, grow, None, efivars, dry=True)


def _remove(disk, grow, progress, efivars, dry=False):
    say = progress or (lambda text: None)
    service, why = find_or_repair(disk)
    if service is None:
        raise TargetError(f"{disk}: no service partition (no partition of "
                          f"the service type with a valid record in its "
                          f"tail)" + (f": {why}" if why else ""))
    record = tail.read_record(service)
    try:
        records.check(record)
    except InputError as err:
        raise TargetError(f"{disk}: {err}") from None
    records.check_areas(disk, record, service)
    table = partition.read_disk(disk)[0]
    try:
        state, lost = states.load(service), None
    except tail.Damaged as err:
        # both state slots damaged: what arming set is read from the
        # record (fallback), and thrown back from it first
        from . import fallback
        state, lost = states.empty(), err
        undo = fallback.armed_by_record(service, efivars, record)["bios"]
    else:
        undo = arming_writes(disk, state, table)
    _check_areas(disk, record, undo)
    plan = _grow_plan(disk, table, service, record, grow)
    armed = state.get("armed") or {}
    variables = _variables(record.get("nvram") or
                           armed.get("firmware") == "uefi", efivars)
    if dry:
        return None

    done, notes, grown = [], [], None
    try:
        if lost is not None:
            from . import fallback
            say("disarming from the install record (the state is damaged)")
            notes.append(f"state damaged: {lost}; disarmed from the install "
                         f"record")
            thrown = fallback.disarm_from_record(service, variables, record)
            if thrown:
                done.append("disarmed from the record (" + ", ".join(thrown)
                            + ")")
        else:
            say("disarming")
            firmware = _disarm(service, state, variables, notes)
            if firmware:
                done.append(f"disarmed ({firmware})")
        if record.get("nvram"):
            say("putting the NVRAM entries back")
        done += _nvram_restore(record, variables, notes, service)
        say("putting the partition table back")
        writes = [(area["offset"], records.unb64(area["before"]))
                  for area, data in zip(record["areas"], records.current(
                      disk, record["areas"]))
                  if data != records.unb64(area["before"])]
        partition.apply(disk, writes, "table")
        done.append("partition table put back")
        say("zeroing the service partition's first and last MiB")
        partition.apply(disk, [(service.start, bytes(MiB)),
                               (service.tail_offset, bytes(layout.TAIL_SIZE))],
                        "service partition")
        done.append("service partition wiped (first and last MiB)")
        if plan:
            prev, table_size, fs_size, kind = plan
            say(f"growing partition {prev.number} ({kind})")
            if table_size is not None:
                _grow_table(disk, prev, table_size)
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
