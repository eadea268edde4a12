"""Round trips through the real commands: each filesystem inside a partition
table is captured with `rdeploy capture` (used blocks only) and restored
with `rdeploy restore` onto a disk file full of garbage; then the
filesystem's own fsck (e2fsck -fn, fsck.fat -n, fsck.exfat -n, ntfsfix -n)
must be clean and every file's sha256 must match.

Each filesystem holds a tree of small files, a large file that can only be
written into the holes left by deleting every other file of a full volume
(fragmented: checked with filefrag, mshowfat or ntfsinfo), and, where the
filesystem has them, a large sparse file and compressed files.
"""

import json
import os

import pytest

from tests.fsbuild import make_exfat, make_ext, make_fat, make_ntfs
from tests.fsmaps import (blkid, check_fs, needs_all_tools, partitioned_disk,
                          rdeploy, round_trip, run)

pytestmark = needs_all_tools

CASES = {
    # name: (builder, arguments, fs for the checks, table)
    "ext2-1k": (make_ext, (["mkfs.ext2", "-b", "1024"], 32), "ext2", "dos"),
    "ext3-2k": (make_ext, (["mkfs.ext3", "-b", "2048"], 40), "ext3", "gpt"),
    "ext4-1k": (make_ext, (["mkfs.ext4", "-b", "1024"], 32), "ext4", "gpt"),
    "ext4-2k": (make_ext, (["mkfs.ext4", "-b", "2048"], 40), "ext4", "dos"),
    "ext4-4k": (make_ext, (["mkfs.ext4", "-b", "4096"], 48), "ext4", "gpt"),
    "ext4-4k-no-flex_bg": (make_ext, (["mkfs.ext4", "-b", "4096", "-g",
                                       "4096", "-O", "^flex_bg"], 48),
                           "ext4", "gpt"),
    "ext4-no-64bit-no-csum": (make_ext, (["mkfs.ext4", "-b", "4096", "-O",
                                          "^64bit,^metadata_csum"], 48),
                              "ext4", "dos"),
    "ext4-64bit-csum-1k": (make_ext, (["mkfs.ext4", "-b", "1024", "-O",
                                       "64bit,metadata_csum"], 32),
                           "ext4", "gpt"),
    "ext4-bigalloc": (make_ext, (["mkfs.ext4", "-b", "4096", "-O",
                                  "bigalloc", "-C", "16384"], 64),
                      "ext4", "gpt"),
    "fat12-floppy": (make_fat, (12, 1440), "fat12", "dos"),
    "fat16": (make_fat, (16, 32 * 1024), "fat16", "dos"),
    "fat32": (make_fat, (32, 40 * 1024, "-s", "1"), "fat32", "gpt"),
    "exfat": (make_exfat, (40,), "exfat", "gpt"),
    "ntfs": (make_ntfs, (40,), "ntfs", "gpt"),
}


def used_blocks_area(image, number):
    info = json.loads(rdeploy("info", image, "--json").stdout)
    area, = [a for a in info["areas"] if a["partition"] == number]
    return area


@pytest.mark.parametrize("case", sorted(CASES))
def test_capture_restore_is_clean_and_files_match(tmp_path, case):
    builder, args, fs, table = CASES[case]
    fs_image, digests = builder(tmp_path, *args)
    assert blkid(fs_image)["TYPE"] == ("vfat" if "fat1" in fs or
                                       "fat3" in fs else fs)
    disk = tmp_path / "disk.img"
    (start, size), = partitioned_disk(disk, [(fs_image, fs)], table)
    fs_image.unlink()
    image, target, warnings = round_trip(disk, tmp_path)
    assert "warning" not in warnings
    area = used_blocks_area(image, 1)
    assert (area["method"], area["filesystem"]) == ("used-blocks", fs)
    check_fs(target, start, size, fs, digests)


def test_whole_disk_fat_stick(tmp_path):
    """A floppy-sized FAT12 with no partition table: one `disk` area."""
    disk, digests = make_fat(tmp_path, 12, 1440)
    image, target, _ = round_trip(disk, tmp_path)
    area = used_blocks_area(image, None)
    assert (area["kind"], area["method"], area["filesystem"]) == \
        ("disk", "used-blocks", "fat12")
    check_fs(target, 0, os.path.getsize(disk), "fat12", digests)


def test_hybrid_mbr_disk(tmp_path):
    """GPT with an ext4 and a FAT32 partition and a hybrid MBR (sgdisk -h)
    naming both: the MBR comes back byte for byte, sgdisk -v is clean."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ext_image, ext_files = make_ext(tmp_path / "a", ["mkfs.ext4"], 32)
    fat_image, fat_files = make_fat(tmp_path / "b", 32, 40 * 1024, "-s", "1")
    disk = tmp_path / "disk.img"
    places = partitioned_disk(disk, [(ext_image, "ext4"),
                                     (fat_image, "fat32")], "gpt")
    run("sgdisk", "-h", "1:2", disk)
    mbr = disk.read_bytes()[:512]
    types = [mbr[446 + 16 * i + 4] for i in range(4)]
    assert 0xEE in types and len([t for t in types if t not in (0, 0xEE)]) \
        == 2, types
    image, target, _ = round_trip(disk, tmp_path)
    assert target.read_bytes()[:512] == mbr
    assert "No problems found" in run("sgdisk", "-v", target).stdout
    check_fs(target, *places[0], "ext4", ext_files)
    check_fs(target, *places[1], "fat32", fat_files)
