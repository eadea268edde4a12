"""``bwpart install``, step by step, from a checked
:class:`~diskimage.service.plan.InstallPlan`.

The order (docs/bwpart.md, "What install changes"):

1. the areas the plan's snapshot holds are read again: a disk changed
   since the plan is refused, nothing written;
2. the record is built in memory (the snapshot is its "before");
3. with ``--shrink=N``: partition N's filesystem is shrunk (fs.resize on a
   loop device over it);
4. the new table (partition N smaller, the service partition added), read
   back and compared; partition N's filesystem checked;
5. mkfs.fat over the partition's FAT area;
6. the record, sealed (each area's after-digest), into the tail;
7. the FAT files: the BIOS loader (syslinux) when the boot code is one
   bwpart chains from, the UEFI loaders, environment slot e1, the loader
   configs that name it, and /bwpart/install.json last.

Nothing else: no boot code is changed and no NVRAM written (boot-next
does that, recording it).  The signals that end a command are held over
each table write and over the shrink; a failure (or a signal) after the
first write is a TargetChangedError that says what was written and that
``bwpart remove`` undoes it.
"""

from .. import sighold
from ..errors import TargetChangedError, TargetError
from ..sizes import format_size
from . import fatfs, layout, partition, record, tail


def _say(progress, text):
    if progress:
        progress(text)


def install(plan, progress=None):
    """Carry out *plan*; returns a summary dict."""
    disk = plan.disk
    now = record.current(disk, plan.areas)
    for area, data in zip(plan.areas, now):
        if record.sha256(data) != area["before_sha256"]:
            raise TargetError(f"{disk}: the {area['what']} area at byte "
                              f"{area['offset']} changed since the plan; "
                              f"nothing written; plan again")
    rec = record.new(disk=disk, table=plan.room.table, areas=plan.areas,
                     partition=plan.partition_row(),
                     shrunk=plan.room.to_dict()["shrink"], bios=plan.bios)
    done = []
    try:
        slot = _steps(plan, rec, done, progress)
    except BaseException as exc:
        if not done:
            raise
        said = str(exc) or type(exc).__name__
        raise TargetChangedError(
            f"{disk}: install failed after it {', '.join(done)}: {said}; "
            f"bwpart remove {disk} undoes what was written") from exc
    return {"disk": disk, "partition": plan.partition_row(),
            "part_id": plan.part_id, "shrunk": rec["shrunk"],
            "firmware": plan.firmware, "efi_loader": plan.efi_loader,
            "bios": plan.bios, "slot": slot, "steps": done}


def _steps(plan, rec, done, progress):
    disk, r = plan.disk, plan.room
    if r.shrink:
        number, kind, old, new = r.shrink
        part = next(p for p in r.table.partitions if p.number == number)
        _say(progress, f"shrinking partition {number} to {format_size(new)}")
        with sighold.held():
            done.append(f"shrank the filesystem of partition {number}")
            partition.shrink_fs(disk, part.start, old, kind, new)
    _say(progress, f"writing the new table (partition {r.number})")
    done.append("wrote the partition table")
    partition.apply(disk, plan.writes, "table")
    expected = {r.number: (r.start, r.size)}
    if r.shrink:
        expected[r.shrink[0]] = (part.start, r.shrink[3])
    table = partition.check_written(disk, expected)
    if r.shrink:
        _say(progress, f"checking partition {r.shrink[0]}")
        partition.check_fs(disk, part.start, r.shrink[3], r.shrink[1])
    new = next(p for p in table.partitions if p.number == r.number)
    service = partition.service_of(disk, table, new)
    if service.part_id != plan.part_id:
        raise TargetChangedError(f"{disk}: the new partition reads back "
                                 f"as {service.part_id}, not "
                                 f"{plan.part_id}")
    _say(progress, "formatting the service partition (FAT32)")
    done.append(f"formatted partition {r.number}")
    fatfs.format(service)
    record.seal(disk, rec["areas"])
    _say(progress, "writing the record to the tail")
    done.append("wrote the record")
    tail.write_record(service, rec)
    return _files(plan, service, rec, done, progress)


def _files(plan, service, rec, done, progress):
    """The FAT files, through part C's loaders and envslots."""
    from . import envslots, loaders
    done.append("wrote the loaders and the environment")
    if "code" in plan.bios:
        _say(progress, "installing the BIOS loader (syslinux)")
        loaders.install_bios(service)
    with fatfs.open_fat(service) as fat:
        _say(progress, f"installing the UEFI loader ({plan.efi_loader})")
        loaders.install_efi(fat, plan.bundle, plan.efi_loader)
        slot = envslots.write_slot(fat, plan.bundle, progress)
        envslots.switch(fat, slot, service, plan.efi_loader)
        _say(progress, f"writing {layout.RECORD_PATH}")
        fat.makedirs(layout.RECORD_PATH.rsplit("/", 1)[0])
        fat.put_checked(tail.encode(rec) + b"\n",
                        layout.RECORD_PATH + layout.NEW_SUFFIX)
        fat.rename(layout.RECORD_PATH + layout.NEW_SUFFIX,
                   layout.RECORD_PATH)
    return slot
