"""The receiver's target: prepared before a download, checked after it,
finished once nothing is served from it any more (docs/swarm.md, "The
mapping").

:func:`open_target` refuses a target that is too small, mounted or held,
zeroes the guard zones and writes the restore marker at byte 0 (or finds
the marker of an interrupted receive of the same image: a resume).
:func:`check` compares every DATA and ZERO record of the skeleton's index
with the target's bytes (BLAKE3; zeros).  :func:`finish` moves a GPT's
backup to the end of a larger target and gives new identities, with a
phase-2 marker at byte 0 meanwhile, the real sector 0 written last.
"""

import hashlib
import json
import os
import time
import urllib.parse
import uuid
import zlib

from .. import markername, restoremark
from ..errors import (CorruptImageError, DiskImageError,
                      IncompleteTargetError, InputError, TargetChangedError,
                      TargetError)
from ..fs import resize as fsresize
from ..host.device import open_source, open_target as open_disk
from ..host.device import sync, write_all, zero_range
from ..host.links import refuse_dangling_link
from ..host.sysfs import busy_reason
from ..image import format as fmt
from ..layout import usable
from ..pipeline import ordered_map
from ..restoreplan import new_guid
from ..tables import gpt
from ..tables.write import protective_mbr
from . import diskfault, skeleton
from .hold import hold

PREFIX = markername.SWARM_PREFIX
BLOCK = 4 << 20


def marker_name(source):
    """What the restore marker names the image by: ``swarm:`` + SOURCE as
    given: a file path made absolute, a URL without its credentials and
    query, a magnet link cut at its first ``&``."""
    source = os.fspath(source)
    if source.startswith(PREFIX):
        return source
    if source.startswith("magnet:"):
        return markername.swarm(source.split("&", 1)[0])
    parts = urllib.parse.urlsplit(source)
    if parts.scheme in ("http", "https") and parts.netloc:
        host = parts.netloc.rsplit("@", 1)[-1]
        return markername.swarm(urllib.parse.urlunsplit(
            (parts.scheme, host, parts.path, "", "")))
    return markername.swarm(os.path.abspath(source))


def _plan(desc, target_size):
    doc = {"swarm": desc.infohash, "length": desc.length,
           "target_size": target_size}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).digest()


def _sector_size(desc):
    table = desc.meta["table"]
    return table["sector_size"] if table["kind"] != "none" else \
        desc.meta["source"]["logical_sector_size"]


def guard_zones(desc, target_size):
    """The descriptor's guard zones and, on a larger target, its tail
    (where the target's own backup GPT may lie): zeroed first."""
    zones = list(desc.guard_zones())
    if target_size > desc.length:
        tail = usable("gpt", target_size, _sector_size(desc))[1]
        zones.append((max(tail, desc.length), target_size))
    return zones


def _refuse(path, desc, disk):
    if disk.size < desc.length:
        raise TargetError(f"{path}: too small: {disk.size} bytes, the image's "
                          f"disk is {desc.length} ({desc.length - disk.size} "
                          f"more)")
    if disk.is_block and disk.logical_sector_size != _sector_size(desc):
        raise TargetError(f"{path}: has {disk.logical_sector_size}-byte "
                          f"sectors, the image {_sector_size(desc)}-byte "
                          f"sectors; rdeploy swarm does not convert them "
                          f"(use rdeploy restore)")


def _marker_of(disk):
    try:
        return restoremark.read_at(disk, 0)
    except IncompleteTargetError:       # damaged: started over
        return None


def open_target(path, desc, source_name, *, yes_checked):
    """Make `path` ready for the pieces of `desc`; returns a dict:
    `resume` (True: an interrupted receive of the same image was found and
    is carried on; nothing was written), `marker`, `guard_zones`,
    `disk_size`, `hold` (an fd holding `path` exclusively, hold.py: the
    caller closes it; until then open it with exclusive=False)."""
    path = os.fspath(path)
    if not yes_checked:
        raise TargetError(f"{path}: would be overwritten; confirm with --yes")
    refuse_dangling_link(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a disk or disk file")
    if os.path.exists(path):
        reason = busy_reason(path)
        if reason:
            raise TargetError(f"{path}: {reason}")
    with open_disk(path, create_size=desc.length) as disk:
        held = os.dup(disk.fd) if disk.is_block else hold(path)
        try:
            opened = _open(path, desc, source_name, disk)
        except BaseException:
            os.close(held)
            raise
    return dict(opened, hold=held)


def _open(path, desc, source_name, disk):
    """open_target's work on the open, held `disk`."""
    _refuse(path, desc, disk)
    zones = guard_zones(desc, disk.size)
    found = _marker_of(disk)
    front = skeleton.front(desc.skeleton)
    if found is not None and found.name.startswith(PREFIX) and \
            found.root == desc.root and found.front == front and \
            found.phase == restoremark.PHASE_RECORDS and \
            found.plan == _plan(desc, disk.size):
        return {"resume": True, "marker": found, "guard_zones": zones,
                "disk_size": disk.size}
    now = int(time.time())
    marker = restoremark.Marker(
        offset=0, front=front, plan=_plan(desc, disk.size),
        name=marker_name(source_name), root=desc.root,
        chunks=len(desc.entries), total_bytes=desc.wanted_bytes(),
        started=now, updated=now)
    for start, end in zones:
        zero_range(disk, start, end - start)
    restoremark.write(disk, marker)
    return {"resume": False, "marker": marker, "guard_zones": zones,
            "disk_size": disk.size}


def zero_pieces(path, desc, indices):
    """Zero the pieces `indices` on `path` (held: opened without O_EXCL)
    by a punched hole or BLKZEROOUT, merged into runs: pieces with no DATA
    byte, zeros in NAME.raw.  libtorrent is never told it has them, so they
    are not served (every receiver zeroes its own)."""
    ranges = []
    for index in indices:
        start, end = desc.piece_range(index)
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = end
        else:
            ranges.append([start, end])
    if not ranges:
        return
    try:
        with open_disk(path, exclusive=False) as disk:
            for start, end in ranges:
                zero_range(disk, start, end - start)
            sync(disk)
    except DiskImageError as exc:
        raise TargetChangedError(f"swarm receive failed: zeroing the pieces "
                                 f"with no data: {exc}; "
                                 f"{diskfault.MARKED}") from None


def note_progress(path, marker, done, total):
    """The marker at byte 0 rewritten with `done` of `total` bytes
    received (only while byte 0's piece is not being fetched).  Its sync
    also writes back what libtorrent wrote: a write-back error is found
    here first (exit 8)."""
    marker.done_bytes, marker.total_bytes = done, total
    try:
        with open_disk(path, exclusive=False) as disk:
            restoremark.write(disk, marker, synced=False)
    except DiskImageError as exc:   # its sync: libtorrent's writes too
        raise diskfault.write_back_failed(path, exc) from None


def _check_entry(disk, entry):
    """None when the target holds `entry`'s bytes, else the disk offset
    where it differs (a ZERO range: its first non-zero byte)."""
    offset, length = entry["disk_offset"], entry["length"]
    if entry["kind"] == fmt.KIND_DATA:
        data = disk.read(offset, length)
        if len(data) != length or fmt.content_digest(data) != \
                entry["digest"]:
            return offset
        return None
    done = 0
    while done < length:
        size = min(BLOCK, length - done)
        data = disk.read(offset + done, size)
        if data.count(0) != len(data) or len(data) != size:
            return offset + done + next(
                (i for i, b in enumerate(data) if b), len(data))
        done += size
    return None


def check(path, desc, progress=None, marker=None):
    """Compare every DATA and ZERO record of `desc`'s index with `path`;
    a difference is CorruptImageError naming the disk offset.  Returns
    {"checked_bytes", "chunks"}.  With `marker` (a receive's: byte 0's
    piece, written last, replaced it), any failure, an interrupt too,
    writes it back first: the target must not look whole unchecked, and
    the same receive then resumes (libtorrent rechecks what is there).
    TARGET is synced and its cache dropped first (diskfault.flush): the
    check reads the disk, and a write-back error is exit 8."""
    try:
        diskfault.flush(path)
        return _check(path, desc, progress)
    except BaseException as exc:
        if marker is not None:
            diskfault.mark_again(path, marker, exc)
        raise


def _check(path, desc, progress):
    root = fmt.image_digest(*skeleton.parts(desc.skeleton))
    if root != desc.root:
        raise CorruptImageError(f"{desc.name}: skeleton's root digest "
                                f"differs from the descriptor's")
    total = sum(e["length"] for e in desc.entries)
    done = 0
    with open_source(path) as disk:
        if disk.size < desc.length:
            raise TargetError(f"{path}: too small: {disk.size} bytes, the "
                              f"image's disk is {desc.length}")
        threads = max(1, min(4, os.cpu_count() or 1))
        work = lambda e: (e, _check_entry(disk, e))     # noqa: E731
        for number, (entry, bad) in enumerate(
                ordered_map(work, desc.entries, threads)):
            if bad is not None:
                what = "DATA chunk" if entry["kind"] == fmt.KIND_DATA \
                    else "ZERO range"
                raise CorruptImageError(
                    f"{path}: differs from the image at disk offset {bad} "
                    f"({what} {number} at {entry['disk_offset']}, "
                    f"{entry['length']} bytes): the torrent does not match "
                    f"its image")
            done += entry["length"]
            if progress:
                progress(done, total)
    return {"checked_bytes": done, "chunks": len(desc.entries)}


def finish(path, desc, *, new_ids, source_name=None):
    """After the check and the seeding: a GPT's backup moved to the end of
    a larger target, new identities with `new_ids`, then sector 0 written
    back over the marker.  Returns {"steps": [...], "ids": {...}}."""
    path = os.fspath(path)
    kind = desc.meta["table"]["kind"]
    with open_disk(path) as disk:
        _refuse(path, desc, disk)
        relocate = kind == "gpt" and disk.size > desc.length
        sector0 = disk.read(0, 512)
        if sector0.startswith(restoremark.MAGIC):
            if desc.wanted_marks()[0]:
                raise IncompleteTargetError(
                    f"{path}: still holds its restore marker: the "
                    f"download did not finish")
            sector0 = bytes(512)    # no piece covers it: the marker goes
        if not (relocate or new_ids):
            if disk.read(0, 512) != sector0:
                write_all(disk, 0, sector0)
                sync(disk)
            return {"steps": [], "ids": {}}
        marker = restoremark.Marker(
            offset=0, front=skeleton.front(desc.skeleton),
            plan=_plan(desc, disk.size),
            name=marker_name(source_name) if source_name else PREFIX,
            root=desc.root, phase=restoremark.PHASE_FINISHING)
        restoremark.write(disk, marker)
        steps, ids = [], {}
        if new_ids:
            ids.update(_new_fs_ids(path, desc, disk))
            steps.append("new identities")
        if kind == "gpt":
            ids.update(_rewrite_gpt(disk, desc, new_ids))
            if relocate:
                steps.append(f"backup GPT moved to the end "
                             f"({disk.size} bytes)")
            sector0 = protective_mbr(sector0, disk.size // _sector_size(desc),
                                     _sector_size(desc),
                                     _identity_moves(desc),
                                     _sector_size(desc))
        elif kind == "mbr" and new_ids:
            signature = int.from_bytes(os.urandom(4), "little") or 1
            ids["disk signature"] = (desc.meta["table"]["disk_id"],
                                     f"0x{signature:08x}")
            sector0 = sector0[:440] + signature.to_bytes(4, "little") + \
                sector0[444:]
        sync(disk)
        write_all(disk, 0, sector0)
        sync(disk)
    return {"steps": steps, "ids": ids}


def _identity_moves(desc):
    return {(p["start"], p["size"]): (p["start"], p["size"])
            for p in desc.meta["table"]["partitions"]}


def _new_fs_ids(path, desc, disk):
    ids = {}
    sync(disk)
    for area in desc.meta["areas"]:
        fs = area.get("filesystem")
        if area["kind"] != "partition" or not fs or \
                not fsresize.renews_ids(fs):
            continue
        what = f"partition {area['partition']} ({fs})"
        with fsresize.region(path, area["start"], area["size"]) as dev:
            for name, old_new in fsresize.new_identity(fs, dev,
                                                       what).items():
                ids[f"partition {area['partition']} {name}"] = old_new
    return ids


def _rewrite_gpt(disk, desc, new_ids):
    """The image's primary GPT (as restored, checked) rewritten for the
    target's size: alternate and last usable LBA at the end, the backup
    array and header there, the old backup zeroed; with `new_ids` a new
    disk GUID and partition GUIDs."""
    ss = _sector_size(desc)
    try:
        head, array = gpt.load_copy(disk.read, gpt.PRIMARY_LBA, ss,
                                    disk.size // ss)
    except gpt.Invalid as exc:
        raise CorruptImageError(f"{disk.path}: its primary GPT after the "
                                f"download: {exc}") from None
    fields = head._asdict()
    count, entry_size = head.num_partition_entries, \
        head.sizeof_partition_entry
    array_sectors = -(-count * entry_size // ss)
    array = bytearray(array) + bytes(array_sectors * ss - len(array))
    ids = {}
    if new_ids:
        fields["disk_guid"] = uuid.UUID(new_guid()).bytes_le
        ids["disk GUID"] = (gpt.guid_text(head.disk_guid),
                            gpt.guid_text(fields["disk_guid"]))
        for i in range(count):
            at = i * entry_size
            if array[at:at + 16] == bytes(16):
                continue
            old = gpt.guid_text(array[at + 16:at + 32])
            array[at + 16:at + 32] = uuid.UUID(new_guid()).bytes_le
            ids[f"partition {i + 1} PARTUUID"] = (
                old, gpt.guid_text(array[at + 16:at + 32]))
    last = disk.size // ss - 1
    fields["partition_entry_array_crc32"] = zlib.crc32(
        bytes(array[:count * entry_size]))
    if disk.size > desc.length:
        old_last = desc.length // ss - 1
        zero_range(disk, (old_last - array_sectors) * ss,
                   (array_sectors + 1) * ss)
        fields["last_usable_lba"] = last - 1 - array_sectors
    backup_array = last - array_sectors
    write_all(disk, backup_array * ss, bytes(array))
    write_all(disk, last * ss, _header(fields, last, 1, backup_array, ss))
    write_all(disk, head.partition_entry_lba * ss, bytes(array))
    write_all(disk, ss, _header(fields, 1, last, head.partition_entry_lba,
                                ss))
    return ids


def _header(fields, my_lba, alternate, array_lba, ss):
    """A GPT header sector (the bytes past the 92 declared are zero)."""
    fields = dict(fields, my_lba=my_lba, alternate_lba=alternate,
                  partition_entry_lba=array_lba, header_crc32=0)
    size = fields["header_size"]
    packed = gpt.GPT_HEADER.pack(**fields)
    padded = packed + bytes(ss - len(packed))
    crc = zlib.crc32(padded[:size])
    packed = gpt.GPT_HEADER.pack(**dict(fields, header_crc32=crc))
    return packed + bytes(ss - len(packed))
