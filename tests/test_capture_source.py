"""rdeploy capture of awkward sources: a disk file cut short (its table
runs past the end), 4096-byte sectors recorded from a disk file, a
partition mounted read-write, and option combinations that used to be
ignored (issue 11 items 11, 12, 14, 19).

The disks are made by sfdisk and mkfs; rdeploy runs as a subprocess.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.smalldisk import MiB, sfdisk
from tests.test_bad_input import check, rdeploy

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("losetup"),
    reason="needs root and losetup")


def info(image):
    result = rdeploy("info", image, "--json")
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def restored(tmp_path, image, name="back.img"):
    target = tmp_path / name
    result = rdeploy("restore", image, target, "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    return target


# --- item 11: a table that runs past the end of a truncated disk file -------
@pytest.fixture(params=["gpt", "dos"])
def truncated(request, tmp_path):
    """A 64 MiB disk with partition 2 from 33 MiB to the end, cut to
    48 MiB: 16 MiB of partition 2 (and the backup GPT) are missing."""
    path = tmp_path / f"cut-{request.param}.img"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    sfdisk(path, f"label: {request.param}\nstart=2048, size=65536\n"
                 f"start=67584\n")
    with open(path, "r+b") as f:
        f.seek(34 * MiB)
        f.write(b"DATA NEAR THE CUT " * 1000)
        f.truncate(48 * MiB)
    return path


def test_truncated_disk_is_captured_with_a_warning(truncated, tmp_path):
    image = tmp_path / "cut.rdi"
    result = rdeploy("capture", truncated, image)
    assert result.returncode == 0, result.stderr.decode()
    err = result.stderr.decode()
    assert "partition 2" in err and "past the end" in err, err
    assert "missing" in err, err
    area = [a for a in info(image)["areas"] if a["partition"] == 2][0]
    assert area["start"] + area["size"] == 48 * MiB
    back = restored(tmp_path, image)
    assert back.read_bytes() == truncated.read_bytes()


def test_truncated_disk_raw(truncated, tmp_path):
    image = tmp_path / "raw.rdi"
    result = rdeploy("capture", truncated, image, "--raw", "-q")
    assert result.returncode == 0, result.stderr.decode()
    back = restored(tmp_path, image)
    assert back.read_bytes() == truncated.read_bytes()


def test_raw_needs_no_sane_table(tmp_path):
    """A GPT whose entry array CRC is broken (and no backup): --raw copies
    every byte; the default mode refuses with the table's fault."""
    path = tmp_path / "bad.img"
    with open(path, "wb") as f:
        f.truncate(8 * MiB)
    sfdisk(path, "label: gpt\nstart=2048\n")
    with open(path, "r+b") as f:
        f.seek(1024 + 10)       # inside the first entry
        f.write(b"\xff\xff")
        f.truncate(6 * MiB)     # the backup GPT is gone too
    check(rdeploy("capture", path, tmp_path / "used.rdi"), 3, "GPT")
    image = tmp_path / "raw.rdi"
    result = rdeploy("capture", path, image, "--raw")
    assert result.returncode == 0, result.stderr.decode()
    assert "partition table" in result.stderr.decode()
    assert restored(tmp_path, image).read_bytes() == path.read_bytes()


# --- item 19: option combinations -------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from tests.smalldisk import build_disk
    return build_disk(tmp_path_factory.mktemp("small") / "disk.img")


@pytest.mark.parametrize("split", ["0", "1", "4095", "0.001K"])
def test_split_below_the_smallest_size(small, tmp_path, split):
    """--split=0 and --split=1 get the same usage error, naming the
    smallest size allowed."""
    image = tmp_path / "out.rdi"
    check(rdeploy("capture", small, image, f"--split={split}"), 2,
          "--split", "at least 4K", repr(split))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("level", ["0", "5"])
def test_level_with_no_compression(small, tmp_path, level):
    image = tmp_path / "out.rdi"
    check(rdeploy("capture", small, image, "--compress=none",
                  f"--level={level}"), 2, "--level", "--compress=none")
    assert not list(tmp_path.iterdir())


def test_raw_honours_partitions(small, tmp_path):
    """--raw --partitions=1: the table areas and partition 1, every sector
    of it, and not partition 2."""
    image = tmp_path / "raw1.rdi"
    result = rdeploy("capture", small, image, "--raw", "--partitions=1",
                     "-q")
    assert result.returncode == 0, result.stderr.decode()
    areas = info(image)["areas"]
    parts = [a for a in areas if a["kind"] == "partition"]
    assert [(a["partition"], a["method"]) for a in parts] == [(1, "raw")]
    assert parts[0]["size"] == 65536 * 512
    assert {a["kind"] for a in areas} == {"head", "gpt-backup", "partition"}
