"""ext used-block maps (diskimage.fs.ext.used) of images with inconsistent
structures: superblock fields, feature flags, group descriptors, bitmaps
and journals edited in the bytes of small real images; each is refused with
a MapError that says what is wrong, or mapped with a warning."""

import re
import struct

import pytest

import demodisk
from diskimage.fs.ext import csum, used as ext
from diskimage.fs.usedmap import MapError
from tests.fs.ext_tools import (bytes_reader, dumpe2fs, journal_blocks, mkfs,
                                run)

KiB, MiB = 1 << 10, 1 << 20

pytestmark = pytest.mark.needs("mke2fs", "dumpe2fs", "debugfs", "e2fsck",
                               "blkid", "losetup")


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
    """`data` with a field changed; a superblock field with its checksum
    made right again (metadata_csum), as a tool would write it."""
    data = bytearray(data)
    struct.pack_into("<" + fmt, data, offset, value)
    if 1024 <= offset < 2048 and sb_field(data, 0x64, "I") & 0x400:
        struct.pack_into("<I", data, 1024 + 0x3FC,
                         csum.superblock_csum(data[1024:2048]))
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
    ("block", "group 1", "lies in group 1.s block bitmap|outside its group"),
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
    with pytest.raises(MapError, match="marks? free|bitmap leaves"):
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
