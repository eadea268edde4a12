"""Damaged ext filesystems never lose data silently: each is built the way
e2fsprogs' own test suite builds its cases (mke2fs, fill, then debugfs
`set_bg`, `ssv`, `freeb`, `zap_block`), captured with `rdeploy capture`
and restored onto garbage with `rdeploy restore`; `e2fsck -fn` gives the
same verdict (exit code class and the problems it lists) on the copy as on
the original, and capture's warning names the reason the map was not
used.  A clean control and a superblock count that lags (which e2fsck
accepts) keep their map."""

import os
import random
import re

import pytest

from tests.fs.damaged_tools import (MiB, damaged_round_trip, extract, run,
                                    sha256)
from tests.fsbuild import ext_mounted
from tests.fsmaps import rdeploy

pytestmark = pytest.mark.needs("mke2fs", "debugfs", "dumpe2fs", "e2fsck",
                               "sfdisk")

WARNING = re.compile(r"warning: partition 1 \(ext[34]\): its allocation maps "
                     r"cannot be trusted")


def make_ext4(tmp_path, block=1024, size=16 * MiB, options=()):
    """An ext4 image made over garbage (nodiscard keeps it in the free
    blocks), 1 KiB blocks and 2048-block groups (8 groups) by default,
    holding five files of random data.  Returns (image, {name: sha256})."""
    rng = random.Random(14)
    src, digests = tmp_path / "src", {}
    src.mkdir()
    for k in range(5):
        data = rng.randbytes(200_000 + 997 * k)
        (src / f"f{k}").write_bytes(data)
        digests[f"f{k}"] = sha256(data)
    image = tmp_path / "fs.img"
    image.write_bytes(rng.randbytes(size))
    run("mkfs.ext4", "-q", "-F", "-b", block, "-g", 2 * block,
        "-E", "nodiscard", *options, "-d", src, image)
    return image, digests


def debugfs(image, *commands):
    run("debugfs", "-w", "-f", "-", image, input="\n".join(commands) + "\n")


def layout(image):
    """Each group's block bitmap, inode table start and free count, from
    dumpe2fs."""
    text = run("dumpe2fs", image).stdout
    return [{"bitmap": int(b), "table": int(t), "free": int(f)}
            for b, t, f in re.findall(
                r"Block bitmap at (\d+).*?Inode table at (\d+)-\d+.*?"
                r"(\d+) free blocks", text, re.S)]


def file_blocks(image, name):
    return [int(b) for b in run("debugfs", "-R", f"blocks /{name}",
                                image).stdout.split()]


def file_data(disk, start, size, name, tmp_path):
    """The bytes debugfs reads of /name in the partition of `disk`."""
    part = extract(disk, start, size, tmp_path / "part.img")
    out = tmp_path / "dumped"
    run("debugfs", "-R", f"dump /{name} {out}", part)
    data = out.read_bytes()
    out.unlink()
    part.unlink()
    return data


def check_same_verdict(image, tmp_path, reason):
    """The round trip of a damaged `image`: same e2fsck verdict, capture
    warned naming `reason`.  Returns (verdict, the restored partition)."""
    before, after, stderr, _, where = damaged_round_trip(image, "ext4",
                                                         "ext", tmp_path)
    assert after == before
    assert WARNING.search(stderr) and re.search(reason, stderr), stderr
    return before, where


# --- the cases ---------------------------------------------------------------
def test_descriptor_count_that_disagrees_with_the_bitmap(tmp_path):
    image, _ = make_ext4(tmp_path)
    free = layout(image)[3]["free"]
    debugfs(image, f"set_bg 3 free_blocks_count {free - 7}",
            "set_bg 3 checksum calc")
    (klass, lines), _ = check_same_verdict(
        image, tmp_path, f"group 3's descriptor counts {free - 7} free "
        f"clusters, its block bitmap leaves {free}")
    assert klass == 4
    assert f"Free blocks count wrong for group #3 ({free - 7}, " \
        f"counted={free})." in lines


def test_zeroed_block_bitmap(tmp_path):
    image, _ = make_ext4(tmp_path)
    debugfs(image, f"zap_block {layout(image)[0]['bitmap']}")
    (klass, lines), _ = check_same_verdict(
        image, tmp_path, "group 0's superblock or descriptors holds blocks "
        "1-1 that the block bitmaps mark free")
    assert klass == 4 and any("Block bitmap differences" in line
                              for line in lines)


def test_inode_table_marked_free(tmp_path):
    image, _ = make_ext4(tmp_path)
    groups = layout(image)
    table = groups[2]["table"]
    # the counts are set to match: only the bitmap says it
    debugfs(image, f"freeb {table} 4",
            f"set_bg 0 free_blocks_count {groups[0]['free'] + 4}",
            "set_bg 0 checksum calc")
    (klass, lines), _ = check_same_verdict(
        image, tmp_path, f"group 2's inode table holds blocks {table}-")
    assert klass == 4 and f"Block bitmap differences:  " \
        f"+({table}--{table + 3})" in lines


@pytest.mark.parametrize("mkfs", [(), ("-O", "^metadata_csum,^extent,"
                                       "^flex_bg,^64bit", "-t", "ext3")])
def test_used_data_block_marked_free(tmp_path, mkfs):
    """The nasty one: a block of a file is free in the bitmap and every
    count agrees with the bitmap; a map from the bitmaps would drop it.
    e2fsck lists the block (+N: it is the file's, the data is intact);
    the copy gives the same verdict and the file's data survives."""
    image, digests = make_ext4(tmp_path, options=mkfs)
    block = file_blocks(image, "f2")[40]
    group = (block - 1) // 2048
    free = layout(image)[group]["free"]
    total = int(re.search(r"Free blocks:\s+(\d+)",
                          run("dumpe2fs", "-h", image).stdout).group(1))
    debugfs(image, f"freeb {block}",
            f"set_bg {group} free_blocks_count {free + 1}",
            f"set_bg {group} checksum calc",
            f"ssv free_blocks_count {total + 1}")
    before, after, stderr, _, (target, start, size) = damaged_round_trip(
        image, "ext4", "ext", tmp_path)
    assert after == before
    klass, lines = before
    # f2 is inode 14: the extent that holds the block is named
    low, high = map(int, re.search(r"inode 14 holds blocks (\d+)-(\d+) that "
                                   r"the block bitmaps mark free",
                                   stderr).groups())
    assert WARNING.search(stderr) and low <= block <= high
    assert klass == 4 and f"Block bitmap differences:  +{block}" in lines
    assert sha256(file_data(target, start, size, "f2", tmp_path)) == \
        digests["f2"]


def test_descriptor_pointing_outside(tmp_path):
    image, _ = make_ext4(tmp_path)
    debugfs(image, "set_bg 2 block_bitmap 20000", "set_bg 2 checksum calc")
    (klass, lines), _ = check_same_verdict(
        image, tmp_path, r"group 2's block bitmap at block 20000 \(\+1\) is "
        r"outside the filesystem's blocks 1-16383")
    assert klass >= 4, lines


def test_descriptor_pointing_at_block_0(tmp_path):
    image, _ = make_ext4(tmp_path, block=4096, size=64 * MiB)
    debugfs(image, "set_bg 1 block_bitmap 0", "set_bg 1 checksum calc")
    (klass, lines), _ = check_same_verdict(
        image, tmp_path, "group 1's block bitmap at block 0 lies in group "
        "0's superblock or descriptors at blocks 0-0")
    assert klass >= 4, lines


# --- the map is used ---------------------------------------------------------
def test_clean_control_uses_the_map(tmp_path):
    image, digests = make_ext4(tmp_path)
    before, after, stderr, rdi, (target, start, size) = damaged_round_trip(
        image, "ext4", "ext", tmp_path)
    assert before == after and before[0] == 0
    assert "warning" not in stderr, stderr
    raw = tmp_path / "raw.rdi"
    disk = tmp_path / "disk.img"
    os.rename(target, disk)
    rdeploy("capture", disk, raw, "--raw", "--progress=none")
    # 1.1 MB of files and metadata against 16 MiB of garbage
    assert os.path.getsize(rdi) * 4 < os.path.getsize(raw)
    for name, digest in digests.items():
        assert sha256(file_data(disk, start, size, name, tmp_path)) == digest


def test_superblock_count_that_lags_keeps_the_map(tmp_path):
    """The kernel writes s_free_blocks_count lazily and e2fsck -fn passes
    it: the map is used, with a warning."""
    image, _ = make_ext4(tmp_path)
    debugfs(image, "ssv free_blocks_count 1234")
    before, after, stderr, _, _ = damaged_round_trip(image, "ext4", "ext",
                                                     tmp_path)
    assert before == after and before[0] == 0
    assert not WARNING.search(stderr)
    assert "partition 1: the superblock counts 1234 free clusters" in stderr


# --- flags and checksums -----------------------------------------------------
def test_block_uninit_flag_that_contradicts_the_count(tmp_path):
    """Group 1 holds file data but is flagged BLOCK_UNINIT: its bitmap
    would be computed (metadata only) and the data dropped: the inode
    walk sees it first (the file's blocks are not in the computed bitmap),
    the group's count would next."""
    image, _ = make_ext4(tmp_path)
    debugfs(image, "set_bg 1 flags 3", "set_bg 1 checksum calc")
    before, after, stderr, _, _ = damaged_round_trip(image, "ext4", "ext",
                                                     tmp_path)
    assert after == before and before[0] == 4
    low = int(re.search(r"inode 1[2-6] holds blocks (\d+)-\d+ that the "
                        r"block bitmaps mark free", stderr).group(1))
    assert WARNING.search(stderr) and 2049 <= low <= 4096


def test_block_uninit_on_the_last_group(tmp_path):
    image, _ = make_ext4(tmp_path)
    debugfs(image, "set_bg 7 flags 3", "set_bg 7 checksum calc")
    (klass, lines), _ = check_same_verdict(
        image, tmp_path, "the last group 7 is flagged BLOCK_UNINIT")
    assert klass == 4 and "Last group block bitmap uninitialized.  " \
        "FIXED." not in lines


@pytest.mark.parametrize("features", [(), ("-O", "^metadata_csum,uninit_bg")])
def test_descriptor_checksum_that_does_not_match(tmp_path, features):
    image, _ = make_ext4(tmp_path, options=features)
    free = layout(image)[3]["free"]
    debugfs(image, f"set_bg 3 free_blocks_count {free}",
            "set_bg 3 checksum 0x1234")
    (klass, lines), _ = check_same_verdict(
        image, tmp_path, "group 3's descriptor checksum 0x1234 is not 0x")
    assert klass == 4 and "One or more block group descriptor checksums " \
        "are invalid.  Fix? no" in lines


def test_superblock_checksum_that_does_not_match(tmp_path):
    image, _ = make_ext4(tmp_path)
    with open(image, "r+b") as f:            # s_volume_name, as dd would
        f.seek(1024 + 0x78)
        f.write(b"DAMAGED")
    (klass, lines), _ = check_same_verdict(
        image, tmp_path, "superblock checksum 0x[0-9a-f]{8} is not")
    assert klass >= 1, lines


# --- no false alarms: every kind of inode the kernel writes ------------------
@pytest.mark.needs("mount", "losetup", root=True)
@pytest.mark.parametrize("mkfs", [
    ["mkfs.ext4", "-b", "1024", "-I", "256"],
    ["mkfs.ext4", "-b", "4096", "-O", "inline_data"],
    ["mkfs.ext3", "-b", "1024", "-I", "128"],
])
def test_every_inode_kind_keeps_the_map(tmp_path, mkfs):
    """Written by the kernel: fast and slow symlinks, device nodes, a FIFO,
    a socket-free tree, hard links, extended attributes in a block, a
    file with holes, a deleted file, a directory of 300 entries, a
    block-mapped file with double indirect blocks on ext3.  The inode walk
    finds every block marked: the map is used, e2fsck is clean on the
    copy, and every file's bytes are kept."""
    image = tmp_path / "fs.img"
    image.write_bytes(random.Random(3).randbytes(24 * MiB))
    run(*mkfs, "-q", "-F", "-E", "nodiscard", image)
    rng, digests = random.Random(4), {}
    with ext_mounted(image, tmp_path / "mnt") as mnt:
        mnt = str(mnt)
        for name, size in (("small", 40), ("big", 3 * MiB), ("mid", 70_000)):
            data = rng.randbytes(size)
            with open(f"{mnt}/{name}", "wb") as f:
                f.write(data)
            digests[name] = (sha256(data), size)
        with open(f"{mnt}/holes", "wb") as f:
            f.seek(5 * MiB)
            f.write(b"end")
        digests["holes"] = (sha256(bytes(5 * MiB) + b"end"), 5 * MiB + 3)
        os.symlink("small", f"{mnt}/fast-link")
        os.symlink("x" * 300, f"{mnt}/slow-link")
        os.mknod(f"{mnt}/null", 0o20644, os.makedev(1, 3))
        os.mkfifo(f"{mnt}/fifo")
        os.link(f"{mnt}/mid", f"{mnt}/mid-link")
        os.mkdir(f"{mnt}/many")
        for k in range(300):
            open(f"{mnt}/many/entry-with-a-long-name-{k:04d}", "w").close()
        for k in range(8):
            os.setxattr(f"{mnt}/mid", f"user.k{k}", rng.randbytes(60))
        with open(f"{mnt}/gone", "wb") as f:
            f.write(rng.randbytes(200_000))
        os.unlink(f"{mnt}/gone")
    before, after, stderr, _, (target, start, size) = damaged_round_trip(
        image, "ext4", "ext", tmp_path)
    assert before == after and before[0] == 0, before
    assert "warning" not in stderr, stderr
    # (debugfs 1.47's dump of an inline-data file pads it to 60 bytes)
    for name, (digest, length) in digests.items():
        assert sha256(file_data(target, start, size, name,
                                tmp_path)[:length]) == digest, name


def test_block_bitmap_checksum_that_does_not_match(tmp_path):
    """The last group (blocks 14337-16383, never BLOCK_UNINIT) has 2047
    blocks; bit 2047 of its bitmap is padding, set by mke2fs, inside the
    checksummed bytes.  Cleared by a byte edit (as dd would), no count
    changes: only the bitmap's checksum tells that the bitmap was written
    behind the tools' back."""
    image, _ = make_ext4(tmp_path)
    at = layout(image)[7]["bitmap"] * 1024 + 255
    with open(image, "r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        assert byte & 0x80
        f.seek(at)
        f.write(bytes([byte & 0x7F]))
    (klass, lines), _ = check_same_verdict(
        image, tmp_path, "group 7's block bitmap checksum 0x[0-9a-f]+ is not")
    assert klass == 4 and "Padding at end of block bitmap is not set. " \
        "Fix? no" in lines, lines


def test_inode_bitmap_checksum_that_does_not_match(tmp_path):
    """Inode 14 (f2) cleared in group 0's inode bitmap by a byte edit: the
    walk would skip it; the checksum tells the bitmap is not the tools'."""
    image, _ = make_ext4(tmp_path)
    text = run("dumpe2fs", image).stdout
    at = int(re.search(r"Inode bitmap at (\d+)", text).group(1)) * 1024 + 1
    with open(image, "r+b") as f:           # inodes 9-16: bit 5 is inode 14
        f.seek(at)
        byte = f.read(1)[0]
        assert byte & 0x20
        f.seek(at)
        f.write(bytes([byte & ~0x20 & 0xFF]))
    (klass, lines), _ = check_same_verdict(
        image, tmp_path, "group 0's inode bitmap checksum 0x[0-9a-f]+ is not")
    assert klass == 4, lines
