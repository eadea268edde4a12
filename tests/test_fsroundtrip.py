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

import contextlib
import json
import os
import random
import re
import shutil
import struct

import pytest

from diskimage import demodisk
from tests.fsmaps import (COMPRESSED, KiB, MiB, MTOOLS_ENV, blkid, check_fs,
                          compressed_files,
                          fragmented_file, partitioned_disk,
                          rdeploy, round_trip, run, sparse_file, write_file)

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in (
        "sfdisk", "sgdisk", "mkfs.ext4", "filefrag", "mkfs.fat", "mcopy",
        "mshowfat", "mkfs.exfat", "mount.exfat-fuse", "mkntfs", "ntfs-3g",
        "ntfsinfo", "losetup")) or os.geteuid() != 0,
    reason="needs root, fdisk, gdisk, e2fsprogs, dosfstools, mtools, "
           "exfatprogs, exfat-fuse and ntfs-3g (make deps installs them)")


# --- filesystems -------------------------------------------------------------
@contextlib.contextmanager
def ext_mounted(image, mountpoint):
    os.makedirs(mountpoint, exist_ok=True)
    run("mount", "-t", "ext4", "-o", "loop", image, mountpoint)
    try:
        yield mountpoint
    finally:
        run("umount", mountpoint)


@contextlib.contextmanager
def exfat_mounted(image, mountpoint):
    os.makedirs(mountpoint, exist_ok=True)
    with demodisk.loop_device(image, 0, os.path.getsize(image),
                              read_only=False) as dev:
        run("mount.exfat-fuse", dev, mountpoint)
        try:
            yield mountpoint
        finally:
            run("umount", mountpoint)


def extents(path):
    """filefrag's count of a file's extents."""
    out = run("filefrag", path).stdout
    return int(re.search(r"(\d+) extents? found", out).group(1))


def make_ext(tmp_path, command, size_mib):
    """An ext filesystem filled through a loop mount: a tree, a 200 MiB
    sparse file with 4 runs of data, a fragmented large file."""
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(size_mib * MiB)
    run(*command, "-q", "-F", "-L", "rt-ext", image)
    rng = random.Random(size_mib)
    with ext_mounted(image, tmp_path / "mnt") as mnt:
        digests = {f"tree/{k}": v for k, v in demodisk.make_tree(
            os.path.join(mnt, "tree"), 80, 3, max_size=16 * KiB).items()}
        sparse_file(mnt, "sparse.bin", 200 * MiB, rng, digests)
        big = fragmented_file(mnt, rng, digests, piece=32 * KiB)
        assert extents(big) > 20
        assert os.stat(os.path.join(mnt, "sparse.bin")).st_blocks * 512 \
            < 1 * MiB
    return image, digests


def mtools(*args):
    return run(*args, env=MTOOLS_ENV).stdout


def make_fat(tmp_path, bits, size_kib, *options, piece=16 * KiB):
    """A FAT filled with mtools: a tree (no MiB-sized files on a floppy),
    then fillers of `piece` bytes in 90% of the free space, every other one
    deleted, and a large file in the holes."""
    files = 40 if size_kib < 4096 else 80
    image = tmp_path / "fs.img"
    run("mkfs.fat", "-C", "-F", bits, "-n", f"RT-FAT{bits}", *options, image,
        size_kib)
    source = tmp_path / "src"
    digests = demodisk.make_tree(source / "tree", files, bits,
                                 max_size=8 * KiB)
    digests = {f"tree/{k}": v for k, v in digests.items()}
    mtools("mcopy", "-s", "-Q", "-i", image, source / "tree", "::/")
    free = int(re.search(r"([\d ]+) bytes free", mtools(
        "mdir", "-i", image, "::/")).group(1).replace(" ", ""))
    rng = random.Random(bits)
    fill = source / "fill"
    count = int(free * 0.9) // piece
    for i in range(count):
        write_file(source, f"fill/f{i:04d}.bin", rng.randbytes(piece),
                   digests)
    mtools("mcopy", "-s", "-Q", "-i", image, fill, "::/")
    gone = [f"::/fill/f{i:04d}.bin" for i in range(0, count, 2)]
    mtools("mdel", "-i", image, *gone)
    for i in range(0, count, 2):
        del digests[f"fill/f{i:04d}.bin"]
    write_file(source, "fragmented.bin",
               rng.randbytes(len(gone) * piece // 2), digests)
    mtools("mcopy", "-Q", "-i", image, source / "fragmented.bin", "::/")
    chains = mtools("mshowfat", "-i", image, "::/fragmented.bin")
    assert chains.count("<") > 10, chains
    return image, digests


def make_exfat(tmp_path, size_mib):
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(size_mib * MiB)
    run("mkfs.exfat", "-L", "rt-exfat", image)
    rng = random.Random(size_mib)
    with exfat_mounted(image, tmp_path / "mnt") as mnt:
        digests = {f"tree/{k}": v for k, v in demodisk.make_tree(
            os.path.join(mnt, "tree"), 80, 4, max_size=16 * KiB).items()}
        fragmented_file(mnt, rng, digests)
    return image, digests


def ntfs_runs(image, inode):
    """The number of data runs `ntfsinfo -v` lists for an inode."""
    out = run("ntfsinfo", "-i", inode, "-v", image).stdout
    return len(re.findall(r"^\t\t\t0x\w+\s+0x\w+\s+0x\w+$", out, re.M))


def make_ntfs(tmp_path, size_mib):
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(size_mib * MiB)
    run("mkntfs", "-F", "-Q", "-L", "rt-ntfs", "-p", 2048, "-H", 255, "-S",
        63, image)
    rng = random.Random(size_mib)
    with demodisk._ntfs_mount(image, tmp_path / "mnt", "rw") as mnt:
        digests = {f"tree/{k}": v for k, v in demodisk.make_tree(
            os.path.join(mnt, "tree"), 400, 5, max_size=8 * KiB).items()}
        log = compressed_files(mnt, rng, digests)
        attributes, = struct.unpack(">I", os.getxattr(
            log, "system.ntfs_attrib_be"))
        assert attributes & COMPRESSED
        big = fragmented_file(mnt, rng, digests)
        inode = os.stat(big).st_ino
    assert ntfs_runs(image, inode) > 10
    return image, digests


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
