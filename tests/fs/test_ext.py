"""ext2/ext3/ext4 used-block maps (diskimage.fs.ext.used) against e2fsprogs on real
images made by mke2fs -d or filled through a loop mount.

Used blocks are checked against `dumpe2fs`: Block count minus Free blocks
from the header, each group's "N free blocks" line and the exact "Free
blocks:" ranges of every group (which libext2fs computes itself for
BLOCK_UNINIT groups); kind, label and UUID against `blkid -p`; the journal's
blocks (`debugfs -R "blocks <8>"`) must be in the map.  The map is checked
complete by a map-only restore into random bytes followed by `e2fsck -fn`
and a comparison of every file's sha256.
"""

import os
import random
import subprocess

import pytest

import demodisk
from diskimage.fs.usedmap import MapError
from tests.fsbuild import ext_mounted, unmount
from tests.fs.ext_tools import (check_map, data_extents, dumpe2fs,
                                map_image, mkfs, restore_and_check, run,
                                sha256)
from tests.fsmaps import copy_runs

KiB, MiB = 1 << 10, 1 << 20

pytestmark = pytest.mark.needs("mke2fs", "dumpe2fs", "debugfs", "e2fsck",
                               "blkid", "losetup")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A source tree: small files in directories, a 20 MiB file and a
    40 MiB sparse file with a few blocks of data.  Returns (path,
    digests)."""
    root = tmp_path_factory.mktemp("ext-tree") / "src"
    digests = demodisk.make_tree(root, 120, 5)
    rng = random.Random(11)
    big = rng.randbytes(20 * MiB)
    (root / "large.bin").write_bytes(big)
    digests["large.bin"] = sha256(big)
    sparse = bytearray(40 * MiB)
    with open(root / "sparse.bin", "wb") as f:
        f.truncate(len(sparse))
        for offset in (0, 7 * MiB + 4096, 33 * MiB - 100):
            data = rng.randbytes(9000)
            os.pwrite(f.fileno(), data, offset)
            sparse[offset:offset + len(data)] = data
    digests["sparse.bin"] = sha256(bytes(sparse))
    return root, digests


VARIANTS = {
    # name: (mkfs command, size in MiB, kind)
    "ext2-1k": (["mkfs.ext2", "-b", "1024"], 99, "ext2"),
    "ext3-2k": (["mkfs.ext3", "-b", "2048"], 100, "ext3"),
    "ext4-4k": (["mkfs.ext4", "-b", "4096"], 200, "ext4"),
    "ext4-no-flex_bg": (["mkfs.ext4", "-b", "4096", "-g", "8192", "-O",
                         "^flex_bg"], 150, "ext4"),
    "ext4-64bit-csum": (["mkfs.ext4", "-b", "2048", "-g", "4096", "-O",
                         "64bit,metadata_csum"], 100, "ext4"),
    "ext4-bigalloc": (["mkfs.ext4", "-b", "4096", "-O", "bigalloc", "-C",
                       "16384"], 128, "ext4"),
    "ext4-bigalloc-1k": (["mkfs.ext4", "-b", "1024", "-O", "bigalloc", "-C",
                          "4096"], 100, "ext4"),
    "ext4-meta_bg": (["mkfs.ext4", "-b", "1024", "-g", "1024", "-O",
                      "meta_bg,^resize_inode"], 96, "ext4"),
    "ext4-uninit": (["mkfs.ext4", "-b", "4096", "-g", "2048", "-E",
                     "lazy_itable_init=1"], 254, "ext4"),
    "ext4-sparse_super2": (["mkfs.ext4", "-b", "4096", "-g", "2048", "-O",
                            "sparse_super2"], 254, "ext4"),
    "ext4-no-sparse_super": (["mkfs.ext4", "-b", "1024", "-g", "4096", "-O",
                              "^sparse_super,^resize_inode"], 96, "ext4"),
}


# --- real filesystems --------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_used_blocks_match_dumpe2fs_and_restore(tmp_path, tree, variant):
    command, size, kind = VARIANTS[variant]
    image = mkfs(tmp_path / "fs.img", size * MiB, command, tree[0])
    umap = map_image(image)
    report = check_map(image, umap, kind)
    groups = report["groups"]
    features = report["fields"]["Filesystem features"]
    # A shorter last group (bigalloc's 512 MiB groups: one group).
    assert groups[-1]["last"] - groups[-1]["first"] < \
        groups[0]["last"] - groups[0]["first"] or variant == "ext4-bigalloc"
    if variant in ("ext4-uninit", "ext4-no-sparse_super"):
        assert sum("BLOCK_UNINIT" in g["flags"] for g in groups) >= 5
    if variant == "ext4-meta_bg":
        assert "meta_bg" in features and len(groups) > 64
    if variant == "ext4-sparse_super2":
        backups = report["fields"]["Backup block groups"].split()
        assert "sparse_super2" in features and len(backups) == 2
    if variant == "ext3-2k":
        # ext3's journal is block-mapped (no extents).
        assert "extent" not in features
    restore_and_check(image, umap, tree[1], tmp_path)


def test_garbage_of_deleted_files_is_left_out(tmp_path):
    size = 256 * MiB
    image = mkfs(tmp_path / "fs.img", size, ["mkfs.ext4", "-b", "4096"])
    fresh = dumpe2fs(image)
    overhead = (fresh["count"] - fresh["free"]) * 4096
    rng = random.Random(3)
    kept = {}
    with ext_mounted(image, tmp_path / "mnt") as mnt:
        names = []
        for i in range(100):
            data = rng.randbytes(rng.randint(1000 * KiB, 2000 * KiB))
            name = f"d{i % 4}/file{i:03d}.bin"
            os.makedirs(os.path.join(mnt, f"d{i % 4}"), exist_ok=True)
            with open(os.path.join(mnt, name), "wb") as f:
                f.write(data)
            names.append((name, data))
        os.sync()
        # Mounted, the journal is in use: the bitmaps are not trusted.
        with pytest.raises(MapError, match="journal needs recovery"):
            map_image(image)
        for index, (name, data) in enumerate(names):
            if index % 5:
                os.unlink(os.path.join(mnt, name))
            else:
                kept[name] = sha256(data)
    umap = map_image(image)
    report = check_map(image, umap, "ext4")
    written = sum(len(d) for _, d in names)
    kept_bytes = sum(len(d) for i, (_, d) in enumerate(names) if not i % 5)
    assert written > size / 2
    assert umap.used_bytes == (report["count"] - report["free"]) * 4096
    assert overhead + kept_bytes < umap.used_bytes < \
        overhead + kept_bytes + 2 * MiB
    assert umap.used_bytes < size / 3
    restore_and_check(image, umap, kept, tmp_path)


def test_blocks_count_over_32_bits(tmp_path, tree):
    """16400 GiB of 4 KiB blocks (s_blocks_count_hi = 1), bigalloc with 64
    KiB clusters, in a sparse file on a tmpfs; map-only restore onto
    garbage written wherever the source holds data."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    try:
        run("mount", "-t", "tmpfs", "-o", "size=1G", "tmpfs", mnt)
    except subprocess.CalledProcessError as err:
        pytest.skip(f"no tmpfs: {err.stderr}")
    try:
        size = 16400 << 30
        image = mkfs(mnt / "fs.img", size, ["mkfs.ext4", "-O", "bigalloc",
                                            "-C", "65536", "-E",
                                            "nodiscard"], tree[0])
        umap = map_image(image)
        report = check_map(image, umap, "ext4")
        assert report["count"] > 1 << 32
        # Garbage wherever the source holds data, the runs copied where
        # they meet the source's data (elsewhere both read as zeros: the
        # inode tables alone are 64 GiB of holes).
        extents = data_extents(image)
        target = mnt / "target.img"
        rng = random.Random(5)
        with open(target, "wb") as dst:
            dst.truncate(size)
            for start, end in extents:
                os.pwrite(dst.fileno(), rng.randbytes(end - start), start)
        copy_runs(image, target, [
            (max(a, s), min(a + n, e) - max(a, s)) for a, n in umap.runs
            for s, e in extents if a < e and s < a + n])
        clean, output = demodisk.fsck(target, 0, size, "ext4")
        assert clean, output
        assert demodisk.read_files(target, 0, size, "ext4") == tree[1]
    finally:
        unmount(mnt)
