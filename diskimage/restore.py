"""Restoring an image onto a disk or a disk file, in one pass over the stream.

:func:`plan_restore` decides everything before a byte is written and refuses
what cannot work.  :func:`run_restore` then wipes the guard zones (the
partition table, or the start of each chosen partition) first and writes
them last, only after the whole stream has passed its checks; so a restore
that fails or is interrupted leaves a disk with no valid table (or chosen
partitions with no valid filesystem start), never one that looks fine.
"""

import os
import time
from dataclasses import dataclass, field

from . import format as fmt
from .device import (busy_reason, open_source, open_target, same_storage,
                     sync, write_all, zero_range)
from .errors import InputError, TargetError
from .partitions import read_table
from .pipeline import ordered_map
from .reader import decode_record

GUARD_SIZE = 1 << 20
TABLE_KINDS = ("head", "ebr", "gpt-backup")


@dataclass
class RestorePlan:
    stream: object
    target: str
    target_size: int
    create: bool
    write_table: bool
    areas: set                       # indexes of the image areas to write
    guards: list = field(default_factory=list)   # (start, end) byte ranges
    required_size: int = 0
    target_label: str = ""

    def describe(self):
        meta = self.stream.metadata
        parts = [a for i, a in enumerate(meta["areas"]) if i in self.areas
                 and a["kind"] == "partition"]
        what = ", ".join(f"partition {a['partition']}" for a in parts) \
            or "the whole disk"
        table = " and the partition table" if self.write_table and parts \
            else ""
        return f"{what}{table} onto {self.target_label}"


def _check_target(path, stream):
    if os.path.isdir(path):
        raise TargetError(f"{path}: is a directory")
    for volume in getattr(stream.source, "paths", []):
        if same_storage(path, volume):
            raise TargetError(f"{path}: is the image being restored")
    reason = busy_reason(path)
    if reason:
        raise TargetError(f"{path}: {reason}")


def plan_restore(stream, target_path, *, partitions=None):
    """Decide what a restore of `stream` (a RecordStream, header and
    metadata read) onto `target_path` will do; refuse what cannot work."""
    meta = stream.metadata
    areas = meta["areas"]
    image_parts = {a["partition"]: i for i, a in enumerate(areas)
                   if a["kind"] == "partition"}
    if partitions is not None:
        missing = [n for n in partitions if n not in image_parts]
        if missing:
            have = ", ".join(str(n) for n in sorted(image_parts)) or "none"
            raise InputError(f"{stream.name}: holds no partition {missing[0]}"
                             f" (partitions in the image: {have})")
    create = not os.path.exists(target_path)
    if not create:
        _check_target(target_path, stream)
    plan = RestorePlan(stream, target_path, meta["source"]["size"], create,
                       True, set(range(len(areas))))
    if create:
        if os.path.dirname(target_path) and \
                not os.path.isdir(os.path.dirname(target_path)):
            raise TargetError(f"{target_path}: its directory does not exist")
        plan.target_label = f"{target_path} (new file)"
    else:
        with open_source(target_path) as disk:
            plan.target_size = disk.size
            plan.target_label = target_path + (
                f" ({disk.size} bytes)")
            image_sector = meta["source"]["logical_sector_size"]
            if disk.is_block and disk.logical_sector_size != image_sector:
                raise TargetError(
                    f"{target_path}: has {disk.logical_sector_size}-byte "
                    f"sectors, the image has {image_sector}-byte sectors")
            if partitions is not None:
                plan.write_table = _partitions_fit(disk, meta, partitions)
    if partitions is not None:
        keep = {image_parts[n] for n in partitions}
        if plan.write_table:
            keep |= {i for i, a in enumerate(areas)
                     if a["kind"] in TABLE_KINDS}
        plan.areas = keep
    chosen = [areas[i] for i in sorted(plan.areas)]
    plan.required_size = max((a["start"] + a["size"] for a in chosen),
                             default=0)
    if plan.required_size > plan.target_size:
        raise TargetError(
            f"{target_path}: too small: {plan.target_size} bytes, the image "
            f"needs {plan.required_size} ({plan.required_size - plan.target_size}"
            f" more)")
    for area in chosen:
        guarded = area["kind"] in ("partition", "disk") and (
            partitions is not None or area["kind"] == "disk")
        if area["kind"] == "head" or guarded:
            plan.guards.append((area["start"], area["start"] +
                                min(area["size"], GUARD_SIZE)))
        elif area["kind"] == "gpt-backup":
            plan.guards.append((area["start"], area["start"] + area["size"]))
    return plan


def _partitions_fit(disk, meta, partitions):
    """Whether the image's table must be written (the target has none); the
    target's own table must otherwise hold the chosen partitions in the same
    places.  Raises TargetError when it holds something else."""
    table = read_table(disk.read, disk.size, disk.logical_sector_size)
    if table.kind == "none":
        return True
    theirs = {p.number: p for p in table.partitions}
    for area in meta["areas"]:
        if area["partition"] in partitions:
            slot = theirs.get(area["partition"])
            if slot is None or (slot.start, slot.size) != \
                    (area["start"], area["size"]):
                raise TargetError(
                    f"{disk.path}: partition {area['partition']} is not where"
                    f" the image's is (start {area['start']}, size "
                    f"{area['size']} bytes); restore the whole disk instead")
    return False


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


def run_restore(plan, *, threads=1, verify=False, progress=None):
    """Carry out `plan`.  Returns a summary dict."""
    stream = plan.stream
    areas = stream.metadata["areas"]
    total = sum(areas[i]["size"] for i in plan.areas)
    started = time.monotonic()
    disk = open_target(plan.target, create_size=plan.target_size
                       if plan.create else None)
    written = []       # (offset, length, checksum or None) for --verify
    deferred = []      # (offset, bytes) inside guard zones
    try:
        if not plan.create:
            for start, end in plan.guards:
                zero_range(disk, start, end - start)

        def work(record):
            if record[1]["area"] not in plan.areas:
                return None
            return decode_record(record)

        done = 0
        for result in ordered_map(work, stream.records(), threads):
            if result is None:
                continue
            _, fields, data, _ = result
            offset, length = fields["disk_offset"], fields["length"]
            if data is None:
                if not plan.create:
                    zero_range(disk, offset, length)
            else:
                for start, end, guarded in _split(plan.guards, offset, length):
                    piece = data[start - offset:end - offset]
                    if guarded:
                        deferred.append((start, piece))
                    else:
                        write_all(disk, start, piece)
            if verify:
                written.append((offset, length, None if data is None
                                else fields["checksum"]))
            done += length
            if progress:
                progress(done, total)
        for offset, piece in deferred:
            write_all(disk, offset, piece)
        sync(disk)
        if verify:
            _read_back(disk, written)
    except BaseException:
        disk.close()
        if plan.create:
            os.unlink(plan.target)
        raise
    disk.close()
    summary = dict(stream.summary or {})
    summary.update(seconds=time.monotonic() - started, written_bytes=done,
                   target=plan.target, verified=verify)
    return summary


def _read_back(disk, written):
    """Read every written range back from the disk itself (the page cache
    dropped first) and compare with the image's checksums."""
    os.posix_fadvise(disk.fd, 0, 0, os.POSIX_FADV_DONTNEED)
    for offset, length, checksum in written:
        data = disk.read(offset, length)
        good = data == bytes(length) if checksum is None else \
            fmt.checksum(data) == checksum
        if not good:
            raise TargetError(f"{disk.path}: read-back differs from the "
                              f"image at disk offset {offset}")
