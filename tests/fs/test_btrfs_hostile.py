"""Hostile btrfs images: a real small volume (4 KiB nodes, so its trees
have nodes above their leaves) with bytes of one tree block or of the
superblock edited and the checksum recomputed the way btrfs does, so that
the edit gets past the checksum and reaches the check it means to test.
Each must be a MapError naming the reason: never a hang, never another
exception, never a read without bound.

Tree blocks are found with `btrfs inspect-internal dump-tree` and their
device offsets through the stripes `dump-tree -t chunk` prints (both
copies of DUP are patched), not through the code under test."""

import os
import random
import re
import struct

import pytest

from diskimage.fs import registry
from diskimage.fs.btrfs.refs import referenced
from diskimage.fs.btrfs.super import SUPER_OFFSET, SUPERBLOCK, checksum
from diskimage.fs.btrfs.used import _Volume
from diskimage.fs.usedmap import MapError
from tests.fs.btrfs_tools import make_small
from tests.fsmaps import run

pytestmark = pytest.mark.needs("mkfs.btrfs", "btrfs", "losetup", root=True)

HEADER = 101                    # struct btrfs_header
ITEM, KEY_PTR = 25, 33          # struct btrfs_item, btrfs_key_ptr
NRITEMS, LEVEL = 96, 100        # offsets of nritems (u32) and level (u8)


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("btrfs-hostile")
    image, _ = make_small(tmp, ["-n", "4096"])
    return image


def open_map(image):
    with open(image, "rb") as f:
        umap = registry.used_map(lambda o, n: os.pread(f.fileno(), n, o),
                                 0, os.path.getsize(image), "btrfs")
        return list(umap.runs)


def test_the_pristine_volume_maps_and_has_nodes(volume):
    assert open_map(volume)
    assert nodes(volume, "fs") and nodes(volume, "extent")


def super_fields(image):
    with open(image, "rb") as f:
        f.seek(SUPER_OFFSET)
        return SUPERBLOCK.unpack(f.read(4096))


def nodes(image, tree):
    """[(logical, level, nritems)] of the nodes (level > 0) of `tree`."""
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", tree,
              image).stdout
    return [(int(a), int(b), int(c)) for a, b, c in re.findall(
        r"^node (\d+) level (\d+) items (\d+)", out, re.M)]


def leaves(image, tree):
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", tree,
              image).stdout
    return [(int(a), int(b)) for a, b in re.findall(
        r"^leaf (\d+) items (\d+)", out, re.M)]


def places(image, logical):
    """The device offsets of every copy of the tree block at `logical`."""
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "chunk",
              image).stdout
    for chunk in out.split("CHUNK_ITEM ")[1:]:
        start = int(chunk.split(")")[0])
        length = int(chunk.split("length ")[1].split()[0])
        if start <= logical < start + length:
            return [int(s) + logical - start for s in
                    re.findall(r"stripe \d+ devid 1 offset (\d+)", chunk)]
    raise AssertionError(f"no chunk holds {logical}")


def hostile(image, tmp_path, logical, change):
    """A copy of `image` whose tree block at `logical` was changed by
    change(bytearray of the block), its checksum recomputed."""
    copy = tmp_path / "hostile.img"
    run("cp", "--sparse=always", image, copy)
    sb = super_fields(image)
    with open(copy, "r+b") as f:
        for place in places(image, logical):
            f.seek(place)
            block = bytearray(f.read(sb.nodesize))
            change(block)
            block[:32] = checksum(sb.csum_type, bytes(block[32:])).ljust(
                32, b"\0")
            f.seek(place)
            f.write(block)
    return copy


def hostile_super(image, tmp_path, change):
    """A copy of `image` whose superblock at 64 KiB was changed by
    change(bytearray), its checksum recomputed."""
    copy = tmp_path / "hostile.img"
    run("cp", "--sparse=always", image, copy)
    with open(copy, "r+b") as f:
        f.seek(SUPER_OFFSET)
        raw = bytearray(f.read(4096))
        change(raw)
        csum_type = struct.unpack_from("<H", raw, 0xc4)[0]
        raw[:32] = checksum(csum_type, bytes(raw[32:])).ljust(32, b"\0")
        f.seek(SUPER_OFFSET)
        f.write(raw)
    return copy


def refused(copy, reason):
    with pytest.raises(MapError, match=reason):
        open_map(copy)


def ptr(index):
    """Offset of key pointer `index` of a node."""
    return HEADER + index * KEY_PTR


# --- trees --------------------------------------------------------------------
# The extent tree: one the map walks (a hostile fs tree is the kernel's
# business, not the map's: the map never reads it).
def test_a_child_pointer_back_to_its_own_node_is_refused(volume, tmp_path):
    node, _level, _n = nodes(volume, "extent")[0]

    def loop(block):
        struct.pack_into("<Q", block, ptr(1) + 17, node)
    refused(hostile(volume, tmp_path, node, loop), "reached twice|is level")


def test_a_child_pointer_up_to_the_root_is_refused(volume, tmp_path):
    """A level-1 node of the extent tree pointing at the tree's root."""
    found = nodes(volume, "extent")
    root, top, _ = max(found, key=lambda n: n[1])
    assert top >= 1

    def up(block):
        struct.pack_into("<Q", block, ptr(0) + 17, root)
    refused(hostile(volume, tmp_path, root, up), "reached twice|is level")


def test_two_pointers_to_one_child_are_refused(volume, tmp_path):
    node, _level, n = nodes(volume, "extent")[0]
    assert n >= 2

    def shared(block):
        child = struct.unpack_from("<Q", block, ptr(0) + 17)[0]
        block[ptr(1):ptr(1) + 17] = block[ptr(0):ptr(0) + 17]
        struct.pack_into("<Q", block, ptr(1) + 17, child)
    refused(hostile(volume, tmp_path, node, shared),
            "reached twice|out of order")


def test_nritems_beyond_the_block_is_refused(volume, tmp_path):
    leaf, _ = leaves(volume, "extent")[0]

    def many(block):
        struct.pack_into("<I", block, NRITEMS, 10000)
    refused(hostile(volume, tmp_path, leaf, many), "10000 items")


def test_nritems_beyond_a_node_is_refused(volume, tmp_path):
    node, _level, _n = nodes(volume, "extent")[0]

    def many(block):
        struct.pack_into("<I", block, NRITEMS, 0xffffffff)
    refused(hostile(volume, tmp_path, node, many), "4294967295 items")


def test_keys_out_of_order_in_a_leaf_are_refused(volume, tmp_path):
    leaf, n = leaves(volume, "extent")[0]
    assert n >= 3

    def swap(block):
        first = HEADER + ITEM
        second = first + ITEM
        a, b = bytes(block[first:first + 17]), bytes(block[second:second + 17])
        block[first:first + 17], block[second:second + 17] = b, a
    refused(hostile(volume, tmp_path, leaf, swap), "out of order")


def test_keys_out_of_order_in_a_node_are_refused(volume, tmp_path):
    node, _level, n = nodes(volume, "extent")[0]
    assert n >= 2

    def swap(block):
        a, b = bytes(block[ptr(0):ptr(1)]), bytes(block[ptr(1):ptr(2)])
        block[ptr(0):ptr(1)], block[ptr(1):ptr(2)] = b, a
    refused(hostile(volume, tmp_path, node, swap), "out of order|starts at")


def test_a_pointer_key_other_than_its_childs_first_is_refused(volume,
                                                               tmp_path):
    """The parent's key for a child says where a range walk (per chunk)
    descends: a wrong one would make it skip items."""
    node, _level, n = nodes(volume, "extent")[0]
    assert n >= 2

    def later(block):
        offset = struct.unpack_from("<Q", block, ptr(1) + 9)[0]
        struct.pack_into("<Q", block, ptr(1) + 9, offset + 1)
    refused(hostile(volume, tmp_path, node, later), "its parent says")


def test_a_child_of_another_generation_is_refused(volume, tmp_path):
    """A stale block (btrfs: "parent transid verify failed")."""
    node, _level, _n = nodes(volume, "extent")[0]

    def newer(block):           # the pointer's generation at 25
        gen = struct.unpack_from("<Q", block, ptr(0) + 25)[0]
        struct.pack_into("<Q", block, ptr(0) + 25, gen + 1)
    refused(hostile(volume, tmp_path, node, newer), "a stale block")


@pytest.mark.parametrize("where, size", [(5000, 10), (3900, 400),
                                         (0, 10)])
def test_an_item_outside_the_leaf_data_is_refused(volume, tmp_path, where,
                                                  size):
    leaf, _ = leaves(volume, "extent")[0]

    def outside(block):
        struct.pack_into("<II", block, HEADER + 17, where, size)
    refused(hostile(volume, tmp_path, leaf, outside), "leaves the leaf")


# --- chunks -------------------------------------------------------------------
def chunk_item(image, kind):
    """(leaf, data offset in the leaf) of the chunk tree's first chunk item
    of type `kind` (DATA|single, METADATA|DUP as dump-tree says)."""
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "chunk",
              image).stdout
    leaf = None
    for line_no, line in enumerate(out.splitlines()):
        if line.startswith("leaf "):
            leaf = int(line.split()[1])
        found = re.search(r"CHUNK_ITEM \d+\) itemoff (\d+)", line)
        if found and f"type {kind}\n" in "\n".join(
                out.splitlines()[line_no:line_no + 3]):
            return leaf, HEADER + int(found[1])
    raise AssertionError(f"no {kind} chunk")


@pytest.mark.parametrize("stripes, reason", [(0, "has 0 stripes"),
                                             (65535, "btrfs chunk|stripe")])
def test_a_chunk_with_no_or_huge_num_stripes_is_refused(volume, tmp_path,
                                                        stripes, reason):
    leaf, at = chunk_item(volume, "DATA|single")

    def stripes_of(block):      # num_stripes at 44 of struct btrfs_chunk
        struct.pack_into("<H", block, at + 44, stripes)
    refused(hostile(volume, tmp_path, leaf, stripes_of), reason)


def test_a_stripe_outside_the_device_is_refused(volume, tmp_path):
    leaf, at = chunk_item(volume, "DATA|single")

    def far(block):             # stripe 0's offset: 48 + 8
        struct.pack_into("<Q", block, at + 56, 1 << 50)
    refused(hostile(volume, tmp_path, leaf, far), "matches no stripe|past")


# --- the superblock -----------------------------------------------------------
def test_sys_chunk_array_size_past_its_2048_bytes_is_refused(volume,
                                                              tmp_path):
    def big(raw):
        struct.pack_into("<I", raw, 0xa0, 2049)
    refused(hostile_super(volume, tmp_path, big), "past its 2048 bytes")


@pytest.mark.parametrize("stripes, reason", [(0, "has no stripes"),
                                             (65535, "runs past the array")])
def test_a_system_chunk_with_no_or_huge_num_stripes_is_refused(
        volume, tmp_path, stripes, reason):
    def change(raw):            # the first key (17) then num_stripes at 44
        struct.pack_into("<H", raw, 0x32b + 17 + 44, stripes)
    refused(hostile_super(volume, tmp_path, change), reason)


def test_a_system_stripe_outside_the_device_is_refused(volume, tmp_path):
    def far(raw):
        struct.pack_into("<Q", raw, 0x32b + 17 + 48 + 8, 1 << 50)
    refused(hostile_super(volume, tmp_path, far), "btrfs")


@pytest.mark.parametrize("nodesize", [1 << 31, 12288, 1024])
def test_a_node_size_btrfs_never_uses_is_refused(volume, tmp_path, nodesize):
    def change(raw):            # nodesize at 0x94
        struct.pack_into("<I", raw, 0x94, nodesize)
    refused(hostile_super(volume, tmp_path, change),
            f"node size {nodesize}")


@pytest.mark.parametrize("bit, name", [(12, "zoned"), (13, "extent_tree_v2"),
                                       (14, "raid_stripe_tree"),
                                       (20, hex(1 << 20))])
def test_an_incompat_feature_not_mapped_is_refused(volume, tmp_path, bit,
                                                   name):
    def change(raw):            # incompat_flags at 0xbc
        flags = struct.unpack_from("<Q", raw, 0xbc)[0]
        struct.pack_into("<Q", raw, 0xbc, flags | 1 << bit)
    refused(hostile_super(volume, tmp_path, change), name)


def test_a_conversion_under_way_is_refused(volume, tmp_path):
    def change(raw):            # flags at 0x38: changing_data_csum
        flags = struct.unpack_from("<Q", raw, 0x38)[0]
        struct.pack_into("<Q", raw, 0x38, flags | 1 << 39)
    refused(hostile_super(volume, tmp_path, change), "changing_data_csum")


def test_a_tree_root_no_extent_holds_is_refused(volume, tmp_path):
    """The root tree's item for the csum tree (7) moved to an address no
    extent item lists: the map does not walk the csum tree, so only the
    check that every tree's top block is an extent catches it."""
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "root",
              volume).stdout
    leaf = int(re.search(r"^leaf (\d+)", out, re.M)[1])
    offset = int(re.search(r"key \(CSUM_TREE ROOT_ITEM 0\) itemoff (\d+)",
                           out)[1])
    csum_root = int(re.search(r"CSUM_TREE ROOT_ITEM 0\).*?bytenr (\d+)", out,
                              re.S)[1])

    def elsewhere(block):       # bytenr at 176 of struct btrfs_root_item
        struct.pack_into("<Q", block, HEADER + offset + 176,
                         csum_root + 1024 * 4096)
    refused(hostile(volume, tmp_path, leaf, elsewhere),
            "tree 7 starts at block .* which no extent item holds")


# --- items the counts must account for ----------------------------------------
def item_slot(image, tree, pattern, last=False):
    """(leaf, item index) of the first (or last) item of `tree` whose key
    line in dump-tree matches `pattern`."""
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", tree,
              image).stdout
    leaf, found = None, []
    for line in out.splitlines():
        if line.startswith("leaf "):
            leaf = int(line.split()[1])
        hit = re.search(r"item (\d+) key \((.*?)\) itemoff", line)
        if hit and re.fullmatch(pattern, hit[2]):
            found.append((leaf, int(hit[1])))
    return found[-1] if last else found[0]


def test_an_extent_past_the_end_of_its_chunk_is_refused(volume, tmp_path):
    """The last data extent of the volume lengthened by 1 GiB: its key
    stays in order, but its bytes would straddle the end of its chunk."""
    leaf, index = item_slot(volume, "extent", r"\d+ EXTENT_ITEM \d+",
                            last=True)

    def longer(block):          # key.offset (the length) at 9 of the key
        at = HEADER + index * ITEM + 9
        length = struct.unpack_from("<Q", block, at)[0]
        struct.pack_into("<Q", block, at, length + (1 << 30))
    refused(hostile(volume, tmp_path, leaf, longer), "is in no chunk")


def test_a_chunk_without_its_block_group_item_is_refused(volume, tmp_path):
    """A BLOCK_GROUP_ITEM's key type changed to 193 (its order kept): a
    chunk the extent tree then does not describe."""
    leaf, index = item_slot(volume, "extent", r"\d+ BLOCK_GROUP_ITEM \d+")

    def other(block):           # key.type at 8
        block[HEADER + index * ITEM + 8] = 193
    refused(hostile(volume, tmp_path, leaf, other),
            "block group items for")


@pytest.mark.parametrize("tree, kind, reason", [
    ("extent", "BLOCK_GROUP_ITEM", "block group item .* is short"),
    ("dev", "DEV_EXTENT", "device extent at .* is short"),
    ("root", "ROOT_ITEM", "root item .* is short"),
    ("extent", "EXTENT_ITEM", "extent item .* is short"),
])
def test_an_item_shorter_than_its_struct_is_refused(volume, tmp_path, tree,
                                                    kind, reason):
    """The item's size field cut to 8 bytes (its data stays inside the
    leaf): a struct read past the item must be a MapError, not a
    struct.error."""
    leaf, index = item_slot(volume, tree, rf"\S+ {kind} \d+")

    def short(block):           # size u32 at 21 of struct btrfs_item
        struct.pack_into("<I", block, HEADER + index * ITEM + 21, 8)
    refused(hostile(volume, tmp_path, leaf, short), reason)


# --- a seeded sweep of single-byte edits --------------------------------------
def test_1000_edited_bytes_each_map_the_same_or_are_a_map_error(volume):
    """1000 single-byte changes (seeded), each in the used part (header,
    item or key pointer array, item data) of a block of a tree the map
    reads (root, chunk, extent, device), both copies, checksum recomputed,
    laid over the image in memory: each either maps to exactly the
    pristine volume's runs (the edit touched nothing the map depends on:
    a generation, a ref count, an inode's times) or is a MapError; no
    other exception, and each ends (the count of reads is bounded)."""
    sb = super_fields(volume)
    blocks = []
    for tree in ("root", "chunk", "extent", "dev"):
        out = run("btrfs", "inspect-internal", "dump-tree", "-t", tree,
                  volume).stdout
        blocks += [int(n) for n in re.findall(r"^(?:leaf|node) (\d+)",
                                              out, re.M)]
    blocks = sorted(set(blocks))
    where = {logical: places(volume, logical) for logical in blocks}
    pristine = open_map(volume)
    rng = random.Random(14)
    outcomes = {"mapped": 0, "refused": 0}
    with open(volume, "rb") as f:
        for _ in range(1000):
            logical = rng.choice(blocks)
            at, value = used_byte(f, where[logical][0], sb.nodesize, rng), \
                rng.randrange(256)
            overlay = {}
            for place in where[logical]:
                block = bytearray(os.pread(f.fileno(), sb.nodesize, place))
                block[at] = value
                block[:32] = checksum(sb.csum_type, bytes(block[32:])).ljust(
                    32, b"\0")
                overlay[place] = bytes(block)
            reads = [0]

            def read(offset, length):
                reads[0] += 1
                assert reads[0] < 100000, (logical, at, value)
                data = bytearray(os.pread(f.fileno(), length, offset))
                for place, block in overlay.items():
                    lo, hi = max(offset, place), min(offset + length,
                                                     place + len(block))
                    if lo < hi:
                        data[lo - offset:hi - offset] = \
                            block[lo - place:hi - place]
                return bytes(data)
            try:
                umap = registry.used_map(read, 0, os.path.getsize(volume),
                                         "btrfs")
                assert list(umap.runs) == pristine, (logical, at, value)
                outcomes["mapped"] += 1
            except MapError:
                outcomes["refused"] += 1
    assert outcomes["refused"] > 200, outcomes


def used_byte(f, place, nodesize, rng):
    """A random offset in the used part of the tree block at `place`."""
    block = os.pread(f.fileno(), nodesize, place)
    nritems, level = struct.unpack_from("<IB", block, NRITEMS)
    end = HEADER + nritems * (KEY_PTR if level else ITEM)
    if level or rng.random() < 0.5:
        return rng.randrange(32, end)
    data = min(struct.unpack_from("<I", block, HEADER + i * ITEM + 17)[0]
               for i in range(nritems))
    return rng.randrange(HEADER + data, nodesize)


def test_a_data_extent_item_moved_inside_its_chunk_is_refused(volume,
                                                              tmp_path):
    """The sweep's find: a data extent item's start moved by 64 KiB inside
    its chunk (keys in order, no overlap, the block group's count
    unchanged) would leave the file's real bytes out of the map; the file
    trees' references to it catch it."""
    leaf, chosen = item_slot(volume, "extent", r"\d+ EXTENT_ITEM \d+",
                             last=True)     # the last one: room after it
    assert chosen > 0

    def moved(block):           # 4096 bytes on, into the gap after it
        at = HEADER + chosen * ITEM
        start = struct.unpack_from("<Q", block, at)[0]
        struct.pack_into("<Q", block, at, start + 4096)
    refused(hostile(volume, tmp_path, leaf, moved),
            "do not name the same extents")


def test_the_reference_check_counts_every_data_reference(volume):
    with open(volume, "rb") as f:
        vol = _Volume(lambda o, n: os.pread(f.fileno(), n, o),
                      os.path.getsize(volume))
        tally = referenced(vol.trees, vol.sb)
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "extent",
              volume).stdout
    assert tally is not None
    assert tally.count == sum(int(n) for n in re.findall(
        r"refs (\d+) gen \d+ flags DATA", out)) > 20
