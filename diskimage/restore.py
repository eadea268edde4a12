"""Restoring an image onto a disk or a disk file, in one pass over the stream.

:func:`diskimage.restoreplan.plan_restore` decides everything before a byte
is written and refuses what cannot work.  :func:`run_restore` then wipes the
guard zones (the partition table, the target's backup GPT, or the start of
each chosen partition) first and writes them last, only after the whole
stream has passed its checks and every filesystem action (grow, shrink, new
identity) has succeeded; so a restore that fails or is interrupted leaves a
disk with no valid table (or chosen partitions with no valid filesystem
start), never one that looks fine.  A failure after the first write to an
existing target is raised as TargetChangedError (exit 8) naming the cause;
a target file the restore created is removed and the cause raised as it is.

Partitions that move are written at their new place as the stream goes by;
a partition that shrinks is written to a sparse temporary file, shrunk there
by its filesystem's tool, and copied (data regions only) into its new place.
"""

import errno
import os
import tempfile
import time

from . import sighold
from .errors import (NO_SPACE_ERRNOS, DiskImageError, NoSpaceError,
                     TargetChangedError, TargetError)
from .fs import resize as fsresize
from .host.device import data_extents, open_target, sync, write_all, zero_range
from .image import format as fmt
from .pipeline import ordered_map
from .restoreplan import (GUARD_SIZE, TABLE_KINDS, RestorePlan,  # noqa: F401
                          kept_numbers, new_guid, plan_restore)
from .sizes import format_size
from .tables import write as tablewrite

COPY_BLOCK = 4 << 20


def _split(guards, offset, length):
    """Cut [offset, offset+length) into (start, end, in_guard) pieces."""
    pieces, cursor, end = [], offset, offset + length
    for g_start, g_end in sorted(guards):
        if g_end <= cursor or g_start >= end:
            continue
        if g_start > cursor:
            pieces.append((cursor, g_start, False))
        pieces.append((max(cursor, g_start), min(end, g_end), True))
        cursor = min(end, g_end)
    if cursor < end:
        pieces.append((cursor, end, False))
    return pieces


class _Run:
    """The state of one restore: the target, the temporary files of
    shrinking partitions, what was written (for --verify) and what waits
    for the end (guard zones)."""

    def __init__(self, plan, disk):
        self.plan, self.disk = plan, disk
        # Appended to by the worker threads too (list.append is atomic);
        # their order does not matter, the ranges never overlap.
        self.written = []     # (target offset, length, checksum or None)
        self.deferred = []    # (target offset, bytes) inside guard zones
        self.temps = {}       # area index -> open temporary file
        self.changed = set()  # areas a tool changes after they are written

    def put(self, offset, data):
        for start, end, guarded in _split(self.plan.guards, offset,
                                          len(data)):
            piece = data[start - offset:end - offset]
            if guarded:
                self.deferred.append((start, piece))
            else:
                write_all(self.disk, start, piece)

    def record(self, fields, data):
        plan, area = self.plan, fields["area"]
        offset, length = fields["disk_offset"], fields["length"]
        delta = plan.delta(area)
        if delta is None:                       # a shrink: to its temp file
            temp = self.temps.get(area)
            if temp is None:
                temp = self.temps[area] = _temp(plan)
            if data is not None:
                start = plan.stream.metadata["areas"][area]["start"]
                _temp_write(temp, offset - start, data)
            return
        offset += delta
        if data is None:
            if not plan.create:
                zero_range(self.disk, offset, length)
        else:
            self.put(offset, data)
        self.written.append((area, offset, length, None if data is None
                             else fields["checksum"]))


def run_restore(plan, *, threads=1, verify=False, progress=None,
                readback_progress=None, committed=None):
    """Carry out `plan`.  Returns a summary dict.  `progress(done, total)`
    follows the writing, `readback_progress` the read-back of `verify`.
    `committed()` is called once the target is written, synced (and
    verified): the commit point, still inside the clean-up's reach, so a
    signal before it undoes the restore and one after it does not."""
    stream = plan.stream
    areas = stream.metadata["areas"]
    total = sum(areas[i]["size"] for i in plan.areas)
    started = time.monotonic()
    disk = run = None
    sighold.started()   # new work, after a commit of this run (the demo)
    try:
        # Held: a signal between creating the target file and this point
        # would leave a file that looks like a disk (released inside the
        # try, so the clean-up below runs for it).
        with sighold.held():
            disk = open_target(plan.target, create_size=plan.target_size
                               if plan.create else None)
            if plan.create and not disk.created:
                # It appeared after the plan (the --yes prompt is a long
                # window): the plan was for a new file, not this one.
                disk.close()
                disk = None
                raise TargetError(
                    f"{plan.target}: appeared after the restore was "
                    f"planned (another process made it); nothing written; "
                    f"restore again to plan for it")
            run = _Run(plan, disk)
        if not plan.create:
            for start, end in plan.guards:
                zero_range(disk, start, end - start)

        def work(record):
            """Decode a chunk and, when it goes straight to the target,
            write it here: pwrite releases the GIL, so the workers write in
            parallel (the consumer thread writing every chunk was the
            bottleneck).  Holes and chunks for a shrink's temporary file go
            to the consumer, in order."""
            if record[1]["area"] not in plan.areas:
                return None
            _, fields, data, _ = stream.decode(record)
            if data is not None and plan.delta(fields["area"]) is not None:
                run.record(fields, data)
                return fields, None, True
            return fields, data, False

        done = 0
        # Twice the usual depth: with the writes in the workers, a chunk
        # slow to write would otherwise leave the other workers idle.
        for result in ordered_map(work, stream.records(), threads,
                                  depth=2 * threads + 2):
            if result is None:
                continue
            fields, data, written = result
            if not written:
                run.record(fields, data)
            done += fields["length"]
            if progress:
                progress(done, total)
        actions = _finish(run)
        sync(disk)
        if verify:
            _read_back(disk, [w[1:] for w in run.written
                              if w[0] not in run.changed],
                       readback_progress, stream.digest_of)
            for placement in plan.placements:
                if placement.area in run.changed:
                    _checked(plan.target, placement)
        if committed:
            committed()
    except BaseException as exc:
        if disk is None:
            raise
        if plan.create:
            _remove_created(disk)
            raise
        if run is None:     # nothing written yet
            disk.close()
            raise
        unwiped = _wipe_guards(run)
        disk.close()
        if isinstance(exc, (DiskImageError, OSError)):
            raise TargetChangedError(
                f"{_cause(exc)}; the target was changed: "
                f"{_state(plan, unwiped)}") from exc
        raise
    finally:
        for temp in (run.temps.values() if run else ()):
            temp.close()
    disk.close()
    summary = dict(stream.summary or {})
    summary.update(seconds=time.monotonic() - started, written_bytes=done,
                   target=plan.target, verified=verify, actions=actions)
    return summary


def _remove_created(disk):
    """Close and remove the target file this restore created, if the path
    still names it (another process may have removed or replaced it)."""
    mine = os.fstat(disk.fd)
    disk.close()
    try:
        now = os.stat(disk.path)
        if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            os.unlink(disk.path)
    except FileNotFoundError:
        pass


def _wipe_guards(run):
    """After a failure over an existing target: zero the guard zones again
    (the table, written last, may already be there, as when --verify finds
    a difference).  Returns the error that stopped it, or None."""
    try:
        for start, end in run.plan.guards:
            zero_range(run.disk, start, end - start)
        sync(run.disk)
    except (DiskImageError, OSError) as exc:
        return exc
    return None


def _cause(exc):
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return str(exc)


def _state(plan, unwiped):
    """What a failed restore left on an existing target."""
    if unwiped is not None:
        return f"wiping its table failed too ({_cause(unwiped)}): do not " \
            f"trust what it holds"
    if plan.write_table:
        return "it has no valid partition table"
    where = ", ".join(f"{p.new_start}-{p.new_start + p.new_size}"
                      for p in plan.placements)
    return f"its table is kept, but the partition at bytes {where} has no " \
        f"valid filesystem start"


def _finish(run):
    """After the stream: shrunk partitions copied in, partition starts
    written, filesystems grown and re-identified, then the table last."""
    plan, disk, actions = run.plan, run.disk, []
    for p in plan.placements:
        if p.action == "shrink":
            temp = run.temps.get(p.area) or _temp(plan)
            run.temps[p.area] = temp
            try:
                os.ftruncate(temp.fileno(), p.old_size)
            except OSError as e:
                raise _temp_error(temp, None, e) from e
            fsresize.resize(p.fs, temp.name, p.new_size,
                            f"partition {p.number} ({p.fs})")
            _copy_data(temp.fileno(), p.new_size, run, p.new_start)
            run.changed.add(p.area)
    table_zone = []
    for offset, piece in run.deferred:
        if any(p.new_start <= offset < p.new_start + p.new_size
               for p in plan.placements):
            write_all(disk, offset, piece)
        else:
            table_zone.append((offset, piece))
    ids = {}
    for p in plan.placements:
        what = f"partition {p.number} ({p.fs})"
        grow = p.fs_resized and p.new_size > p.old_size
        if not (grow or (plan.new_ids and fsresize.renews_ids(p.fs))):
            if p.action != "copy" or p.fs_resized:
                actions.append(f"partition {p.number}: {p.action}")
            continue
        sync(disk)
        action = p.action
        with fsresize.region(plan.target, p.new_start, p.new_size) as dev:
            if grow:
                reached = fsresize.resize(p.fs, dev, p.new_size, what)
                if reached < p.new_size:
                    action += (f" (filesystem to {format_size(reached)}, "
                               f"the most {p.fs} holds with its cluster "
                               f"size)")
            if plan.new_ids and fsresize.renews_ids(p.fs):
                for name, old_new in fsresize.new_identity(
                        p.fs, dev, what).items():
                    ids[f"partition {p.number} {name}"] = old_new
        run.changed.add(p.area)
        actions.append(f"partition {p.number}: {action}")
    for offset, piece in table_zone:
        write_all(disk, offset, piece)
    if plan.rewrite_table:
        ids.update(_write_table(run))
        run.changed |= {i for i, a in enumerate(plan.stream.metadata["areas"])
                        if a["kind"] in TABLE_KINDS}
    return {"steps": actions, "ids": ids}


def _temp_error(temp, offset, e):
    cls = NoSpaceError if e.errno in NO_SPACE_ERRNOS else DiskImageError
    where = "" if offset is None else f" at offset {offset}"
    return cls(f"{temp.name}: write failed{where}: {e.strerror} (the "
               f"temporary file of a shrinking partition; see --tmpdir)")


def _temp_write(temp, offset, data):
    """All of *data* at *offset* of a shrink's temporary file (a short
    write is what a full filesystem can give first)."""
    view = memoryview(data).cast("B")
    while view:
        try:
            done = os.pwrite(temp.fileno(), view, offset)
        except OSError as e:
            raise _temp_error(temp, offset, e) from e
        if done == 0:
            raise _temp_error(temp, offset, OSError(
                errno.ENOSPC, os.strerror(errno.ENOSPC)))
        view, offset = view[done:], offset + done


def _temp(plan):
    """A sparse temporary file for a partition that shrinks; the tools
    need its name."""
    return tempfile.NamedTemporaryFile(dir=plan.tmpdir,
                                       prefix="rdeploy-shrink-")


def _copy_data(fd, size, run, target_start):
    """The data regions of the first *size* bytes of file *fd* onto the
    target at *target_start* (holes are free space and are skipped)."""
    for offset, hole in data_extents(fd, size):
        while offset < hole:
            data = os.pread(fd, min(COPY_BLOCK, hole - offset), offset)
            run.put(target_start + offset, data)
            offset += len(data)


def _write_table(run):
    """A new table for the layout: partitions at their new places, the
    protected ones kept, new GUIDs or signature with --new-ids."""
    plan, disk = run.plan, run.disk
    table = plan.stream.metadata["table"]
    ss = plan.sector_size
    sector0 = disk.read(0, 512)
    by_number = {p["number"]: p for p in table["partitions"]}
    ids = {}
    rows = []
    for place in plan.placements:
        row = dict(by_number[place.number], start=place.new_start,
                   size=place.new_size)
        if plan.new_ids and table["kind"] == "gpt":
            row["uuid"] = new_guid()
            ids[f"partition {place.number} PARTUUID"] = (
                by_number[place.number]["uuid"], row["uuid"])
        rows.append(row)
    for (part, _), number in zip(plan.kept, kept_numbers(plan)):
        rows.append(dict(part.to_dict(), number=number))
    if table["kind"] == "gpt":
        disk_id = table["disk_id"]
        if plan.new_ids:
            disk_id = new_guid()
            ids["disk GUID"] = (table["disk_id"], disk_id)
        moved = {(p.old_start, p.old_size): (p.new_start, p.new_size)
                 for p in plan.placements}
        writes = tablewrite.gpt_writes(rows, plan.target_size, ss, disk_id,
                                       sector0, moved, table["sector_size"])
    else:
        signature = None
        if plan.new_ids:
            signature = int.from_bytes(os.urandom(4), "little") or 1
            ids["disk signature"] = (table["disk_id"], f"0x{signature:08x}")
        writes = tablewrite.mbr_writes(sector0, rows, ss, signature, {
            p.number: p.ebr for p in plan.placements if p.ebr is not None})
    for offset, data in writes:
        write_all(disk, offset, data)
    return ids


def _checked(target, placement):
    """--verify of a partition a tool changed: its own checker, read-only."""
    with fsresize.region(target, placement.new_start,
                         placement.new_size) as dev:
        fsresize.check(placement.fs, dev,
                       f"partition {placement.number} ({placement.fs})")


def _read_back(disk, written, progress=None, digest_of=fmt.checksum):
    """Read every written range back from the disk itself (the page cache
    dropped first) and compare with the image's checksums."""
    os.posix_fadvise(disk.fd, 0, 0, os.POSIX_FADV_DONTNEED)
    total, done = sum(w[1] for w in written), 0
    for offset, length, checksum in written:
        data = disk.read(offset, length)
        good = data == bytes(length) if checksum is None else \
            digest_of(data) == checksum
        if not good:
            raise DiskImageError(f"{disk.path}: read-back differs from "
                                 f"the image at disk offset {offset}")
        done += length
        if progress:
            progress(done, total)
