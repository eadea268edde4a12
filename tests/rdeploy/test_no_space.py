"""rdeploy onto a full filesystem (a 2 MiB tmpfs): exit 6 and one line
that says no space, and nothing left in the filesystem.

tmpfs needs root; the mounts are undone after each test
(tests/rdeploy/conftest.py)."""

import os
import re

import pytest

from tests.rdeploy_helpers import check, rdeploy

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4")
needs_root = pytest.mark.needs("losetup", root=True)


@needs_root
def test_capture_onto_a_full_filesystem(disk, tmpfs):
    image = tmpfs / "disk.rdi"
    check(rdeploy("capture", disk["source"], image), 6, "no space")
    assert os.listdir(tmpfs) == []


@needs_root
def test_restore_onto_a_full_filesystem(disk, tmpfs):
    target = tmpfs / "disk.img"
    check(rdeploy("restore", disk["image"], target, "--yes"), 6, "no space")
    assert os.listdir(tmpfs) == []



@needs_root
def test_split_capture_onto_a_full_filesystem_counts_the_volume(disk,
                                                                 tmpfs):
    """The no-space line of a split capture gives the bytes written to that
    volume, and the image's total beside them, not the total as the
    volume's (issue 11 round 3, volmsg item 2)."""
    split = 512 * 1024
    line = check(rdeploy("capture", disk["source"], tmpfs / "x.rdi",
                         f"--split={split}"), 6, "no space")
    match = re.search(r": (\S+)\.partial: no space left after (\d+) bytes "
                      r"written to it \((\d+) bytes of the image in all\)$",
                      line)
    assert match, line
    name, in_volume, total = match[1], int(match[2]), int(match[3])
    number = int(name.rsplit(".r", 1)[1])
    assert name == f"{tmpfs}/x.r{number:02d}"
    assert 0 <= in_volume < split
    assert total == number * split + in_volume
    assert os.listdir(tmpfs) == []
