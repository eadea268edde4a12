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
by its filesystem's tool, and copied (data regions only) into its new place
(diskimage.restorefinish).

Right after the guard zones are zeroed the restore marker
(diskimage.restoremark) is written at the start of the first one and synced;
at every checkpoint the target is synced, the marker rewritten, synced
again.  A restore with `resume` (the marker found on the target, checked by
restoremark.check_resume) reads and checks the records before the marker's
checkpoint but writes none of them (their guard-zone bytes are still
collected), checks that they are the records the interrupted restore wrote,
and goes on from there.  A delta restore (plan.delta_restore) compares every
chunk with the target's bytes before it writes it (diskimage.restoredelta).
"""

import dataclasses
import hashlib
import os
import time

from . import restoremark, sighold
from .errors import DiskImageError, TargetChangedError, TargetError
from .host.device import open_target, sync, write_all, zero_range
from .pipeline import ordered_map
from .restoredelta import Comparer
from .restorefinish import finish, read_back, checked, temp_file, temp_write
from .restoreplan import (GUARD_SIZE, TABLE_KINDS, RestorePlan,  # noqa: F401
                          kept_numbers, new_guid, plan_restore)


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

    def __init__(self, plan, disk, marker=None):
        self.plan, self.disk, self.marker = plan, disk, marker
        self.touched = False  # whether this run has written the target
        # A resume that fails leaves the marker as it found it (its new
        # checkpoints held only while the image was the same to its end).
        self.found = dataclasses.replace(marker) if marker else None
        # Appended to by the worker threads too (list.append is atomic);
        # their order does not matter, the ranges never overlap.
        self.written = []     # (target offset, length, checksum or None)
        self.deferred = []    # (target offset, bytes) inside guard zones
        self.temps = {}       # area index -> open temporary file
        self.changed = set()  # areas a tool changes after they are written
        # --delta: compares before it writes (diskimage.restoredelta)
        self.compare = Comparer(disk, plan.guards) if plan.delta_restore \
            else None

    def put(self, offset, data, compare=False):
        """Guard-zone bytes kept for the end, the rest written (with
        *compare*: only if the target's bytes differ)."""
        outside = []
        for start, end, guarded in _split(self.plan.guards, offset,
                                          len(data)):
            piece = data[start - offset:end - offset]
            if guarded:
                self.deferred.append((start, piece))
            elif compare:
                outside.append((start, piece))
            else:
                write_all(self.disk, start, piece)
        if outside:
            self.compare.data(outside)

    def collected(self, fields, data):
        """A record before a resume's checkpoint: on the target already;
        only its guard-zone bytes are kept for the end."""
        delta = self.plan.delta(fields["area"])
        offset = fields["disk_offset"] + delta
        if data is not None:
            for start, end, guarded in _split(self.plan.guards, offset,
                                              len(data)):
                if guarded:
                    self.deferred.append((start, data[start - offset:
                                                      end - offset]))
        self.written.append((fields["area"], offset, fields["length"],
                             None if data is None else _digest(fields)))

    def record(self, fields, data):
        plan, area = self.plan, fields["area"]
        offset, length = fields["disk_offset"], fields["length"]
        delta = plan.delta(area)
        if delta is None:                       # a shrink: to its temp file
            temp = self.temps.get(area)
            if temp is None:
                temp = self.temps[area] = temp_file(plan)
            if data is not None:
                start = plan.stream.metadata["areas"][area]["start"]
                temp_write(temp, offset - start, data)
            return
        offset += delta
        if data is None:
            if not plan.create:     # the guard zones are zeros already
                outside = [(start, end) for start, end, guarded in
                           _split(plan.guards, offset, length)
                           if not guarded]
                for start, end in () if self.compare else outside:
                    zero_range(self.disk, start, end - start)
                if self.compare:
                    self.compare.hole(outside)
        else:
            self.put(offset, data, self.compare is not None)
        self.written.append((area, offset, length, None if data is None
                             else _digest(fields)))


def _digest(fields):
    """The digest a record carries for its bytes (1.0: "checksum", 1.1:
    "digest"), what the read-back compares with."""
    return fields["digest"] if "digest" in fields else fields["checksum"]


def run_restore(plan, *, threads=1, verify=False, progress=None,
                readback_progress=None, committed=None, resume=None,
                image_name=""):
    """Carry out `plan` (planned with delta=True: the summary holds
    "delta", restoredelta.Comparer's counts).  Returns a summary dict.
    `progress(done, total)` follows the writing, `readback_progress` the
    read-back of `verify`.
    `committed()` is called once the target is written, synced (and
    verified): the commit point, still inside the clean-up's reach, so a
    signal before it undoes the restore and one after it does not.
    `resume`: the restoremark.Marker of the interrupted restore this one
    finishes (checked by restoremark.check_resume); `image_name`: what the
    marker names the image by."""
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
            run = _Run(plan, disk, resume)
        if resume is None:
            # The marker names the image by its trailer and index record,
            # read (and checked) here, before the target is touched: a
            # damaged trailer is refused with the target unchanged.
            run.marker = restoremark.new_marker(plan, stream, image_name,
                                                total)
            run.touched = True
            if not plan.create:
                for start, end in plan.guards:
                    zero_range(disk, start, end - start)
            kept = restoremark.kept_bytes(plan)
            if kept:
                run.marker.kept = True
                write_all(disk, run.marker.offset + restoremark.SIZE, kept)
            restoremark.write(disk, run.marker)
        skip = resume.checkpoint if resume else 0

        def work(record):
            """Decode a chunk and, when it goes straight to the target,
            write it here: pwrite releases the GIL, so the workers write in
            parallel (the consumer thread writing every chunk was the
            bottleneck).  Holes and chunks for a shrink's temporary file go
            to the consumer, in order.  Records before a resume's
            checkpoint are checked and not written."""
            number, fields, payload, offset = record
            if fields["area"] not in plan.areas:
                return number, fields, offset, None, "other"
            _, fields, data, _ = stream.decode(record)
            if number < skip:
                run.collected(fields, data)
                return number, fields, offset, None, "done"
            if (data is not None or run.compare) and \
                    plan.delta(fields["area"]) is not None:  # --delta: holes
                run.record(fields, data)
                return number, fields, offset, None, "done"
            return number, fields, offset, data, "consumer"

        records = stream.records()
        if run.compare:     # the target's bytes read ahead
            records = run.compare.prefetched(records, plan)
        if resume is not None:
            records = restoremark.checked_prefix(stream, records, resume,
                                                 plan.target)
        done = 0
        checkpoints = _Checkpoints(run, stream)
        # Twice the usual depth: with the writes in the workers, a chunk
        # slow to write would otherwise leave the other workers idle.
        for number, fields, offset, data, how in ordered_map(
                work, records, threads, depth=2 * threads + 2):
            if number >= skip:
                run.touched = True
            if how == "consumer":
                run.record(fields, data)
            if how != "other":
                done += fields["length"]
            checkpoints.passed(number, fields, offset)
            if progress:
                progress(done, total)
        checkpoints.end(plan)
        actions = finish(run)
        sync(disk)
        if verify:
            read_back(disk, [w[1:] for w in run.written
                             if w[0] not in run.changed],
                      readback_progress,
                      getattr(stream, "digest_of", None))
            for placement in plan.placements:
                if placement.area in run.changed:
                    checked(plan.target, placement)
        if committed:
            committed()
    except BaseException as exc:
        if disk is None:
            raise
        if plan.create and resume is None:
            _remove_created(disk)
            raise
        if run is None or not run.touched:     # nothing written yet
            disk.close()
            raise
        if run.found is not None:
            run.marker = run.found
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
    # restored_bytes: the areas (the progress total); written_bytes: what
    # went to the target (with --delta only the blocks that differed)
    summary = dict(stream.summary or {})
    summary.update(seconds=time.monotonic() - started, restored_bytes=total,
                   written_bytes=done, target=plan.target, verified=verify,
                   actions=actions, resumed_at=skip if resume else None)
    if run.compare:
        summary["delta"] = dict(run.compare.summary(), full=done)
        summary["written_bytes"] = summary["delta"]["written"]
    return summary


class _Checkpoints:
    """Every CHECKPOINT_BYTES of records or CHECKPOINT_SECONDS: the
    target synced, the marker rewritten with how far the restore got,
    synced again."""

    def __init__(self, run, stream):
        self.run, self.stream = run, stream
        self.prefix = hashlib.sha256()
        self.step = restoremark.checkpoint_bytes()
        self.bytes, self.last = 0, time.monotonic()
        self.done = 0

    def passed(self, number, fields, offset):
        """Record *number* (at image *offset*) is written."""
        marker = self.run.marker
        self.prefix.update(restoremark.record_bytes(self.stream, fields))
        self.done += fields["length"]
        self.next_offset = offset + len(restoremark.record_bytes(
            self.stream, fields)) + fields["stored_size"]
        if number < marker.checkpoint:
            return
        self.bytes += fields["length"]
        if self.bytes >= self.step or \
                time.monotonic() - self.last >= restoremark.CHECKPOINT_SECONDS:
            self.write(number + 1)

    def write(self, checkpoint, phase=restoremark.PHASE_RECORDS):
        marker = self.run.marker
        marker.checkpoint, marker.prefix = checkpoint, self.prefix.digest()
        marker.done_bytes, marker.phase = self.done, phase
        marker.stream_offset = getattr(self, "next_offset", 0)
        restoremark.write(self.run.disk, marker)
        self.bytes, self.last = 0, time.monotonic()

    def end(self, plan):
        """After the last record: all of them written; the root and the
        chunk count known now (an image from a pipe); FINISHING when
        filesystem tools are about to change what was written."""
        marker = self.run.marker
        summary = self.stream.summary or {}
        marker.chunks = summary.get("chunks", marker.chunks)
        if summary.get("digest"):
            marker.root = bytes.fromhex(summary["digest"])
        changes = any(p.action == "shrink" or (p.fs_resized and p.new_size
                                               > p.old_size)
                      for p in plan.placements) or plan.new_ids
        self.write(marker.chunks, restoremark.PHASE_FINISHING if changes
                   else restoremark.PHASE_RECORDS)


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
        if run.marker is not None:  # still incomplete, as far as it got
            restoremark.write(run.disk, run.marker, synced=False)
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


