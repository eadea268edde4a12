"""`rdeploy info` on used-blocks images: label, UUID, block size, used and
total bytes of each filesystem, compared with blkid -p and the filesystem's
own tools; why a partition was copied whole; and an inconsistent filesystem
that falls back to a whole-partition copy, with a warning naming why, and
still comes back byte for byte."""

import json
import os
import struct

import pytest

import demodisk
from diskimage.sizes import format_size
from tests.fsbuild import make_exfat, make_ext, make_fat, make_ntfs
from tests.fsmaps import (MiB, blkid, needs_all_tools, partitioned_disk,
                          range_digest, rdeploy, round_trip, tool_facts)

pytestmark = needs_all_tools


@pytest.fixture(scope="module")
def four_filesystems(tmp_path_factory):
    """A GPT disk: 1 ext4, 2 FAT32, 3 exFAT, 4 NTFS, 5 garbage that no
    probe recognises.  Returns (disk, [(start, size, fs)])."""
    tmp = tmp_path_factory.mktemp("info")
    parts = []
    for number, (fs, builder, args) in enumerate([
            ("ext4", make_ext, (["mkfs.ext4", "-b", "2048"], 32)),
            ("fat32", make_fat, (32, 40 * 1024, "-s", "1")),
            ("exfat", make_exfat, (40,)),
            ("ntfs", make_ntfs, (40,))], 1):
        (tmp / fs).mkdir()
        image, _ = builder(tmp / fs, *args)
        parts.append((image, fs))
    unknown = tmp / "unknown.img"
    unknown.write_bytes(os.urandom(2 * MiB))
    disk = tmp / "disk.img"
    places = partitioned_disk(disk, parts + [(unknown, "unknown")], "gpt")
    for image, _ in parts:
        image.unlink()
    return disk, [(start, size, fs) for (start, size), (_, fs)
                  in zip(places, parts + [(None, None)])]


def test_info_shows_what_the_tools_say(four_filesystems, tmp_path):
    disk, parts = four_filesystems
    image = tmp_path / "disk.rdi"
    rdeploy("capture", disk, image, "--progress=none")
    info = json.loads(rdeploy("info", image, "--json").stdout)
    text = rdeploy("info", image).stdout
    areas = {a["partition"]: a for a in info["areas"]
             if a["kind"] == "partition"}
    assert sorted(areas) == [1, 2, 3, 4, 5]
    for number, (start, size, fs) in enumerate(parts, 1):
        area = areas[number]
        if fs is None:
            assert area["method"] == "zero-skip" and area["filesystem"] is None
            assert area["fallback"] == "no filesystem recognised"
            assert "partition 5: whole partition copied (zero-skip): no " \
                "filesystem recognised" in text
            continue
        with demodisk.loop_device(disk, start, size) as dev:
            ids = blkid(dev)
            facts = tool_facts(dev, fs)
        assert area["method"] == "used-blocks" and "fallback" not in area
        assert area["filesystem"] == (fs if ids["TYPE"] != "vfat" else
                                      f"fat{ids['VERSION'][-2:]}")
        assert (area["label"], area["uuid"]) == (ids.get("LABEL", ""),
                                                 ids["UUID"])
        if "BLOCK_SIZE" in ids and fs.startswith("ext"):
            assert int(ids["BLOCK_SIZE"]) == area["block_size"]
        for key in ("block_size", "total_bytes", "used_bytes"):
            assert area[key] == facts[key], (fs, key)
        assert area["used_bytes"] < area["total_bytes"] <= size
        line = (f"partition {number}: {fs} uuid {ids['UUID']}, "
                f"{facts['block_size']}-byte blocks, "
                f"{format_size(facts['used_bytes'])} used of "
                f"{format_size(facts['total_bytes'])}")
        assert line in text
        assert ids.get("LABEL", "-") in text


# --- inconsistent filesystems fall back to the whole partition ---------------
def corrupt_ext4_descriptor(disk, start):
    """Point group 1's block bitmap past the end of the filesystem, in the
    first group descriptor block (after the superblock's block)."""
    with open(disk, "r+b") as f:
        f.seek(start + 1024)
        sb = f.read(1024)
        block_size = 1024 << struct.unpack_from("<I", sb, 24)[0]
        count, = struct.unpack_from("<I", sb, 4)
        desc_size = struct.unpack_from("<H", sb, 0xFE)[0] or 32
        table = start + max(2048, block_size)
        f.seek(table + desc_size)
        f.write(struct.pack("<I", count + 1000))


def corrupt_fat_size(disk, start):
    """BPB_TotSec16 of 0xFFFF sectors: the filesystem says it is larger
    than its partition.  (A FAT size of 0xFFFF sectors, which this case
    used to write, is no FAT at all to blkid -p, and so to detection.)"""
    with open(disk, "r+b") as f:
        f.seek(start + 19)
        f.write(struct.pack("<H", 0xFFFF))


@pytest.mark.parametrize("fs, builder, args, corrupt, reason", [
    ("ext4", make_ext, (["mkfs.ext4", "-b", "1024"], 24),
     corrupt_ext4_descriptor, "group 1's block bitmap at block"),
    ("fat16", make_fat, (16, 16 * 1024), corrupt_fat_size,
     "larger than the partition")])
def test_inconsistent_filesystem_is_copied_whole(tmp_path, fs, builder, args,
                                                 corrupt, reason):
    fs_image, _ = builder(tmp_path, *args)
    disk = tmp_path / "disk.img"
    (start, size), = partitioned_disk(disk, [(fs_image, fs)], "dos")
    corrupt(disk, start)
    image, target, stderr = round_trip(disk, tmp_path)
    assert f"warning: partition 1 ({fs}): its allocation maps cannot be " \
        f"trusted" in stderr and reason in stderr, stderr
    area, = [a for a in json.loads(rdeploy("info", image, "--json").stdout)
             ["areas"] if a["partition"] == 1]
    assert area["method"] == "zero-skip" and reason in area["fallback"]
    assert reason in rdeploy("info", image).stdout
    assert range_digest(target, start, size) == range_digest(disk, start,
                                                             size)
