"""Capturing a disk (or chosen partitions) into an image.

The plan is a list of areas: the table areas (MBR and the gap after it,
EBRs, the GPT backup) and the partitions, or the whole disk in raw mode.
Each area is read in chunks on a feeder thread; zero chunks become holes,
the rest is compressed and checksummed by threads, written in disk order."""

import os
import time
from datetime import datetime, timezone

from . import __version__
from .fs import registry as filesystems
from .host.device import open_source
from .host.identity import refuse_image_over_source
from .errors import InputError, TableError, UsageError
from .image.format import INDEX_ENTRY, RECORD_HEADER, stored_crc
from .image.compression import Compressor
from .image.holes import cheaper_pieces
from .capturespans import _windows, chunks  # noqa: F401 (_windows: tests)
from .host.inuse import rw_mounts
from .fs.usedmap import MapError
from .tables.partitions import (RAW_HINT, PartitionTable, held_sectors,
                                read_table)
from .pipeline import ordered_map, paused_gc
from .image.writer import ImageWriter

CHUNK_SIZE = 4 << 20
# What one more DATA or ZERO record adds to an image.
RECORD_COST = RECORD_HEADER.size + INDEX_ENTRY.size


def default_threads():
    return len(os.sched_getaffinity(0)) or 1


def _volume_area(disk, kind, start, size, number, raw, warnings):
    """The area dict of a partition (or a table-less disk) and the used runs
    to copy (None: every chunk, zero chunks as holes)."""
    area = {"kind": kind, "start": start, "size": size, "partition": number,
            "filesystem": filesystems.detect(disk.read, start, size),
            "method": "raw" if raw else "zero-skip"}
    found = filesystems.identity(disk.read, start, size, area["filesystem"])
    if found:
        area["label"], area["uuid"] = found
    if raw:
        return area, None
    if area["filesystem"] is None:
        claims = filesystems.signatures(disk.read, start, size)
        area["fallback"] = "no filesystem recognised" if not claims else \
            f"signatures of {' and '.join(claims)} (ambivalent): none used"
        return area, None
    where = f"partition {number}" if number else "the disk"
    try:
        used = filesystems.used_map(disk.read, start, size,
                                    area["filesystem"])
    except MapError as exc:
        warnings.append(f"{where} ({area['filesystem']}): its allocation "
                        f"maps cannot be trusted ({exc}); copying the whole "
                        f"partition")
        area["fallback"] = f"allocation maps not trusted: {exc}"
        return area, None
    if used is None:
        area["fallback"] = filesystems.why_whole(disk.read, start, size,
                                                 area["filesystem"])
        return area, None
    area.update(used.describe(), method="used-blocks")
    still = "" if used.volumes else "; its used-block map was still used"
    warnings.extend(f"{where}: {w}{still}" for w in used.warnings)
    return area, used.runs


def plan_areas(disk, table, partitions=None, raw=False):
    """The areas to capture, sorted by start, each a dict as stored in the
    image metadata, and beside each the used runs to copy (or None), and
    warnings about filesystems whose maps were not used.  `raw` copies
    every sector: of the whole disk, or with `partitions` of the table
    areas and those partitions."""
    if partitions is not None:
        known = {p.number for p in table.partitions}
        missing = [n for n in partitions if n not in known]
        if missing:
            have = ", ".join(str(n) for n in sorted(known)) or "none"
            raise InputError(
                f"{disk.path}: no partition {missing[0]} "
                f"(partitions on it: {have})")
    warnings = []
    if raw and partitions is None:
        return [({"kind": "disk", "start": 0, "size": disk.size,
                  "partition": None, "filesystem": None, "method": "raw"},
                 None)], warnings
    if not table.partitions:
        return [_volume_area(disk, "disk", 0, disk.size, None, False, warnings)
                ], warnings
    planned = [({"kind": area.kind, "start": area.start, "size": area.size,
                 "partition": None, "filesystem": None,
                 "method": "zero-skip"}, None) for area in table.areas]
    chosen = [p for p in table.partitions
              if partitions is None or p.number in partitions]
    held = {logical: holder for _, holder, logical in table.inner_ebrs
            if holder in {p.number for p in chosen}}
    for p in chosen:
        area, runs = _volume_area(disk, "partition", p.start, p.size,
                                  p.number, raw, warnings)
        if p.number in held:         # its EBR is in that one's data
            area["ebr_inside"] = held[p.number]
        planned.append((area, held_sectors(table, p.number, p.start, runs)))
    return sorted(planned, key=lambda p: p[0]["start"]), warnings


SECTOR_SIZES = (512, 1024, 2048, 4096)


def _logical_sector_size(disk, asked):
    """The sector size to read the source's table with: a block device's
    own, or for a disk file `asked` (--sector-size), else 512."""
    if asked is not None and asked not in SECTOR_SIZES:
        raise UsageError(f"--sector-size must be 512, 1024, 2048 or 4096, "
                         f"not {asked}")
    if disk.is_block:
        if asked is not None and asked != disk.logical_sector_size:
            raise InputError(
                f"{disk.path}: has {disk.logical_sector_size}-byte logical "
                f"sectors; --sector-size={asked} is for disk files")
        return disk.logical_sector_size
    return asked or disk.logical_sector_size


def _source_table(disk, raw, sector_size, asked=None):
    """The source's table, read as a capture may: partitions past the end
    of a truncated disk are cut there with a warning; for a whole-disk raw
    copy a table that cannot be read is no obstacle (kind "none", warned)."""
    try:
        said = "the device's logical sector size" if disk.is_block else \
            "--sector-size" if asked is not None else None
        return read_table(disk.read, disk.size, sector_size, truncated=True,
                          sector_size_from=said)
    except TableError as exc:
        if not raw:     # --partitions too: the table says what to copy
            raise TableError(f"{exc}; {RAW_HINT}") from None
        return PartitionTable("none", sector_size, disk.size,
                              "", warnings=[
                                  f"the partition table cannot be read "
                                  f"({exc}); every byte is copied as it is"])


def _mounted(source_path, table, partitions, allow, hint):
    """Refuse (or, when `allow`, warn about) read-write mounts on the
    parts of the source to be captured; returns the warnings."""
    lines = []
    for start, end, point, device in rw_mounts(source_path):
        hit = [p.number for p in table.partitions
               if p.start < end and start < p.end and
               (partitions is None or p.number in partitions)]
        if table.partitions and not hit:
            continue
        what = ", ".join(f"partition {n}" for n in hit) or "the disk"
        lines.append(f"{what} ({device}) is mounted read-write at {point}")
    if not lines:
        return []
    if not allow:
        raise InputError(
            f"{source_path}: {lines[0]}: it can change while it is read, so "
            f"the image may be inconsistent; unmount it or remount it "
            f"read-only (mount -o remount,ro)"
            + (f", or {hint}" if hint else ""))
    return [f"{line}: the image may be inconsistent" for line in lines]


def _refuse_over_source(source_path, output):
    """TargetError before anything is read when `output` (an image path and
    its volumes, or a stream such as stdout) is the source's storage."""
    if getattr(output, "path", None):
        refuse_image_over_source(source_path, output.path)
        return
    try:
        fd = output.fileobj.fileno()
    except (AttributeError, OSError, ValueError):
        return      # not a file (a BytesIO in a test): cannot be the source
    refuse_image_over_source(source_path, fd,
                             getattr(output, "name", "<stdout>"))


def _sealed(sealer, area, pieces):
    """Pieces of one chunk with their stored bytes sealed to their place
    (the stored check, CRC-32, is then of the sealed bytes)."""
    return [(offset, length, stored if stored is None else (
        stored[0], sealer.seal_chunk(area, offset, length, *stored[:2]),
        stored[2])) for offset, length, stored in pieces]


def capture(source_path, output, *, compressor, partitions=None, raw=False,
            threads=None, description="", progress=None,
            chunk_size=CHUNK_SIZE, source_label=None, extra_metadata=None,
            sector_size=None, allow_mounted=False, mounted_hint=None,
            sealer=None):
    """Capture `source_path` into `output` (a volumes output); a summary
    dict.  `source_label` replaces the source path recorded (imgx edits
    capture a scratch copy); `extra_metadata` adds keys.  `sector_size`:
    a disk file's logical sector size (a GPT or a device has its own).  A
    read-write mount is refused unless `allow_mounted` (then warned of);
    `mounted_hint` ends the refusal with the caller's way on.  On any
    failure, KeyboardInterrupt too, the output is aborted.  `sealer`
    (diskimage.image.seal.Sealer): an encrypted image; each piece is
    sealed by the worker that compressed it, digests are keyed."""
    threads = threads or default_threads()
    _refuse_over_source(source_path, output)
    with open_source(source_path) as disk:
        logical = _logical_sector_size(disk, sector_size)
        table = _source_table(disk, raw and partitions is None, logical,
                              sector_size)
        mounted = _mounted(source_path, table, partitions, allow_mounted,
                           mounted_hint)
        if not disk.is_block and table.kind == "gpt":
            # A disk file says nothing of its sectors; its GPT header
            # (EFI PART at LBA 1) does.
            logical = table.sector_size
        with paused_gc():   # the used maps are many small tuples, no cycles
            planned, warnings = plan_areas(disk, table, partitions, raw)
        areas = [area for area, _ in planned]
        metadata = {
            "tool": f"rdeploy {__version__}",
            "created": datetime.now(timezone.utc).isoformat(
                timespec="seconds"),
            "description": description,
            "mode": "raw" if raw else "used",
            "source": {"path": source_label or os.path.abspath(source_path),
                       "size": disk.size,
                       "logical_sector_size": logical,
                       "physical_sector_size": max(
                           logical, disk.physical_sector_size)},
            "table": dict(table.to_dict(),
                          warnings=table.warnings_for(partitions)),
            "areas": areas,
            "compression": {"codec": compressor.name,
                            "level": compressor.level},
        }
        metadata.update(extra_metadata or {})
        total = sum(area.get("used_bytes", area["size"])
                    for area in areas)
        started = time.monotonic()
        if sealer is not None:
            compressor = Compressor(compressor.name, compressor.level,
                                    digest=sealer.digest)
        writer = ImageWriter(output, metadata, chunk_size, sealer=sealer)
        try:
            done = 0

            def work(item):
                if item[0] == "tick":
                    return None, item[1], []
                if item[0] == "zero":
                    _, area, offset, length, weight = item
                    return area, weight, [(offset, length, None)]
                _, area, offset, data, weight = item
                pieces = [
                    (offset + start, length, stored) for start, length, stored
                    in cheaper_pieces(data, compressor(data), compressor,
                                      RECORD_COST)]
                if sealer is not None:
                    pieces = _sealed(sealer, area, pieces)
                # the CRC-32 of the stored bytes here, in the worker
                return area, weight, [(o, n, s if s is None else
                                       s + (stored_crc(s[1]),))
                                      for o, n, s in pieces]

            for area, weight, pieces in ordered_map(
                    work, chunks(disk, planned, chunk_size), threads):
                for offset, length, stored in pieces:
                    if stored is None:
                        writer.add_zero(area, offset, length)
                    else:
                        writer.add_data(area, offset, length, *stored)
                done += weight
                if progress:
                    progress(done, total)
            summary = writer.finish()
        except BaseException:
            writer.abort()
            raise
    if not disk.is_block and table.kind == "gpt" and sector_size is None \
            and table.sector_size != 512:
        summary["sector_size_found"] = f"{table.sector_size}-byte sectors " \
            f"(found from its GPT)"
    summary.update(encrypted=sealer is not None)
    summary.update(seconds=time.monotonic() - started, read_bytes=total,
                   source_size=disk.size,
                   warnings=mounted + table.warnings_for(partitions) +
                   warnings +
                   getattr(output, "warnings", []))
    return summary
