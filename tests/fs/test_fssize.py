"""What a used-blocks image costs: garbage left by deleted files is not
stored, and the image is no larger than partclone's (piped through
`lz4 -1`) of the same partitions.  Sizes are compared with the numbers of
the filesystems' own tools (dumpe2fs, fsck.fat, dump.exfat, ntfsinfo) and
with partclone's output, never with numbers taken from our own code."""

import os
import random

import pytest

import demodisk
from tests.fsbuild import (exfat_mounted, ext_mounted, make_exfat, make_ext,
                           make_fat, make_ntfs, mtools, ntfs_mounted)
from tests.fsmaps import (MiB, needs_all_tools, partitioned_disk, rdeploy, run,
                          tool_used_bytes)

pytestmark = needs_all_tools
# Besides the used data: file header, metadata, index, trailer and the
# partition-table areas (compressed zeros around a few sectors).
IMAGE_OVERHEAD = 256 * 1024


def capture_size(disk, tmp_path, *args):
    image = tmp_path / "size.rdi"
    rdeploy("capture", disk, image, "--progress=none", "-q", *args)
    size = os.path.getsize(image)
    image.unlink()
    return size


# --- a volume filled with random data, then mostly deleted -------------------
def fill_mounted(root, rng):
    """Files of 1 MiB of random bytes until the filesystem is full; all but
    every fifth deleted.  Returns the bytes written."""
    written, index = 0, 0
    while True:
        path = os.path.join(root, f"r{index:04d}.bin")
        try:
            with open(path, "wb") as f:
                f.write(rng.randbytes(MiB))
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            os.unlink(path)
            break
        written += MiB
        index += 1
    for gone in range(index):
        if gone % 5:
            os.unlink(os.path.join(root, f"r{gone:04d}.bin"))
    return written


def mounted_filled(mkfs, mounted):
    """A builder: a 64 MiB image made by the `mkfs` command, mounted by
    `mounted(image, mountpoint)` and filled by fill_mounted."""
    def build(tmp_path, rng):
        image = tmp_path / "fs.img"
        with open(image, "wb") as f:
            f.truncate(64 * MiB)
        run(*mkfs, image)
        with mounted(image, tmp_path / "mnt") as mnt:
            written = fill_mounted(mnt, rng)
        return image, written
    return build


def fat_filled(tmp_path, rng):
    image = tmp_path / "fs.img"
    run("mkfs.fat", "-C", "-F", 32, "-s", 1, image, 64 * 1024)
    source = tmp_path / "src"
    source.mkdir()
    count = 60                     # 60 MiB of the 64 MiB volume
    for index in range(count):
        (source / f"r{index:04d}.bin").write_bytes(rng.randbytes(MiB))
    mtools("mcopy", "-Q", "-i", image,
           *sorted(source.iterdir()), "::/")
    mtools("mdel", "-i", image, *(f"::/r{i:04d}.bin" for i in range(count)
                                   if i % 5))
    return image, count * MiB


@pytest.mark.parametrize("fs, filled", [
    ("ext4", mounted_filled(["mkfs.ext4", "-q", "-F"], ext_mounted)),
    ("fat32", fat_filled),
    ("exfat", mounted_filled(["mkfs.exfat"], exfat_mounted)),
    ("ntfs", mounted_filled(["mkntfs", "-F", "-Q"], ntfs_mounted))],
    ids=["ext4", "fat32", "exfat", "ntfs"])
def test_deleted_garbage_is_not_stored_but_raw_keeps_it(tmp_path, fs, filled):
    fs_image, written = filled(tmp_path, random.Random(7))
    used = tool_used_bytes(fs_image, fs)
    assert written > 48 * MiB and used < written / 2
    disk = tmp_path / "disk.img"
    partitioned_disk(disk, [(fs_image, fs)], "gpt")
    fs_image.unlink()
    image = capture_size(disk, tmp_path)
    assert image <= used + IMAGE_OVERHEAD
    raw = capture_size(disk, tmp_path, "--raw")
    assert raw >= written * 0.95


# --- no larger than partclone | lz4 -1 ---------------------------------------
PARTCLONE = {"ext4": "partclone.extfs", "fat16": "partclone.fat",
             "fat32": "partclone.fat", "exfat": "partclone.exfat",
             "ntfs": "partclone.ntfs"}


def partclone_lz4_size(disk, start, size, fs):
    """Bytes of `partclone.X -c -s DEV -o - | lz4 -1` of one partition."""
    with demodisk.loop_device(disk, start, size) as dev:
        out = run("bash", "-o", "pipefail", "-c",
                  f"{PARTCLONE[fs]} -c -s {dev} -o - 2>/dev/null | "
                  f"lz4 -1 -c | wc -c").stdout
    return int(out)


# Slack over partclone, as a fraction of its image.  Where a volume was
# filled with random files and every other one deleted (the fragmented
# file's layout), free space alternates with incompressible used data every
# 16-32 KiB: partclone stores the used blocks back to back, while an image
# needs a record (136 bytes with its index entry in format 1.1, 96 in 1.0)
# for each used piece or else compresses the free space as zeros beside
# random data (lz4: a byte per 255 zeros, and about 0.4% on the random
# bytes).  On the ext4 4k and FAT32 512-byte-cluster builds that costs up to
# 0.3% (measured 2026-12-02: FAT32 +0.19% in 1.1, +0.13% in 1.0).
FRAGMENTED_SLACK = 0.003
# The FAT16 build was 0.016% below partclone in format 1.0; 1.1's 40 more
# bytes a record (a 32-byte BLAKE3 digest, the stored bytes' CRC-32, in the
# header and the index entry) over its ~230 records put it 0.023% above.
RECORD_SLACK = 0.001


@pytest.mark.needs(*sorted(set(PARTCLONE.values()) | {"lz4"}))
@pytest.mark.parametrize("fs, builder, args, slack", [
    ("ext4", make_ext, (["mkfs.ext4", "-b", "4096"], 48), FRAGMENTED_SLACK),
    ("ext4", make_ext, (["mkfs.ext4", "-b", "1024"], 32), 0),
    ("fat16", make_fat, (16, 32 * 1024), RECORD_SLACK),
    ("fat32", make_fat, (32, 40 * 1024, "-s", "1"), FRAGMENTED_SLACK),
    ("exfat", make_exfat, (40,), 0),
    ("ntfs", make_ntfs, (40,), 0)],
    ids=["ext4-4k", "ext4-1k", "fat16", "fat32", "exfat", "ntfs"])
def test_image_no_larger_than_partclone_lz4(tmp_path, fs, builder, args,
                                            slack):
    fs_image, _ = builder(tmp_path, *args)
    disk = tmp_path / "disk.img"
    (start, size), = partitioned_disk(disk, [(fs_image, fs)], "gpt")
    fs_image.unlink()
    ours = capture_size(disk, tmp_path)
    theirs = partclone_lz4_size(disk, start, size, fs)
    assert ours <= theirs * (1 + slack), (ours, theirs)
