"""btrfs tree blocks: read through the chunk map, checksums checked, and
walked in key order over a range of keys.

A tree block (node or leaf) is `nodesize` bytes at a logical address; it
starts with a 101-byte header (struct btrfs_header).  A leaf (level 0)
holds nritems items of 25 bytes (key, data offset, data size) whose data
offsets count from the end of the header; a node holds nritems key
pointers of 33 bytes (key, child's logical address, generation).
"""

import struct

from ...structs import Struct
from ..usedmap import MapError, read_exact
from .super import verify

HEADER = Struct("btrfs header", [
    ("32s", "csum"), ("16s", "fsid"), ("Q", "bytenr"), ("Q", "flags"),
    ("16s", "chunk_tree_uuid"), ("Q", "generation"), ("Q", "owner"),
    ("I", "nritems"), ("B", "level"),
], size=101)
ITEM = struct.Struct("<QBQII")          # key, offset, size: 25 bytes
KEY_PTR = struct.Struct("<QBQQQ")       # key, blockptr, generation: 33
MAX_LEVEL = 8
KEY_MAX = (2 ** 64 - 1, 255, 2 ** 64 - 1)


class Trees:
    """Tree blocks of one filesystem: `physical(logical, length)` gives the
    volume offset of the first copy of a logical range."""

    def __init__(self, read, sb, physical):
        self.read, self.sb, self.physical = read, sb, physical
        self.nodesize = sb.nodesize
        self.fsid = sb.metadata_uuid if sb.incompat_flags & (1 << 10) \
            else sb.fsid

    def block(self, logical, level=None):
        """The checked header and bytes of the tree block at `logical`."""
        offset = self.physical(logical, self.nodesize)
        data = read_exact(self.read, offset, self.nodesize,
                          f"btrfs tree block {logical}")
        verify(self.sb.csum_type, data, f"tree block {logical} (byte "
                                        f"{offset})")
        head = HEADER.unpack(data)
        if head.bytenr != logical:
            raise MapError(f"btrfs tree block at {logical} says it is at "
                           f"{head.bytenr}")
        if head.fsid != self.fsid:
            raise MapError(f"btrfs tree block {logical} belongs to another "
                           f"filesystem")
        if level is not None and head.level != level:
            raise MapError(f"btrfs tree block {logical} is level "
                           f"{head.level}, its parent says {level}")
        limit = (self.nodesize - HEADER.size) // (
            ITEM.size if head.level == 0 else KEY_PTR.size)
        if head.nritems > limit or head.level > MAX_LEVEL:
            raise MapError(f"btrfs tree block {logical}: {head.nritems} "
                           f"items at level {head.level}")
        return head, data

    def items(self, root, level, low=(0, 0, 0), high=KEY_MAX, shared=None):
        """(key, data) of every leaf item of the tree at `root` with
        low <= key < high, in key order; key = (objectid, type, offset).

        A hostile tree cannot make this loop or run long: levels fall by
        one at each step (a child is checked to be one level below its
        parent), a block is visited once per walk, every block but the
        root holds at least one item, its first key is the one its parent
        points with, and keys rise strictly inside a block and stay below
        the parent's next key; so the walk reads each block at most once
        and a range walk finds every item a full walk finds.

        `shared`, a set kept over several walks (of subvolumes and
        snapshots, which share blocks), names blocks whose items an
        earlier walk gave: they are not descended into again, so each
        block's items come once over all the walks."""
        walk = _Walk(self, low, high, shared)
        yield from walk.visit(root, level, None, None, is_root=True)


class _Walk:
    def __init__(self, trees, low, high, shared=None):
        self.trees, self.low, self.high = trees, low, high
        self.seen = set()
        self.shared = shared

    def visit(self, logical, level, first, limit, is_root=False,
              generation=None):
        """Items of the block at `logical`, whose first key must be
        `first` and every key below `limit` (None for the root), written
        in the transaction `generation` its parent names."""
        if self.shared is not None:
            if logical in self.shared:
                return
            self.shared.add(logical)
        if logical in self.seen:
            raise MapError(f"btrfs tree block {logical} is reached twice "
                           f"(a loop or a shared child)")
        self.seen.add(logical)
        head, data = self.trees.block(logical, level)
        if generation is not None and head.generation != generation:
            raise MapError(f"btrfs tree block {logical} is of generation "
                           f"{head.generation}, its parent says "
                           f"{generation} (a stale block)")
        if head.nritems == 0 and not is_root:
            raise MapError(f"btrfs tree block {logical} is empty")
        size = ITEM if head.level == 0 else KEY_PTR
        entries = [size.unpack_from(data, HEADER.size + i * size.size)
                   for i in range(head.nritems)]
        keys = [tuple(entry[:3]) for entry in entries]
        if first is not None and keys[0] != first:
            raise MapError(f"btrfs tree block {logical} starts at key "
                           f"{keys[0]}, its parent says {first}")
        for before, after in zip(keys, keys[1:]):
            if before >= after:
                raise MapError(f"btrfs tree block {logical}: key {after} "
                               f"after {before} (keys out of order)")
        if keys and limit is not None and keys[-1] >= limit:
            raise MapError(f"btrfs tree block {logical}: key {keys[-1]} is "
                           f"not below its parent's next key {limit}")
        if head.level == 0:
            yield from self._leaf(logical, data, keys, entries)
            return
        for i, (key, entry) in enumerate(zip(keys, entries)):
            if key >= self.high:
                return
            after = keys[i + 1] if i + 1 < len(keys) else limit
            if after is not None and after <= self.low:
                continue
            yield from self.visit(entry[3], head.level - 1, key, after,
                                  generation=entry[4])

    def _leaf(self, logical, data, keys, entries):
        nodesize = self.trees.nodesize
        items_end = HEADER.size + len(entries) * ITEM.size
        for i, (key, entry) in enumerate(zip(keys, entries)):
            where, size = entry[3], entry[4]
            start = HEADER.size + where
            if start < items_end or start + size > nodesize:
                raise MapError(f"btrfs leaf {logical}: item {i} (offset "
                               f"{where}, size {size}) leaves the leaf's "
                               f"data area")
            if key < self.low:
                continue
            if key >= self.high:
                return
            yield key, data[start:start + size]
