"""diskimage.fs.fat.shrink on FAT12, FAT16 and FAT32 volumes made by mkfs.fat
and filled by mtools so that data sits near the end (a tree with long names
and subdirectories low, fillers, a directory tree high, every other filler
deleted, a fragmented file in the holes, the other fillers deleted): shrunk
directly and through `rdeploy restore` onto a smaller disk, then fsck.fat -n
is clean (it also checks FSInfo's free count, that the FAT copies agree and
each file's chain against its size), every file's sha256 matches (mcopy out)
and minfo reads the new size.  Targets that cannot hold the data, or would
take a volume out of its type's cluster range, are refused untouched with
the size needed."""

import json
import os
import random
import re
import struct

import pytest

import demodisk
from diskimage.fs import registry
from diskimage.fs import resize as fsresize
from diskimage.fs.fat import shrink as fatshrink
from tests.fsbuild import fat_bytes, mtools, write_file
from tests.fsmaps import (KiB, MiB, check_fs, partitioned_disk, rdeploy, run,
                          random_fill)

pytestmark = pytest.mark.needs("mkfs.fat", "fsck.fat", "mcopy", "minfo",
                               "mshowfat", "mdel", "sfdisk", "losetup")


def clusters(image):
    """(used, total) clusters as fsck.fat counts them; asserts it is
    clean."""
    done = run("fsck.fat", "-n", image, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    used, total = re.search(r"(\d+)/(\d+) clusters", done.stdout).groups()
    return int(used), int(total)


def fat_length(image):
    """Bytes per FAT, as fsck.fat -v reads the boot sector."""
    out = run("fsck.fat", "-nv", image).stdout
    return int(re.search(r"(\d+) bytes per FAT", out).group(1))


def highest_cluster(image, paths):
    """The highest cluster mshowfat lists for any of `paths`."""
    out = mtools("mshowfat", "-i", image, *paths)
    return max(int(n) for n in re.findall(r"\d+", re.sub(r"^.*?:", "", out,
                                                          flags=re.M)))


def make_high_fat(tmp_path, bits, size_kib, *options, piece=16 * KiB):
    """A FAT whose data reaches its end: see the module's docstring.
    Returns (image, digests, the high files' mtools paths)."""
    image = tmp_path / "fs.img"
    run("mkfs.fat", "-C", "-F", bits, "-n", f"SH-FAT{bits}", *options, image,
        size_kib)
    source = tmp_path / "src"
    digests = {f"tree/{k}": v for k, v in demodisk.make_tree(
        source / "tree", 40 if size_kib < 8192 else 80, bits,
        max_size=8 * KiB).items()}
    mtools("mcopy", "-s", "-Q", "-i", image, source / "tree", "::/")
    high = {f"high/{k}": v for k, v in demodisk.make_tree(
        source / "high", 14, bits + 1, max_size=6 * KiB).items()}
    high_bytes = sum(os.path.getsize(source / p) + 8 * KiB for p in high)
    free = int(re.search(r"([\d ]+) bytes free", mtools(
        "mdir", "-i", image, "::/")).group(1).replace(" ", ""))
    count = (free - high_bytes - 4 * piece) // piece
    rng = random.Random(bits)
    for i in range(count):
        write_file(source, f"fill/f{i:04d}.bin", rng.randbytes(piece), {})
    mtools("mcopy", "-s", "-Q", "-i", image, source / "fill", "::/")
    mtools("mcopy", "-s", "-Q", "-i", image, source / "high", "::/")
    digests.update(high)
    mtools("mdel", "-i", image,
           *[f"::/fill/f{i:04d}.bin" for i in range(0, count, 2)])
    write_file(source, "fragmented.bin", rng.randbytes(12 * piece), digests)
    mtools("mcopy", "-Q", "-i", image, source / "fragmented.bin", "::/")
    chains = mtools("mshowfat", "-i", image, "::/fragmented.bin")
    assert chains.count("<") > 4, chains
    mtools("mdel", "-i", image,
           *[f"::/fill/f{i:04d}.bin" for i in range(1, count, 2)])
    return image, digests, [f"::/{p}" for p in high]


# (bits, size KiB, mkfs options, filler piece, target bytes)
VOLUMES = {
    "fat12": (12, 4000, ["-s", "2"], 16 * KiB, 1536 * KiB),
    "fat16": (16, 24 * KiB, ["-s", "4"], 32 * KiB, 10 * MiB),
    "fat32": (32, 72 * KiB, ["-s", "1"], 64 * KiB, 40 * MiB),
    # one FAT; a FAT16 whose total moves from BPB_TotSec32 to BPB_TotSec16
    "fat12-one-fat": (12, 4000, ["-s", "2", "-f", "1"], 16 * KiB, 1 * MiB),
    "fat16-totsec32": (16, 40 * KiB, ["-s", "8"], 64 * KiB, 20 * MiB),
}


@pytest.mark.parametrize("name", VOLUMES)
def test_shrunk_volume_is_clean_and_holds_every_file(tmp_path, name):
    bits, size_kib, options, piece, target = VOLUMES[name]
    image, digests, high = make_high_fat(tmp_path, bits, size_kib, *options,
                                         piece=piece)
    used, total = clusters(image)
    cluster = int(options[1]) * 512
    new_clusters = (target - 64 * KiB) // cluster
    # the test is only worth something when data sits past the new end
    assert highest_cluster(image, high) > new_clusters
    fat_before = fat_length(image)
    reached = fatshrink.shrink(str(image), target)
    assert target - cluster - 8 * 512 < reached <= target
    os.truncate(image, reached)
    assert fat_bytes(image) == reached
    assert clusters(image)[0] == used
    assert clusters(image)[1] < total
    assert highest_cluster(image, high) < clusters(image)[1] + 2
    # shorter FATs: the root directory and the data moved down
    assert fat_length(image) < fat_before
    check_fs(image, 0, reached, f"fat{bits}", digests)
    if size_kib * KiB >= 32 * MiB > reached:
        out = mtools("minfo", "-i", image, "::")
        assert re.search(r"small size: (\d+) sectors", out).group(1) == \
            str(reached // 512)


def test_fat12_shrinks_twice_and_fats_get_shorter(tmp_path):
    bits, size_kib, options, piece, _ = VOLUMES["fat12"]
    image, digests, _ = make_high_fat(tmp_path, bits, size_kib, *options,
                                      piece=piece)
    lengths = [fat_length(image)]
    for target in (2 * MiB, 1200 * KiB):
        reached = fatshrink.shrink(str(image), target)
        os.truncate(image, reached)
        check_fs(image, 0, reached, "fat12", digests)
        lengths.append(fat_length(image))
    assert lengths == sorted(lengths, reverse=True) and \
        lengths[2] < lengths[0], lengths
    # into the same size again: nothing to do
    before = run("sha256sum", image).stdout
    assert fatshrink.shrink(str(image), reached) == reached
    assert run("sha256sum", image).stdout == before


def test_too_small_a_target_is_refused_untouched_with_the_size(tmp_path):
    bits, size_kib, options, piece, _ = VOLUMES["fat12"]
    image, _, _ = make_high_fat(tmp_path, bits, size_kib, *options,
                                piece=piece)
    used, _ = clusters(image)
    before = run("sha256sum", image).stdout
    with pytest.raises(fatshrink.FatShrinkError,
                       match=rf"{used} used clusters of 1024 bytes do not "
                             rf"fit .* needs at least (\d+) bytes") as err:
        fatshrink.shrink(str(image), used * 1024 // 2)
    need = int(re.search(r"at least (\d+) bytes", str(err.value)).group(1))
    assert used * 1024 < need < used * 1024 + 64 * KiB
    assert run("sha256sum", image).stdout == before


def test_fat16_stays_above_4084_clusters(tmp_path):
    bits, size_kib, options, piece, _ = VOLUMES["fat16"]
    image, _, _ = make_high_fat(tmp_path, bits, size_kib, *options,
                                piece=piece)
    before = run("sha256sum", image).stdout
    with pytest.raises(fatshrink.FatShrinkError,
                       match=r"FAT16 needs at least 4085 clusters.* at least "
                             r"\d+ bytes"):
        fatshrink.shrink(str(image), 4 * MiB)
    assert run("sha256sum", image).stdout == before


def test_fat32_stays_above_65524_clusters(tmp_path):
    bits, size_kib, options, piece, _ = VOLUMES["fat32"]
    image, _, _ = make_high_fat(tmp_path, bits, size_kib, *options,
                                piece=piece)
    before = run("sha256sum", image).stdout
    with pytest.raises(fatshrink.FatShrinkError,
                       match=r"FAT32 needs at least 65525 clusters"):
        fatshrink.shrink(str(image), 30 * MiB)
    assert run("sha256sum", image).stdout == before


def move_fat32_root_high(image):
    """Move the FAT32 root directory's first cluster into the highest free
    cluster by hand (mkfs.fat always puts it at cluster 2): the cluster
    copied, its FAT entry in every copy, BPB_RootClus (byte 44) in the boot
    sector and its backup.  Returns the new root cluster."""
    with open(image, "r+b") as f:
        boot = bytearray(f.read(512))
        bps, spc, rsvd, nfats = struct.unpack_from("<HBHB", boot, 11)
        total, fat_sectors = struct.unpack_from("<II", boot, 32)
        root, = struct.unpack_from("<I", boot, 44)
        backup, = struct.unpack_from("<H", boot, 50)
        data, size = (rsvd + nfats * fat_sectors) * bps, bps * spc
        count = (total * bps - data) // size
        f.seek(rsvd * bps)
        fat = bytearray(f.read(fat_sectors * bps))
        new = next(c for c in range(count + 1, 2, -1)
                   if struct.unpack_from("<I", fat, 4 * c)[0] & 0x0FFFFFFF
                   == 0)
        f.seek(data + (root - 2) * size)
        content = f.read(size)
        f.seek(data + (new - 2) * size)
        f.write(content)
        fat[4 * new:4 * new + 4] = fat[4 * root:4 * root + 4]
        fat[4 * root:4 * root + 4] = bytes(4)
        for number in range(nfats):
            f.seek((rsvd + number * fat_sectors) * bps)
            f.write(fat)
        struct.pack_into("<I", boot, 44, new)
        for sector in (0, backup):
            f.seek(sector * bps)
            f.write(boot)
    return new


def test_fat32_root_cluster_past_the_end_moves(tmp_path):
    bits, size_kib, options, piece, target = VOLUMES["fat32"]
    image, digests, _ = make_high_fat(tmp_path, bits, size_kib, *options,
                                      piece=piece)
    for i in range(30):         # a root directory of several clusters
        write_file(tmp_path / "src", f"root/long root name {i:02d}.txt",
                   b"x" * i, digests)
    mtools("mcopy", "-Q", "-i", image,
           *sorted((tmp_path / "src" / "root").iterdir()), "::/")
    digests = {k.removeprefix("root/"): v for k, v in digests.items()}
    root = move_fat32_root_high(image)
    assert root > target // 512
    check_fs(image, 0, os.path.getsize(image), "fat32", digests)
    reached = fatshrink.shrink(str(image), target)
    os.truncate(image, reached)
    check_fs(image, 0, reached, "fat32", digests)
    out = mtools("minfo", "-i", image, "::")
    assert int(re.search(r"rootCluster=(\d+)", out).group(1)) < root


def _partition(path):
    table = json.loads(run("sfdisk", "--json", path).stdout)["partitiontable"]
    part, = table["partitions"]
    return part["start"] * 512, part["size"] * 512


@pytest.mark.parametrize("name, disk_size", [
    ("fat12", 4 * MiB), ("fat16", 16 * MiB), ("fat32", 44 * MiB)])
def test_restore_onto_a_smaller_disk_shrinks_it(tmp_path, name, disk_size):
    bits, size_kib, options, piece, _ = VOLUMES[name]
    fs_image, digests, _ = make_high_fat(tmp_path, bits, size_kib, *options,
                                         piece=piece)
    disk = tmp_path / "disk.img"
    partitioned_disk(disk, [(fs_image, name)])
    image = tmp_path / "disk.rdi"
    rdeploy("capture", disk, image, "--progress=none")
    target = tmp_path / "small.img"
    random_fill(target, disk_size, 3)
    plan = rdeploy("restore", image, target, "--dry-run").stdout
    assert "shrink" in plan, plan
    rdeploy("restore", image, target, "--yes", "--progress=none")
    start, size = _partition(target)
    assert start + size <= disk_size and size < size_kib * KiB
    reached = fat_bytes(f"{target}@@{start}")
    assert size - int(options[1]) * 512 - 4 * KiB < reached <= size
    check_fs(target, start, size, name, digests)


def test_the_plans_least_size_is_enough(tmp_path):
    """The size the plan offers at the least (min_size from the map's used
    bytes and cluster size) is one the shrink accepts."""
    bits, size_kib, options, piece, _ = VOLUMES["fat32"]
    image, digests, _ = make_high_fat(tmp_path, bits, size_kib, *options,
                                      piece=piece)
    size = os.path.getsize(image)
    with open(image, "rb") as f:
        umap = registry.used_map(lambda o, n: os.pread(f.fileno(), n, o), 0,
                                 size, "fat32")
    least = fsresize.min_size("fat32", umap.used_bytes, size,
                              umap.block_size)
    assert 65525 * 512 < least < size
    reached = fatshrink.shrink(str(image), least)
    os.truncate(image, reached)
    check_fs(image, 0, reached, "fat32", digests)


def test_restore_refuses_a_disk_too_small_for_the_type(tmp_path):
    bits, size_kib, options, piece, _ = VOLUMES["fat32"]
    fs_image, _, _ = make_high_fat(tmp_path, bits, size_kib, *options,
                                   piece=piece)
    disk = tmp_path / "disk.img"
    partitioned_disk(disk, [(fs_image, "fat32")])
    image = tmp_path / "disk.rdi"
    rdeploy("capture", disk, image, "--progress=none")
    target = tmp_path / "tiny.img"
    random_fill(target, 24 * MiB, 3)
    before = run("sha256sum", target).stdout
    done = rdeploy("restore", image, target, "--yes", "--progress=none",
                   check=False)
    assert done.returncode == 5, done.stderr
    need = int(re.search(r"needs (\d+)", done.stderr).group(1))
    assert need > 32 * MiB          # 65525 clusters of 512 bytes and more
    assert run("sha256sum", target).stdout == before


def small_fat16(tmp_path):
    """A FAT16 of 24 MiB with a tree copied in: (image, bytes per FAT,
    offset of the first FAT, clusters)."""
    image = tmp_path / "fs.img"
    run("mkfs.fat", "-C", "-F", 16, "-s", 4, image, 24 * KiB)
    demodisk.make_tree(tmp_path / "tree", 20, 7, max_size=8 * KiB)
    mtools("mcopy", "-s", "-Q", "-i", image, tmp_path / "tree", "::/")
    with open(image, "rb") as f:
        boot = f.read(512)
    bps, _, rsvd, _, _, total16, _, fat16 = struct.unpack_from(
        "<HBHBHHBH", boot, 11)
    total = total16 or struct.unpack_from("<I", boot, 32)[0]
    data = (rsvd + 2 * fat16) * bps + 512 * 32
    return image, fat16 * bps, rsvd * bps, (total * bps - data) // 2048


@pytest.mark.parametrize("copies", [(0, 1), (1,)], ids=["lost", "differ"])
def test_a_fat_that_cannot_be_trusted_is_refused_untouched(tmp_path,
                                                           copies):
    """A used cluster on no chain (lost: fsck.fat would free it), or FAT
    copies that disagree: nothing is moved, the reason is given."""
    image, fat_bytes_, fat_at, count = small_fat16(tmp_path)
    with open(image, "r+b") as f:
        for copy in copies:     # the last cluster marked end-of-chain
            f.seek(fat_at + copy * fat_bytes_ + 2 * (count + 1))
            f.write(b"\xff\xff")
    before = run("sha256sum", image).stdout
    reason = "lost clusters" if len(copies) == 2 else "FAT copy 1 differs"
    with pytest.raises(fatshrink.FatShrinkError, match=reason):
        fatshrink.shrink(str(image), 12 * MiB)
    assert run("sha256sum", image).stdout == before


def test_a_shrink_that_fails_leaves_a_restore_reported_failed(tmp_path):
    """A FAT16 with a lost cluster captures (the cluster is kept) but will
    not shrink: the restore onto a smaller disk fails with exit 8 naming
    the reason, and the target holds no partition table that would make
    it look restored."""
    fs_image, fat_bytes_, fat_at, count = small_fat16(tmp_path)
    with open(fs_image, "r+b") as f:
        for copy in (0, 1):
            f.seek(fat_at + copy * fat_bytes_ + 2 * (count + 1))
            f.write(b"\xff\xff")
    disk = tmp_path / "disk.img"
    partitioned_disk(disk, [(fs_image, "fat16")])
    image = tmp_path / "disk.rdi"
    rdeploy("capture", disk, image, "--progress=none")
    target = tmp_path / "small.img"
    random_fill(target, 16 * MiB, 4)
    done = rdeploy("restore", image, target, "--yes", "--progress=none",
                   check=False)
    assert done.returncode == 8, done.stderr
    assert "cannot shrink" in done.stderr and "lost clusters" in \
        done.stderr, done.stderr
    assert run("sfdisk", "--json", target, check=False).returncode != 0
    assert "PTTYPE" not in run("blkid", "-p", "-o", "export", target,
                               check=False).stdout
