"""A restore that fails after it wrote to its target (no space, a stream
that ends early, a read-back that differs): exit 8, the line says the
target was changed, and the disk does not look like a good copy: the
table is wiped, or kept with the bytes that lost their filesystem named."""

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.rdeploy_helpers import ROOT, check, command, env, rdeploy
from tests.smalldisk import DISK_SIZE, MiB, has_partitions, marked, read_at

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4")
needs_root = pytest.mark.needs("losetup", root=True)


@needs_root
def test_restore_over_an_existing_file_on_a_full_filesystem(disk, tmpfs):
    """No space after the first write to a target that existed: exit 8,
    the cause and that the target was changed in the one line, and the
    target left with no table (issue 11 item 9)."""
    target = tmpfs / "other.img"
    subprocess.run(["cp", "--sparse=always", disk["other"], target],
                   check=True)
    assert has_partitions(target)
    check(rdeploy("restore", disk["image"], target, "--yes"), 8,
          "no space", "target was changed", "no valid partition table")
    assert target.stat().st_size == DISK_SIZE
    assert marked(target)
    assert not has_partitions(target)


def test_damaged_stream_into_one_partition_of_a_disk(disk, tmp_path):
    """--partitions=2 over a disk with the same table, from a stream that
    ends early: exit 8, and the line says the table is kept and which
    bytes lost their filesystem start; the table and partition 1 are as
    they were."""
    target = tmp_path / "disk.img"
    subprocess.run(["cp", "--sparse=always", disk["source"], target],
                   check=True)
    table, part1 = read_at(target, 0, MiB), read_at(target, MiB, 32 * MiB)
    data = Path(disk["image"]).read_bytes()
    result = subprocess.run(command("restore", "-", target, "--yes",
                                    "--partitions=2"), env=env(), cwd=ROOT,
                            input=data[:len(data) * 3 // 4],
                            capture_output=True, timeout=60)
    line = check(result, 8, "the target was changed", "table is kept",
                 "no valid filesystem start")
    start = int(re.search(r"at bytes (\d+)-", line).group(1))
    assert marked(target, start)
    assert read_at(target, 0, MiB) == table
    assert read_at(target, MiB, 32 * MiB) == part1


def test_verify_difference_over_an_existing_disk(disk, tmp_path):
    """Another writer changes the target behind the restore's back (bytes
    of partition 2, again and again): --verify's read-back finds the
    difference after the table was written.  Exit 8, not 5 ("refused,
    nothing written"), and the table is wiped again, so the disk does not
    look like a good copy."""
    target = tmp_path / "other.img"
    subprocess.run(["cp", "--sparse=always", disk["other"], target],
                   check=True)
    stop = threading.Event()

    def meddle():
        with open(target, "r+b", buffering=0) as f:
            while not stop.is_set():
                os.pwrite(f.fileno(), b"\xff" * 4096, 34 * MiB)
                time.sleep(0.001)

    meddler = threading.Thread(target=meddle)
    meddler.start()
    try:
        result = rdeploy("restore", disk["image"], target, "--yes",
                         "--verify")
    finally:
        stop.set()
        meddler.join()
    check(result, 8, "read-back differs", "the target was changed",
          "no valid partition table")
    assert marked(target)
    assert not has_partitions(target)
