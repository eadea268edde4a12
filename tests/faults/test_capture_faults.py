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
from tests.smalldisk import MiB, SECTOR
from tests.signals import wait_for

#: The random bytes of the small disk's partition 2 start here
#: (tests/smalldisk.py): used data, whatever the filesystem.
DATA = 67584 * SECTOR
#: Bytes of those that no probe of the planning reads (the probes read a
#: partition's start and 64 KiB to 4 MiB into it): a capture reading them
#: is copying data, with its partial made.
HELD = (DATA + 2 * MiB + 128 * 1024, DATA + 3 * MiB)


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


@nbd
def test_sigkill_during_capture_leaves_only_the_partial(small_disk_ro,
                                                        tmp_path):
    """The source's reads past the middle of its data wait (nbdkit's sh
    plugin: tests/faultlayers.Held), so the capture is known to be in the
    middle when SIGKILL lands: only NAME.partial is left, never NAME; the
    next capture of the same name replaces it (saying so) and succeeds."""
    out = tmp_path / "out"
    out.mkdir()
    image = out / "disk.rdi"
    with faultlayers.Held(small_disk_ro, tmp_path / "nbd",
                          hold=HELD) as source:
        proc = subprocess.Popen(command("capture", source.path, image),
                                env=env(), cwd=ROOT,
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            wait_for(source.reached.exists, 60, "the held read")
            wait_for(lambda: leftovers(image) == ["disk.rdi.partial"], 60,
                     "the partial image")
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert leftovers(image) == ["disk.rdi.partial"]
    assert os.path.getsize(f"{image}.partial") > 0
    again = rdeploy("capture", small_disk_ro, image)
    assert again.returncode == 0, again.stderr.decode()
    assert "partial" in again.stderr.decode().lower()
    assert leftovers(image) == ["disk.rdi"]
    verified = rdeploy("verify", image)
    assert verified.returncode == 0, verified.stderr.decode()


@pytest.mark.needs("sfdisk", "mkfs.ext4", "e2fsck", "losetup", root=True)
def test_capture_onto_a_small_device_that_fills_up(small_disk_ro, tmp_path):
    """The image goes to ext4 on a 2 MiB loop device (the image needs
    over 3 MiB): exit 6, one line saying no space, and the filesystem holds
    nothing (no NAME, no NAME.partial) and checks clean."""
    where = tmp_path / "small"
    with faultlayers.small_ext4(tmp_path / "small.ext4", where,
                                size_mib=2) as fs:
        free = os.statvfs(fs)
        image = fs / "disk.rdi"
        result = rdeploy("capture", small_disk_ro, image)
        check(result, 6, "no space")
        assert sorted(os.listdir(fs)) == ["lost+found"]
        after = os.statvfs(fs)
        assert after.f_bfree == free.f_bfree
    fsck = subprocess.run(["e2fsck", "-fn", tmp_path / "small.ext4"],
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
