"""A btrfs restored into a grown partition under 256 MiB: the kernel's
resize ioctl refuses a btrfs smaller than that (EINVAL), so the plan
decides before writing that the partition grows and the filesystem keeps
its size, and says why; the restore then succeeds with `btrfs check
--readonly` clean, the filesystem's size unchanged and every sha256 kept.
--size and --resize=proportional alike; at 256 MiB and more it grows."""

import os

import pytest

from tests.fs.btrfs_tools import check, make_btrfs, read_files
from tests.fs.test_btrfs_roundtrip import fs_size, partitions
from tests.fsmaps import partitioned_disk, random_fill, rdeploy

pytestmark = pytest.mark.needs("mkfs.btrfs", "btrfs", "sfdisk", "blkid",
                               "losetup", root=True)
MiB = 1 << 20
KEEPS = "copy, partition grows, filesystem keeps its size"
WHY = "btrfs grows only into 256 MiB or more"


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("btrfs-floor")
    fs_image, files = make_btrfs(tmp, size=120 * MiB)
    path = tmp / "disk.img"
    (start, size), = partitioned_disk(path, [(fs_image, "btrfs")], "gpt")
    fs_image.unlink()
    image = tmp / "disk.rdi"
    rdeploy("capture", path, image, "--progress=none", "-q")
    return start, size, files, image


def restore_keeps(disk, target, *how):
    start, size, files, image = disk
    plan = rdeploy("restore", image, target, *how, "--dry-run",
                   "--progress=none").stdout
    assert KEEPS in plan and WHY in plan, plan
    assert "resize max" not in plan, plan
    done = rdeploy("restore", image, target, *how, "--yes",
                   "--progress=none")
    (new_start, new_size), = partitions(target)
    assert size < new_size < 256 * MiB, new_size
    assert fs_size(target, new_start, new_size) == size
    clean, output = check(target, new_start, new_size)
    assert clean, output
    assert read_files(target, target.parent, new_start, new_size) == files
    return done


def test_size_under_the_floor_keeps_the_filesystem(disk, tmp_path):
    target = random_fill(tmp_path / "t.img", 400 * MiB, 7)
    restore_keeps(disk, target, "--size=1=200M")


def test_proportional_under_the_floor_keeps_the_filesystem(disk, tmp_path):
    target = random_fill(tmp_path / "t.img", 180 * MiB, 8)
    restore_keeps(disk, target, "--resize=proportional")


def test_grow_at_the_floor_grows(disk, tmp_path):
    _, _, _, image = disk
    target = random_fill(tmp_path / "t.img", 400 * MiB, 9)
    plan = rdeploy("restore", image, target, "--size=1=256M", "--dry-run",
                   "--progress=none").stdout
    assert WHY not in plan and "resize max" in plan, plan
