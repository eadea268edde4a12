"""btrfs maps that must account for every item: an extent straddling its
chunk, a chunk without its block group, items shorter than their struct,
data and tree-block extent items moved inside their chunk (the counts
still agree: only the file trees' references and the blocks every tree
reaches tell), and a seeded sweep of 1000 single-byte edits, checksums
recomputed, each of which must map to exactly the pristine runs or be a
MapError.  Copies of a real volume edited as in test_btrfs_hostile.py
(tests/fs/btrfs_hostile_tools.py)."""

import os
import random
import re
import struct

import pytest

from diskimage.fs import registry
from diskimage.fs.btrfs.refs import referenced
from diskimage.fs.btrfs.super import checksum
from diskimage.fs.btrfs.used import _Volume
from diskimage.fs.usedmap import MapError
from tests.fs.btrfs_hostile_tools import (
    HEADER, ITEM, hostile, item_slot, open_map, places, refused,
    small_volume, super_fields, used_byte)
from tests.fsmaps import run

pytestmark = pytest.mark.needs("mkfs.btrfs", "btrfs", "losetup", root=True)


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    return small_volume(tmp_path_factory)


# --- items the counts must account for ----------------------------------------
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
        tally = referenced(vol.trees, vol.sb)[0]
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "extent",
              volume).stdout
    assert tally is not None
    assert tally.count == sum(int(n) for n in re.findall(
        r"refs (\d+) gen \d+ flags DATA", out)) > 20


def test_a_tree_block_extent_item_moved_inside_its_chunk_is_refused(
        volume, tmp_path):
    """The sweep's other find: a METADATA_ITEM of a leaf (no tree's root)
    moved one node on into free space (keys in order, counts unchanged)
    would leave the real block, perhaps of a tree the map does not read,
    out of the map; the blocks every tree reaches must be the tree-block
    extents."""
    nodesize = super_fields(volume).nodesize
    roots = set(int(n) for n in re.findall(r"\bbytenr (\d+)", run(
        "btrfs", "inspect-internal", "dump-tree", "-t", "root",
        volume).stdout))
    sb = super_fields(volume)
    roots |= {sb.root, sb.chunk_root}
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "extent",
              volume).stdout
    extents, leaf = [], None
    for line in out.splitlines():
        if line.startswith("leaf "):
            leaf = int(line.split()[1])
        hit = re.search(r"item (\d+) key \((\d+) (EXTENT|METADATA)_ITEM "
                        r"(\d+)\)", line)
        if hit:
            index, start, kind, extra = hit.groups()
            extents.append((int(start), kind, int(extra), leaf, int(index)))
    chosen = None
    for (start, kind, level, leaf, index), after in zip(extents,
                                                         extents[1:]):
        if kind == "METADATA" and level == 0 and index > 0 and \
                start not in roots and after[0] >= start + 2 * nodesize:
            chosen = leaf, index
    assert chosen
    leaf, index = chosen

    def moved(block):
        at = HEADER + index * ITEM
        start = struct.unpack_from("<Q", block, at)[0]
        struct.pack_into("<Q", block, at, start + nodesize)
    refused(hostile(volume, tmp_path, leaf, moved),
            "do not name the same blocks")
