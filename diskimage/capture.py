"""Capturing a disk (or chosen partitions) into an image.

The plan is a list of areas: the partition-table areas (MBR and the gap after
it, EBRs, the GPT backup) and the partitions, or the whole disk in raw mode.
Each area is read in chunks on a feeder thread; all-zero chunks become holes,
the rest is compressed and checksummed on a pool of threads, and the writer
appends the records in disk order.
"""

import os
import time
from datetime import datetime, timezone

from . import __version__, filesystems
from .device import open_source, same_storage
from .errors import InputError
from .partitions import read_table
from .pipeline import ordered_map
from .writer import ImageWriter

CHUNK_SIZE = 4 << 20


def default_threads():
    return len(os.sched_getaffinity(0)) or 1


def plan_areas(disk, table, partitions=None, raw=False):
    """The areas to capture, sorted by start, each a dict as stored in the
    image metadata."""
    if partitions is not None:
        known = {p.number for p in table.partitions}
        missing = [n for n in partitions if n not in known]
        if missing:
            have = ", ".join(str(n) for n in sorted(known)) or "none"
            raise InputError(
                f"{disk.path}: no partition {missing[0]} "
                f"(partitions on it: {have})")
    if raw:
        return [{"kind": "disk", "start": 0, "size": disk.size,
                 "partition": None, "filesystem": None, "method": "raw"}]
    areas = [{"kind": area.kind, "start": area.start, "size": area.size,
              "partition": None, "filesystem": None, "method": "zero-skip"}
             for area in table.areas]
    for part in table.partitions:
        if partitions is not None and part.number not in partitions:
            continue
        areas.append({"kind": "partition", "start": part.start,
                      "size": part.size, "partition": part.number,
                      "filesystem": filesystems.detect(disk.read, part.start,
                                                       part.size),
                      "method": "zero-skip"})
    if not table.partitions:
        areas = [{"kind": "disk", "start": 0, "size": disk.size,
                  "partition": None,
                  "filesystem": filesystems.detect(disk.read, 0, disk.size),
                  "method": "zero-skip"}]
    return sorted(areas, key=lambda a: a["start"])


def _chunks(disk, areas, chunk_size):
    """Yield ("data", area, offset, bytes) and ("zero", area, offset, length)
    items for the areas, merging runs of zero chunks into one hole."""
    zeros = bytes(chunk_size)
    for number, area in enumerate(areas):
        offset, end = area["start"], area["start"] + area["size"]
        hole = None
        while offset < end:
            length = min(chunk_size, end - offset)
            data = disk.read(offset, length)
            if len(data) != length:
                raise InputError(f"{disk.path}: read only {len(data)} of "
                                 f"{length} bytes at offset {offset}")
            if data == (zeros if length == chunk_size else bytes(length)):
                if hole is None:
                    hole = ["zero", number, offset, 0]
                hole[3] += length
            else:
                if hole is not None:
                    yield tuple(hole)
                    hole = None
                yield ("data", number, offset, data)
            offset += length
        if hole is not None:
            yield tuple(hole)


def capture(source_path, output, *, compressor, partitions=None, raw=False,
            threads=None, description="", progress=None,
            chunk_size=CHUNK_SIZE):
    """Capture `source_path` into `output` (a volumes output).  Returns a
    summary dict.  On any failure, including KeyboardInterrupt, the output
    is aborted: no file that looks like a complete image is left."""
    threads = threads or default_threads()
    with open_source(source_path) as disk:
        out_path = getattr(output, "path", None)
        if out_path and os.path.exists(out_path) and \
                same_storage(out_path, source_path):
            raise InputError(f"{out_path}: the image cannot be written over "
                             f"its own source")
        table = read_table(disk.read, disk.size, disk.logical_sector_size)
        areas = plan_areas(disk, table, partitions, raw)
        metadata = {
            "tool": f"rdeploy {__version__}",
            "created": datetime.now(timezone.utc).isoformat(
                timespec="seconds"),
            "description": description,
            "mode": "raw" if raw else "used",
            "source": {"path": os.path.abspath(source_path),
                       "size": disk.size,
                       "logical_sector_size": disk.logical_sector_size,
                       "physical_sector_size": disk.physical_sector_size},
            "table": table.to_dict(),
            "areas": areas,
            "compression": {"codec": compressor.name,
                            "level": compressor.level},
        }
        total = sum(a["size"] for a in areas)
        started = time.monotonic()
        writer = ImageWriter(output, metadata, chunk_size)
        try:
            done = 0

            def work(item):
                if item[0] == "zero":
                    return item
                _, area, offset, data = item
                return ("data", area, offset, len(data)) + compressor(data)

            for item in ordered_map(work, _chunks(disk, areas, chunk_size),
                                    threads):
                if item[0] == "zero":
                    _, area, offset, length = item
                    writer.add_zero(area, offset, length)
                else:
                    _, area, offset, length, codec, stored, digest = item
                    writer.add_data(area, offset, length, codec, stored,
                                    digest)
                done += length
                if progress:
                    progress(done, total)
            summary = writer.finish()
        except BaseException:
            writer.abort()
            raise
    summary.update(seconds=time.monotonic() - started, read_bytes=total,
                   source_size=disk.size, warnings=table.warnings)
    return summary
