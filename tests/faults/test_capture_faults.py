"""Faults under a capture, injected for real (tests/faultlayers.py): read
errors of the source disk, a filesystem that fills up under the image,
SIGKILL in the middle.  After each: one line that names the fault, and
nothing left that looks like a finished image."""

import os
import signal
import subprocess

import pytest

from tests import faultlayers
from tests.faults.conftest import nbd
from tests.rdeploy_helpers import ROOT, check, command, env, leftovers, rdeploy
from tests.smalldisk import MiB, SECTOR, sha256
from tests.signals import in_progress, progress_until

#: The random bytes of the small disk's partition 2 start here
#: (tests/smalldisk.py): used data, whatever the filesystem.
DATA = 67584 * SECTOR


@nbd
def test_capture_with_bad_sectors_in_the_source(small_disk_ro, tmp_path):
    """Eight sectors of the source's data fail to read (EIO, nbdkit's
    ddrescue filter): exit 1, one line naming the source and an offset at
    or before the bad sectors, within a chunk of them; no image, no
    partial."""
    bad = DATA + MiB + 4096
    out = tmp_path / "out"
    out.mkdir()
    image = out / "disk.rdi"
    with faultlayers.bad_sectors(small_disk_ro, tmp_path / "nbd",
                                 [(bad, 8 * SECTOR)]) as source:
        result = rdeploy("capture", source.path, image)
    line = check(result, 1, "read failed at offset", "input/output error",
                 str(source.path))
    offset = int(line.split("read failed at offset ")[1].split(":")[0])
    assert bad - 4 * MiB <= offset <= bad, line
    assert os.listdir(out) == []


@nbd
def test_capture_when_the_source_stops_reading(small_disk_ro, tmp_path):
    """Every read fails from the middle of the capture on (nbdkit's error
    filter, its trigger set after the first progress event): exit 1, one
    line, nothing left."""
    out = tmp_path / "out"
    out.mkdir()
    image = out / "disk.rdi"
    layer, trigger = faultlayers.failing_reads(small_disk_ro,
                                               tmp_path / "nbd")
    with layer:
        trigger.on()
        result = rdeploy("capture", layer.path, image)
    check(result, 1, "read failed at offset", "input/output error")
    assert os.listdir(out) == []
