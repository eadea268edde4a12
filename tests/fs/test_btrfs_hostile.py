"""Hostile btrfs images: a real small volume (4 KiB nodes, so its trees
have nodes above their leaves) with bytes of one tree block or of the
superblock edited and the checksum recomputed the way btrfs does, so that
the edit gets past the checksum and reaches the check it means to test.
Each must be a MapError naming the reason: never a hang, never another
exception, never a read without bound.

Tree blocks are found with `btrfs inspect-internal dump-tree` and their
device offsets through the stripes `dump-tree -t chunk` prints (both
copies of DUP are patched), not through the code under test
(tests/fs/btrfs_hostile_tools.py).  Items the counts must account for,
and a seeded sweep of edits: test_btrfs_refs.py."""

import re
import struct

import pytest

from tests.fs.btrfs_hostile_tools import (
    HEADER, ITEM, NRITEMS, hostile, hostile_super, leaves, nodes,
    open_map, ptr, refused, small_volume)
from tests.fsmaps import run

pytestmark = pytest.mark.needs("mkfs.btrfs", "btrfs", "losetup", root=True)


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    return small_volume(tmp_path_factory)


def test_the_pristine_volume_maps_and_has_nodes(volume):
    assert open_map(volume)
    assert nodes(volume, "fs") and nodes(volume, "extent")

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
