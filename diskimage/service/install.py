"""``bwpart install``, step by step, from a checked
:class:`~diskimage.service.plan.InstallPlan`.

The order (docs/bwpart.md, "What install changes"):

1. the areas the plan's snapshot holds are read again: a disk changed
   since the plan is refused, nothing written;
2. the record is built in memory (the snapshot is its "before");
3. with ``--shrink=N``: partition N's filesystem is shrunk (fs.resize on a
   loop device over it);
4. the new table (partition N smaller, the service partition added), read
   back and compared;
5. the record, sealed (each area's after-digest), into the tail (past
   the FAT area, so mkfs.fat leaves it): from here on ``bwpart remove``
   finds the partition and undoes everything;
6. partition N's filesystem checked; mkfs.fat over the FAT area;
7. the FAT files: the BIOS loader (syslinux) when the boot code is one
   bwpart chains from, the UEFI loaders, environment slot e1, the loader
   configs that name it, and /bwpart/install.json last.

Nothing else: no boot code is changed and no NVRAM written (boot-next
does that, recording it).  The signals that end a command are held over
each table write and over the shrink; a failure (or a signal) after the
first write is a TargetChangedError that says what was written and that
``bwpart remove`` undoes it; a failure before the record is in the tail
puts the table's before-bytes back and grows a shrunk filesystem back.
"""

from .. import sighold
from ..errors import TargetChangedError, TargetError
from ..sizes import format_size
from . import fatfs, layout, lock, partition, record, tail


def _say(progress, text):
    if progress:
        progress(text)


class _Done:
    """What the install has written so far, for the message of a failure."""

    def __init__(self):
        self.steps = []             # done, in order
        self.doing = None           # the write under way, if any
        self.shrunk = None          # (start, old size, kind, new size)
        self.table = False
        self.recorded = False

    def __bool__(self):
        return bool(self.steps or self.doing)

    def begin(self, doing):
        self.doing = doing

    def end(self, did):
        self.steps.append(did)
        self.doing = None

    def said(self):
        """"after it wrote X, wrote Y, while Z" (only what was done)."""
        text = f"after it {', '.join(self.steps)}" if self.steps else ""
        if self.doing:
            text += f"{', ' if text else ''}while {self.doing}"
        return text


def install(plan, progress=None):
    """Carry out *plan*; returns a summary dict.  Holds the disk's lock
    (lock.held: BusyError while another bwpart changes it) from the
    check of the plan's areas to the last file."""
    with lock.held(plan.disk):
        return _install(plan, progress)


def _install(plan, progress):
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
    rec["efi_loader"] = plan.efi_loader     # what arming's Boot#### starts
    done = _Done()
    try:
        slot = _steps(plan, rec, done, progress)
    except BaseException as exc:
        if not done:
            raise
        if isinstance(exc, KeyboardInterrupt):
            # a signal ends the command as a signal (exit 128 + N), with
            # what was written and how it is undone (cliutil.runner)
            exc.done = _failed(plan, done, exc)
            raise
        raise TargetChangedError(_failed(plan, done, exc)) from exc
    return {"disk": disk, "partition": plan.partition_row(),
            "part_id": plan.part_id, "shrunk": rec["shrunk"],
            "firmware": plan.firmware, "efi_loader": plan.efi_loader,
            "bios": plan.bios, "slot": slot, "steps": done.steps}


def _failed(plan, done, exc):
    """The message of a failure after the first write.  Once the record is
    in the tail, bwpart remove undoes it all; before that the install
    puts back what it changed itself: the table's before-bytes, the
    shrunk filesystem grown back."""
    disk = plan.disk
    said = "interrupted" if isinstance(exc, KeyboardInterrupt) else \
        (str(exc) or type(exc).__name__)
    head = f"{disk}: install failed {done.said()}: {said}"
    if done.recorded:
        return f"{head}; bwpart remove {disk} undoes what was written"
    undone = []
    try:
        if done.table:
            partition.apply(disk, [(a["offset"], record.unb64(a["before"]))
                                   for a in plan.areas], "table")
            undone.append("the table was put back as it was")
        if done.shrunk:
            start, old, kind, _ = done.shrunk
            partition.shrink_fs(disk, start, old, kind, old)
            undone.append("the filesystem grown back")
    except BaseException as again:
        return (f"{head}; putting it back failed too ({again}): "
                f"{'; '.join(undone) or 'nothing was put back'}; no record "
                f"was written, so bwpart remove cannot undo it")
    return f"{head}; {' and '.join(undone)}"


def _steps(plan, rec, done, progress):
    disk, r = plan.disk, plan.room
    if r.shrink:
        number, kind, old, new = r.shrink
        part = next(p for p in r.table.partitions if p.number == number)
        _say(progress, f"shrinking partition {number} to {format_size(new)}")
        with sighold.held():
            done.begin(f"shrinking the filesystem of partition {number}")
            done.shrunk = (part.start, old, kind, new)
            partition.shrink_fs(disk, part.start, old, kind, new)
            done.end(f"shrank the filesystem of partition {number}")
    _say(progress, f"writing the new table (partition {r.number})")
    done.begin("writing the partition table")
    done.table = True
    partition.apply(disk, plan.writes, "table")
    done.end("wrote the partition table")
    expected = {r.number: (r.start, r.size)}
    if r.shrink:
        expected[r.shrink[0]] = (part.start, r.shrink[3])
    table = partition.check_written(disk, expected)
    new = next(p for p in table.partitions if p.number == r.number)
    service = partition.service_of(disk, table, new)
    if service.part_id != plan.part_id:
        raise TargetChangedError(f"{disk}: the new partition reads back "
                                 f"as {service.part_id}, not "
                                 f"{plan.part_id}")
    # The record first (the tail lies past the FAT area mkfs.fat writes):
    # from here on bwpart remove finds the partition and undoes it all.
    record.seal(disk, rec["areas"])
    _say(progress, "writing the record to the tail")
    done.begin("writing the record to the tail")
    tail.write_record(service, rec)
    done.end("wrote the record")
    done.recorded = True
    if r.shrink:
        _say(progress, f"checking partition {r.shrink[0]}")
        partition.check_fs(disk, part.start, r.shrink[3], r.shrink[1])
    _say(progress, "formatting the service partition (FAT32)")
    done.begin(f"formatting partition {r.number}")
    fatfs.format(service)
    done.end(f"formatted partition {r.number}")
    return _files(plan, service, rec, done, progress)


def _files(plan, service, rec, done, progress):
    """The FAT files, through part C's loaders and envslots."""
    from . import envslots, loaders
    if "code" in plan.bios:
        _say(progress, "installing the BIOS loader (syslinux)")
        done.begin("installing the BIOS loader (syslinux)")
        loaders.install_bios(service)
        done.end("installed the BIOS loader")
    with fatfs.open_fat(service) as fat:
        _say(progress, f"installing the UEFI loader ({plan.efi_loader})")
        done.begin(f"installing the UEFI loader ({plan.efi_loader})")
        loaders.install_efi(fat, plan.bundle, plan.efi_loader)
        done.end(f"installed the UEFI loader ({plan.efi_loader})")
        done.begin("writing the environment")
        slot = envslots.write_slot(fat, plan.bundle, progress)
        done.end(f"wrote environment slot {slot}")
        done.begin("writing the loader configs")
        envslots.switch(fat, slot, service, plan.efi_loader)
        done.end("wrote the loader configs")
        _say(progress, f"writing {layout.RECORD_PATH}")
        done.begin(f"writing {layout.RECORD_PATH}")
        fat.makedirs(layout.RECORD_PATH.rsplit("/", 1)[0])
        fat.put_checked(tail.encode(rec) + b"\n",
                        layout.RECORD_PATH + layout.NEW_SUFFIX)
        fat.rename(layout.RECORD_PATH + layout.NEW_SUFFIX,
                   layout.RECORD_PATH)
        done.end(f"wrote {layout.RECORD_PATH}")
    return slot
