"""rdeploy swarm receive onto a target that runs out of space, on the lab
of tests/swarm/conftest.py: the target is a sparse file on a tmpfs the
test mounts, too small for the image's data.  libtorrent's write fails
(file_error_alert, ENOSPC): the receive ends with exit 8 and one line
naming the target and the cause, the target keeps its restore marker
(verify-target exits 13), and nothing hangs.  The same for a block device
whose writes fail only when the kernel writes its cache back (EIO): a
loop device over a file on that tmpfs."""

import os
import subprocess
import time

import pytest

from tests.rdeploy_helpers import check, rdeploy
from tests.swarm.mapdisk import loop
from tests.swarm.swarmlab import DISK, free_port

pytestmark = pytest.mark.needs("opentracker", "mkfs.ext4", "e2fsck",
                               "mkfs.fat", "fsck.fat", "mcopy", "sfdisk",
                               "debugfs", "mount", "losetup", root=True)
lt = pytest.importorskip("libtorrent")

#: The tmpfs: room for the guard zones and the marker, not for the wanted
#: pieces of the lab's disk (12 MiB of them random files)
ROOM_MIB = 6


@pytest.fixture
def small_mount(tmp_path):
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={ROOM_MIB}m",
                    "rooms-full", where], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", where], check=True)


def test_a_target_that_fills_up_is_exit_8_and_stays_marked(lab, small_mount):
    """A sparse target file on a 6 MiB tmpfs, for a disk of 23 MiB of
    wanted pieces: exit 8 within seconds, one line naming the target, the failed
    write and ENOSPC; its marker stays (verify-target 13, naming the
    swarm)."""
    target = small_mount / "pc.img"
    start = time.monotonic()
    result = rdeploy("swarm", "receive", lab["torrent"], target, "--yes",
                     "--wait=20", f"--listen=127.0.0.61:{free_port()}")
    took = time.monotonic() - start
    line = check(result, 8, f"{target}: swarm receive failed: file_write:",
                 "No space left on device (ENOSPC)",
                 "marked incomplete (rdeploy verify-target exits 13)")
    assert "rdeploy-swarm-" not in line, line   # not the private symlink
    assert took < 30, took          # measured 2-4 s: the data outruns 6 MiB
    result = rdeploy("verify-target", target)
    assert result.returncode == 13, result.stderr.decode()
    assert "swarm:" in result.stderr.decode(), result.stderr.decode()


def test_a_block_device_that_fails_writes(lab, small_mount):
    """A loop device (the test's own) over a sparse 64 MiB file on the 6
    MiB tmpfs: the kernel takes libtorrent's writes into its cache and
    writing them back fails (EIO).  Before diskfault.flush the check read
    the cache and passed: exit 0, "every chunk and the root digest
    checked", verify-target 0, on a disk that did not hold them.  Now:
    exit 8 naming the device and EIO, the marker written back."""
    backing = small_mount / "dev.img"
    with open(backing, "wb") as f:
        f.truncate(DISK)
    with loop(backing, 0, DISK) as dev:
        forget_old_errors(dev)
        start = time.monotonic()
        result = rdeploy("swarm", "receive", lab["torrent"], dev, "--yes",
                         "--wait=20", f"--listen=127.0.0.62:{free_port()}")
        took = time.monotonic() - start
        check(result, 8, f"{dev}: swarm receive failed: writing the pieces "
              f"back to the disk: Input/output error (EIO)",
              "marked incomplete (rdeploy verify-target exits 13)")
        assert took < 30, took
        verdict = rdeploy("verify-target", dev)
        assert verdict.returncode == 13, verdict.stderr.decode()


def forget_old_errors(dev):
    """The kernel keeps a block device's write-back error across loop
    detach and attach, and reports it to the next fsync of any new
    descriptor: a loop device an earlier run of this test left could fail
    the receive's first write (seen: "write failed on flush", exit 1).
    One fsync of our own takes it."""
    fd = os.open(dev, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
