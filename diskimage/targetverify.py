"""Checking a restore target: does it hold an interrupted restore (its
restore marker), and, given the image, do its bytes equal the image's?

:func:`verify_target` reads the target only.  Without an image it raises
IncompleteTargetError (exit 13) for a marked target and returns otherwise.
With one it compares every chunk the target should hold with the image's
digests: on a marked target the chunks before the checkpoint, outside the
zones written last (the table areas and the first MiB of each partition);
on a finished one every chunk, each partition where the target's table puts
the partition of that number.  The first difference is TargetDiffersError
(exit 14) naming the disk offset; then a marker is exit 13.
"""

from . import markername, restoremark
from .errors import (DiskImageError, IncompleteTargetError,
                     TargetDiffersError)
from .host.device import open_source
from .image import format as fmt
from .image.volumes import shown_name
from .restoreplan import GUARD_SIZE, TABLE_KINDS
from .tables.partitions import read_table
from .words import counted

BLOCK = 4 << 20


def incomplete_text(target, marker):
    """The one line for a marked target: what was being restored, how far
    it got, and the command that finishes it (diskimage.markername knows
    the kinds of source a marker names)."""
    return (f"{target}: an interrupted restore of "
            f"{markername.described(marker.name)} (image "
            f"{marker.image_id}), {marker.progress_text()}; "
            f"{markername.finish_advice(marker.name, target)}")


def verify_target(target, image=None, *, progress=None, passphrase=None):
    """Check *target* (a disk or disk file) as the module says (*image*: a
    path, or a seekable source already open, such as an HttpInput, which
    the caller closes).  Returns a
    summary dict (`compared_bytes`, `chunks`, `skipped`: what was not
    compared and why)."""
    with open_source(target) as disk:
        marker = restoremark.find(disk)
        if image is None:
            if marker is not None:
                raise _incomplete(incomplete_text(target, marker),
                                  {"target": target}, marker)
            return {"target": target, "incomplete": False}
        from .image.reader import ImageReader
        kwargs = {"passphrase": passphrase} if passphrase else {}
        with ImageReader(image, **kwargs) as reader:
            summary = _compare(disk, target, reader, marker, progress)
    summary.update(target=target, image=shown_name(image),
                   incomplete=marker is not None)
    if marker is not None:
        raise _incomplete(incomplete_text(target, marker) +
                          f" (the {counted(summary['chunks'], 'chunk')} "
                          f"restored so far equal the image)", summary,
                          marker)
    return summary


def marker_summary(marker):
    """A marker as the JSON of verify-target says it."""
    return {"image": marker.name, "source": markername.kind(marker.name),
            "root": marker.root.hex() if marker.root else None,
            "front": marker.front.hex(), "checkpoint": marker.checkpoint,
            "chunks": marker.chunks or None,
            "done_bytes": marker.done_bytes,
            "total_bytes": marker.total_bytes,
            "started": marker.started, "updated": marker.updated}


def _incomplete(text, summary, marker):
    """IncompleteTargetError with `summary` (what verify-target --json
    prints before it exits 13): incomplete, and the marker's fields."""
    exc = IncompleteTargetError(text)
    exc.summary = dict(summary, incomplete=True,
                       marker=marker_summary(marker), message=text)
    return exc


def image_root(reader):
    """The root digest of an open ImageReader (its trailer's digest)."""
    root = getattr(reader, "root", None)
    if root:
        return root
    src = reader.source
    at = src.size - fmt.TRAILER.size
    return fmt.unpack_trailer(src.read_at(at, fmt.TRAILER.size), at)["digest"]


def _compare(disk, target, reader, marker, progress):
    meta = reader.metadata
    if marker is not None:
        root = image_root(reader)
        if (marker.root and marker.root != root) or \
                marker.front != _front(reader):
            raise _incomplete(
                incomplete_text(target, marker) + f"; that is another image "
                f"than {reader.source.name} (root {root.hex()})",
                {"target": target, "image": reader.source.name,
                 "same_image": False}, marker)
        if not marker.in_place:
            return {"chunks": 0, "compared_bytes": 0, "skipped": [
                "every chunk: the interrupted restore moved partitions"]}
        deltas, skipped = {}, []
        entries = reader.entries[:marker.checkpoint]
        zones = _late_zones(meta)
    else:
        deltas, skipped = _deltas(disk, meta)
        entries = reader.entries
        zones = []
    digest_of = getattr(reader, "digest_of", None) or fmt.checksum
    total = sum(e.length for e in entries
                if marker is not None or e.area in deltas)
    done = chunks = 0
    for number, entry in enumerate(entries):
        delta = 0 if marker is not None else deltas.get(entry.area)
        if delta is None:
            continue
        _compare_chunk(disk, target, reader, number, entry, delta, zones,
                       digest_of)
        chunks += 1
        done += entry.length
        if progress:
            progress(done, total)
    return {"chunks": chunks, "compared_bytes": done, "skipped": skipped}


def _front(reader):
    import hashlib
    header = reader.source.read_at(0, fmt.FILE_HEADER.size)
    record = fmt.FILE_HEADER.size
    fields = fmt.RECORD_HEADER.unpack(
        reader.source.read_at(record, fmt.RECORD_HEADER.size), at=record)
    layout = getattr(reader, "layout", None)
    size = (layout.record.size if layout is not None
            else fmt.RECORD_HEADER.size) + fields["stored_size"]
    return hashlib.sha256(header + reader.source.read_at(record, size)) \
        .digest()


def _late_zones(meta):
    """What an unfinished restore has not written yet whatever its
    checkpoint: the table areas and the first MiB of the disk and of each
    partition (the guard zones of every kind of plan)."""
    zones = []
    for area in meta["areas"]:
        if area["kind"] in TABLE_KINDS:
            zones.append((area["start"], area["start"] + area["size"]))
        else:
            zones.append((area["start"], area["start"] +
                          min(area["size"], GUARD_SIZE)))
    return zones


def _deltas(disk, meta):
    """Where each image area lies on a finished target: {area: delta}, and
    what is left out and why."""
    kind = meta["table"]["kind"]
    areas = meta["areas"]
    if kind == "none":
        return {i: 0 for i in range(len(areas))}, []
    try:
        table = read_table(disk.read, disk.size, disk.logical_sector_size)
    except DiskImageError as exc:
        raise TargetDiffersError(f"{disk.path}: its partition table cannot "
                                 f"be read ({exc}), so it does not hold the "
                                 f"image") from None
    theirs = {p.number: p for p in table.partitions}
    deltas, skipped, same_layout = {}, [], disk.size == meta["source"]["size"]
    for i, area in enumerate(areas):
        if area["kind"] != "partition":
            continue
        slot = theirs.get(area["partition"])
        if slot is None:
            raise TargetDiffersError(
                f"{disk.path}: has no partition {area['partition']}, which "
                f"the image holds at disk offset {area['start']}")
        if slot.size != area["size"]:
            skipped.append(f"partition {area['partition']}: resized on the "
                           f"target")
            same_layout = False
            continue
        deltas[i] = slot.start - area["start"]
        same_layout = same_layout and deltas[i] == 0
    tables = [i for i, a in enumerate(areas) if a["kind"] in TABLE_KINDS]
    if same_layout:
        deltas.update((i, 0) for i in tables)
    elif tables:
        skipped.append("the partition table (laid out for this target)")
    return deltas, skipped


def _compare_chunk(disk, target, reader, number, entry, delta, zones,
                   digest_of):
    start = entry.disk_offset + delta
    data = disk.read(start, entry.length)
    digest = getattr(entry, "digest", None) or entry.checksum
    pieces = _outside(zones, entry.disk_offset, entry.length)
    whole = pieces == [(0, entry.length)]
    if whole and len(data) == entry.length:
        if entry.is_zero:
            if not any(data):
                return
        elif digest_of(data) == digest:
            return
    image = reader.read_entry(number)
    for lo, hi in pieces:
        at = _first_difference(data, image, lo, hi)
        if at is not None:
            raise TargetDiffersError(
                f"{target}: differs from the image at disk offset "
                f"{start + at} (chunk {number})")


def _first_difference(a, b, lo, hi):
    """The first index in [lo, hi) where *a* and *b* differ (a may be short:
    a target that ends early), or None."""
    if len(a) < hi and a[lo:] == b[lo:len(a)]:
        return max(lo, len(a))
    step = 1 << 16
    for block in range(lo, hi, step):
        end = min(hi, block + step)
        if a[block:end] != b[block:end]:
            return next(i for i in range(block, end) if i >= len(a)
                        or a[i] != b[i])
    return None


def _outside(zones, offset, length):
    """The pieces (relative lo, hi) of [offset, offset+length) outside every
    zone."""
    pieces = [(offset, offset + length)]
    for z_start, z_end in zones:
        cut = []
        for lo, hi in pieces:
            if z_end <= lo or z_start >= hi:
                cut.append((lo, hi))
                continue
            if lo < z_start:
                cut.append((lo, z_start))
            if z_end < hi:
                cut.append((z_end, hi))
        pieces = cut
    return [(lo - offset, hi - offset) for lo, hi in pieces]
