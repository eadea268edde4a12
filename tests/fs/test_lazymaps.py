"""Used-block maps are streamed: planning a capture and walking its chunk
windows over a fragmented ext4 keeps memory bounded, whatever the number
of runs.

The volume: a 16 GiB sparse file made by mkfs.ext4, with one file
fallocated over 1 GiB and every other 4 KiB block of it punched out
(fallocate(2) with FALLOC_FL_PUNCH_HOLE, through ctypes): 131072 runs in the
block bitmaps, made in a few seconds without writing data.  Peak memory
(tracemalloc) is measured with and without that file; a list of the runs
would take over 100 bytes per run.
"""

import ctypes
import os
import tracemalloc

import pytest

from diskimage.fs.ext import used as ext  # noqa: F401  imported before any measurement
from diskimage.fs import registry
from diskimage.capture import CHUNK_SIZE, _windows, plan_areas
from diskimage.host.device import open_source
from diskimage.tables.partitions import read_table
from tests.fsbuild import ext_mounted
from tests.fsmaps import MiB, run, tool_used_bytes

GiB = 1 << 30
# Every record's module (and what it imports) is loaded before any
# measurement: modules are not runs.
registry.filesystems()
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x1, 0x2

pytestmark = pytest.mark.needs("mkfs.ext4", root=True)


def punch_every_other_block(path, size):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long,
                               ctypes.c_long]
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        if libc.fallocate(fd, 0, 0, size):
            raise OSError(ctypes.get_errno(), f"fallocate {path}")
        for offset in range(0, size, 8192):
            if libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              offset, 4096):
                raise OSError(ctypes.get_errno(), f"punch {path}")
    finally:
        os.close(fd)


def plan_and_walk(image):
    """Peak traced bytes of planning the capture of `image` (a table-less
    disk: one area, used blocks) and walking every chunk window of it;
    also the number of runs and of used bytes seen."""
    tracemalloc.start()
    try:
        with open_source(image) as disk:
            table = read_table(disk.read, disk.size, 512)
            (area, runs), = plan_areas(disk, table)[0]
            assert area["method"] == "used-blocks"
            count = used = 0
            for _, pieces in _windows(area, runs, CHUNK_SIZE):
                count += len(pieces)
                used += sum(length for _, length in pieces)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, count, used, area["used_bytes"]


def test_planning_memory_does_not_grow_with_the_runs(tmp_path):
    image = tmp_path / "big.img"
    with open(image, "wb") as f:
        f.truncate(16 * GiB)
    run("mkfs.ext4", "-q", "-F", "-b", "4096", image)
    with ext_mounted(image, tmp_path / "mnt") as mnt:
        punch_every_other_block(os.path.join(mnt, "frag.bin"), GiB)
    many_peak, many, used, area_used = plan_and_walk(image)
    assert used == area_used == tool_used_bytes(image, "ext4")
    assert many > 131072          # pieces (runs split at chunk windows)
    with ext_mounted(image, tmp_path / "mnt") as mnt:
        os.unlink(os.path.join(mnt, "frag.bin"))
    few_peak, few, _, _ = plan_and_walk(image)
    assert few < 1000
    assert many_peak < MiB, many_peak
    assert many_peak < few_peak + 512 * 1024, (many_peak, few_peak)
