"""What a restore does after the stream (diskimage.restore.run_restore):
shrunk partitions copied in from their temporary files, the guard zones'
bytes written (partition starts first, the table last), filesystems grown
and re-identified, the restore marker cleared when the last bytes do not
cover it; and --verify's read-back.
"""

import errno
import os
import tempfile

from . import restoremark
from .errors import NO_SPACE_ERRNOS, DiskImageError, NoSpaceError
from .fs import resize as fsresize
from .host.device import data_extents, sync, write_all, zero_range
from .image import format as fmt
from .restoreplan import TABLE_KINDS, kept_numbers, new_guid
from .sizes import format_size
from .tables import write as tablewrite

COPY_BLOCK = 4 << 20


def finish(run):
    """After the stream: shrunk partitions copied in, partition starts
    written, filesystems grown and re-identified, then the table last."""
    plan, disk, actions = run.plan, run.disk, []
    for p in plan.placements:
        if p.action == "shrink":
            temp = run.temps.get(p.area) or temp_file(plan)
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
    writes = run.deferred
    if plan.rewrite_table:
        table_ids, table_writes = _write_table(run)
        ids.update(table_ids)
        writes = writes + table_writes
        run.changed |= {i for i, a in enumerate(plan.stream.metadata["areas"])
                        if a["kind"] in TABLE_KINDS}
    _clear_marker(run, writes)
    return {"steps": actions, "ids": ids}


def _clear_marker(run, writes):
    """Zero the restore marker unless the bytes written last (*writes*:
    (offset, bytes)) covered it whole."""
    at = run.marker.offset
    if not any(o <= at and o + len(b) >= at + restoremark.SIZE
               for o, b in writes):
        zero_range(run.disk, at, restoremark.SIZE)


def _temp_error(temp, offset, e):
    cls = NoSpaceError if e.errno in NO_SPACE_ERRNOS else DiskImageError
    where = "" if offset is None else f" at offset {offset}"
    return cls(f"{temp.name}: write failed{where}: {e.strerror} (the "
               f"temporary file of a shrinking partition; see --tmpdir)")


def temp_write(temp, offset, data):
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


def temp_file(plan):
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
    return ids, writes


def checked(target, placement):
    """--verify of a partition a tool changed: its own checker, read-only."""
    with fsresize.region(target, placement.new_start,
                         placement.new_size) as dev:
        fsresize.check(placement.fs, dev,
                       f"partition {placement.number} ({placement.fs})")


def read_back(disk, written, progress=None, digest_of=None):
    """Read every written range back from the disk itself (the page cache
    dropped first) and compare with the image's digests (`digest_of`: the
    image reader's, format 1.1; else 1.0's CRC-32 checksum)."""
    digest_of = digest_of or fmt.checksum
    os.posix_fadvise(disk.fd, 0, 0, os.POSIX_FADV_DONTNEED)
    total, done = sum(w[1] for w in written), 0
    for offset, length, digest in written:
        data = disk.read(offset, length)
        good = data == bytes(length) if digest is None else \
            digest_of(data) == digest
        if not good:
            raise DiskImageError(f"{disk.path}: read-back differs from "
                                 f"the image at disk offset {offset}")
        done += length
        if progress:
            progress(done, total)
