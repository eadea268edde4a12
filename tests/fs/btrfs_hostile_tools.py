"""Helpers of the hostile btrfs tests (test_btrfs_hostile.py,
test_btrfs_refs.py): a real small volume (4 KiB nodes, so its trees have
nodes above their leaves) and copies of it with bytes of one tree block
or of the superblock edited and the checksum recomputed the way btrfs
does.  Tree blocks are found with `btrfs inspect-internal dump-tree` and
their device offsets through the stripes `dump-tree -t chunk` prints
(both copies of DUP are patched), not through the code under test."""

import os
import re
import struct

import pytest

from diskimage.fs import registry
from diskimage.fs.btrfs.super import SUPER_OFFSET, SUPERBLOCK, checksum
from diskimage.fs.usedmap import MapError
from tests.fs.btrfs_tools import make_small
from tests.fsmaps import run


HEADER = 101                    # struct btrfs_header
ITEM, KEY_PTR = 25, 33          # struct btrfs_item, btrfs_key_ptr
NRITEMS, LEVEL = 96, 100        # offsets of nritems (u32) and level (u8)


def small_volume(tmp_path_factory):
    """The volume both test files edit copies of."""
    tmp = tmp_path_factory.mktemp("btrfs-hostile")
    image, _ = make_small(tmp, ["-n", "4096"])
    return image


def open_map(image):
    with open(image, "rb") as f:
        umap = registry.used_map(lambda o, n: os.pread(f.fileno(), n, o),
                                 0, os.path.getsize(image), "btrfs")
        return list(umap.runs)


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
