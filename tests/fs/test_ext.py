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

import hashlib
import os
import random
import re
import shutil
import struct
import subprocess

import pytest

import demodisk
from diskimage.fs.ext import used as ext
from diskimage.fs.usedmap import MapError
from tests.fsbuild import ext_mounted, unmount
from tests.fsmaps import blkid, copy_runs, map_only_restore

KiB, MiB = 1 << 10, 1 << 20

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("mke2fs", "dumpe2fs", "debugfs",
                                      "e2fsck", "blkid", "losetup")),
    reason="needs e2fsprogs and util-linux")


# --- helpers -----------------------------------------------------------------
def run(*args, check=True):
    return subprocess.run([str(a) for a in args], check=check, text=True,
                          capture_output=True,
                          stdin=subprocess.DEVNULL).stdout


def mkfs(image, size, command, source=None, label="test-ext"):
    with open(image, "wb") as f:
        f.truncate(size)
    extra = ["-d", source] if source else []
    run(*command, "-q", "-F", "-L", label, *extra, image)
    return image


def file_reader(path):
    fd = os.open(path, os.O_RDONLY)
    return lambda offset, length: os.pread(fd, length, offset)


def bytes_reader(data):
    return lambda offset, length: bytes(data[offset:offset + length])


def map_image(path, size=None):
    return ext.open_volume(file_reader(path), size or os.path.getsize(path))


def dumpe2fs(path):
    """dumpe2fs's own numbers: the header's fields, and for each group its
    first and last block, flags, free count and free block ranges (blocks
    [a, b] inclusive; with bigalloc dumpe2fs names clusters by their first
    block)."""
    out = run("dumpe2fs", path)
    head, body = out.split("\nGroup 0:", 1)
    fields = dict(re.findall(r"^([A-Z][\w /#-]*?):\s+(.*?)\s*$", head, re.M))
    number = lambda name: int(fields[name])
    report = {"fields": fields, "count": number("Block count"),
              "free": number("Free blocks"), "bs": number("Block size"),
              "cluster": int(fields.get("Cluster size", fields["Block size"])),
              "groups": []}
    ratio = report["cluster"] // report["bs"]
    for section in re.split(r"^Group ", "Group 0:" + body, flags=re.M)[1:]:
        first, last, flags = re.match(r"\d+: \(Blocks (\d+)-(\d+)\)(.*)",
                                      section).groups()
        free = int(re.search(r"^\s+(\d+) free (?:blocks|clusters)", section,
                             re.M).group(1))
        ranges = []
        listed = re.search(r"^\s+Free blocks: ?(.*)$", section, re.M).group(1)
        for item in filter(None, listed.split(", ")):
            a, _, b = item.partition("-")
            ranges.append((int(a), (int(b or a) // ratio + 1) * ratio - 1))
        report["groups"].append({"first": int(first), "last": int(last),
                                 "flags": flags, "free": free,
                                 "free_ranges": ranges})
    return report


def journal_blocks(path):
    out = run("debugfs", "-R", "blocks <8>", path)
    return [int(b) for b in out.split()]


def block_runs(umap, bs):
    return [(offset // bs, -(-length // bs)) for offset, length in umap.runs]


def covered(runs, block):
    return any(start <= block < start + count for start, count in runs)


def data_extents(path):
    """[start, end) of each extent of a sparse file that holds data."""
    extents, pos = [], 0
    with open(path, "rb") as f:
        while True:
            try:
                start = os.lseek(f.fileno(), pos, os.SEEK_DATA)
            except OSError:
                return extents
            pos = os.lseek(f.fileno(), start, os.SEEK_HOLE)
            extents.append((start, pos))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def check_map(image, umap, kind, label="test-ext"):
    """The map against dumpe2fs (totals, per-group counts, exact free
    ranges), blkid and debugfs; returns dumpe2fs's report."""
    report = dumpe2fs(image)
    bs, count = report["bs"], report["count"]
    ratio = report["cluster"] // bs
    found = blkid(image)
    assert (umap.kind, umap.label, umap.uuid) == (found["TYPE"], label,
                                                   found["UUID"]) == \
        (kind, found["LABEL"], report["fields"]["Filesystem UUID"])
    assert umap.block_size == report["cluster"]
    assert umap.total_bytes == count * bs
    found_runs = list(umap.runs)
    assert umap.used_bytes == sum(n for _, n in found_runs)
    assert all(a[0] + a[1] < b[0] for a, b in zip(found_runs,
                                                   found_runs[1:]))
    assert umap.used_bytes == (count - report["free"]) * bs
    runs = block_runs(umap, bs)
    # Exactly the complement of dumpe2fs's free ranges.
    free = sorted(r for g in report["groups"] for r in g["free_ranges"])
    expected, pos = [], 0
    for a, b in free + [(count, count)]:
        if a > pos:
            expected.append((pos, a - pos))
        pos = b + 1
    assert runs == expected
    for group in report["groups"]:
        used = sum(min(s + n, group["last"] + 1) - max(s, group["first"])
                   for s, n in runs
                   if s <= group["last"] and s + n > group["first"])
        clusters = -(-(group["last"] + 1 - group["first"]) // ratio)
        assert clusters - used // ratio == group["free"], group
    if "has_journal" in report["fields"]["Filesystem features"]:
        blocks = journal_blocks(image)
        assert blocks and all(covered(runs, b) for b in blocks)
    assert not umap.warnings
    return report


def restore_and_check(image, umap, digests, tmp_path):
    target = tmp_path / "target.img"
    size = os.path.getsize(image)
    map_only_restore(image, target, umap.runs, seed=size)
    clean, output = demodisk.fsck(target, 0, size, "ext4")
    assert clean, output
    assert demodisk.read_files(target, 0, size, "ext4") == digests
    target.unlink()


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


# --- inconsistent structures -------------------------------------------------
# Superblock fields at their spec offsets (from byte 1024).
S_INODES_COUNT, S_BLOCKS_COUNT_LO, S_LOG_BLOCK_SIZE = 0x00, 0x04, 0x18
S_BLOCKS_PER_GROUP, S_MAGIC, S_STATE = 0x20, 0x38, 0x3A
S_FEATURE_INCOMPAT, S_DESC_SIZE = 0x60, 0xFE


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Small 1 KiB-block images with 1024-block groups: ext4 (64-bit
    descriptors at block 2) and ext3 (32-byte descriptors, a block-mapped
    journal), each with its bytes and dumpe2fs report."""
    base = tmp_path_factory.mktemp("ext-small")
    demodisk.make_tree(base / "src", 40, 9, names=False)
    images = {}
    for name, command in (("ext4", ["mkfs.ext4", "-O", "64bit"]),
                          ("ext3", ["mkfs.ext3"])):
        image = mkfs(base / f"{name}.img", 12 * MiB,
                     command + ["-b", "1024", "-g", "1024", "-N", "768"],
                     base / "src")
        images[name] = (image, open(image, "rb").read(), dumpe2fs(image))
    return images


def patched(data, offset, fmt, value):
    data = bytearray(data)
    struct.pack_into("<" + fmt, data, offset, value)
    return data


def open_bytes(data, size=None):
    return ext.open_volume(bytes_reader(data), size or len(data))


def sb_field(data, offset, fmt):
    return struct.unpack_from("<" + fmt, data, 1024 + offset)[0]


def test_small_images_map_like_dumpe2fs(small):
    for name, (image, data, report) in small.items():
        umap = open_bytes(data)
        assert umap.kind == name
        assert umap.used_bytes == (report["count"] - report["free"]) * 1024


def test_not_ext_is_none(small):
    data = small["ext4"][1]
    assert open_bytes(patched(data, 1024 + S_MAGIC, "H", 0xEF54)) is None
    assert open_bytes(bytes(64 * KiB)) is None
    assert open_bytes(data[:1024]) is None
    with pytest.raises(MapError, match="short read"):
        open_bytes(data[:1500])


@pytest.mark.parametrize("offset, fmt, value, message", [
    (S_BLOCKS_PER_GROUP, "I", 0, "clusters per group"),
    (S_BLOCKS_PER_GROUP, "I", 8 * 1024 + 8, "clusters per group"),
    (S_INODES_COUNT, "I", 768 + 64, "s_inodes_count"),
    (S_BLOCKS_COUNT_LO, "I", 12 * 1024 + 2048, "larger than the partition"),
    (S_BLOCKS_COUNT_LO, "I", 9 * 1024, "s_inodes_count"),
    (S_LOG_BLOCK_SIZE, "I", 9, "s_log_block_size"),
    (S_FEATURE_INCOMPAT, "I", 0x80000000, "unknown incompatible"),
    (S_DESC_SIZE, "H", 48, "s_desc_size"),
])
def test_bad_superblock_fields_raise(small, offset, fmt, value, message):
    data = small["ext4"][1]
    with pytest.raises(MapError, match=message):
        open_bytes(patched(data, 1024 + offset, fmt, value))


def test_feature_flags_that_forbid_a_map(small):
    data = small["ext4"][1]
    incompat = sb_field(data, S_FEATURE_INCOMPAT, "I")
    for flag, message in ((0x4, "journal needs recovery"),
                          (0x8, "external journal device")):
        with pytest.raises(MapError, match=message):
            open_bytes(patched(data, 1024 + S_FEATURE_INCOMPAT, "I",
                               incompat | flag))


def test_partition_smaller_or_larger_than_the_filesystem(small):
    data = small["ext4"][1]
    with pytest.raises(MapError, match="larger than the partition"):
        open_bytes(data, len(data) - 1024)
    umap = open_bytes(data)
    bigger = open_bytes(data + bytes(MiB), len(data) + MiB)
    assert list(bigger.runs) == list(umap.runs)
    assert bigger.total_bytes == len(data)


@pytest.mark.parametrize("name, desc_size", [("ext4", 64), ("ext3", 32)])
@pytest.mark.parametrize("field, value, message", [
    ("block", 12 * 1024 + 5, "block bitmap at block .* outside"),
    ("inode", 10 ** 6, "inode bitmap at block .* outside"),
    ("table", 12 * 1024 - 3, "inode table at block .* outside"),
    # (without flex_bg another group's bitmap is outside the group first)
    ("block", "group 1", "share the block bitmap|outside its group"),
])
def test_bad_group_descriptors_raise(small, name, desc_size, field, value,
                                     message):
    _, data, report = small[name]
    # The descriptors start at block 2 (1 KiB blocks); group 3's here.
    at = 2048 + 3 * desc_size + {"block": 0, "inode": 4, "table": 8}[field]
    if value == "group 1":
        value = struct.unpack_from("<I", data, 2048 + desc_size)[0]
    with pytest.raises(MapError, match=message):
        open_bytes(patched(data, at, "I", value))


def test_bitmaps_that_disagree_with_the_counts_raise(small):
    _, data, report = small["ext4"]
    data = bytearray(data)
    text = run("dumpe2fs", small["ext4"][0])
    for block in map(int, re.findall(r"Block bitmap at (\d+)", text)):
        data[block * 1024:(block + 1) * 1024] = bytes(1024)
    with pytest.raises(MapError, match="bitmaps leave .* free"):
        open_bytes(data)


@pytest.mark.parametrize("name", ["ext4", "ext3"])
def test_journal_blocks_free_in_the_bitmap_raise(small, name):
    image, data, report = small[name]
    data = bytearray(data)
    blocks = journal_blocks(image)
    text = run("dumpe2fs", image)
    bitmaps = list(map(int, re.findall(r"Block bitmap at (\d+)", text)))
    for block in blocks[100:104]:
        group = next(i for i, g in enumerate(report["groups"])
                     if g["first"] <= block <= g["last"])
        bit = block - report["groups"][group]["first"]
        data[bitmaps[group] * 1024 + bit // 8] &= ~(1 << bit % 8) & 0xFF
    with pytest.raises(MapError, match="journal inode 8 holds blocks"):
        open_bytes(data)


def test_dirty_filesystem_maps_with_a_warning(small):
    data = small["ext4"][1]
    umap = open_bytes(data)
    dirty = open_bytes(patched(data, 1024 + S_STATE, "H", 0))
    assert list(dirty.runs) == list(umap.runs)
    assert any("not cleanly unmounted" in w for w in dirty.warnings)


@pytest.mark.parametrize("name", ["ext4", "ext3"])
def test_journal_map_larger_than_its_size_raises(small, name):
    image, data, report = small[name]
    text = run("dumpe2fs", image)
    table = int(re.search(r"Inode table at (\d+)-", text).group(1))
    inode_size = int(report["fields"]["Inode size"])
    at = table * 1024 + 7 * inode_size + 4              # inode 8's i_size_lo
    with pytest.raises(MapError, match="journal inode 8 maps more blocks"):
        open_bytes(patched(data, at, "I", 1024))
