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
from .super import DISK_KEY, verify

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

    def items(self, root, level, low=(0, 0, 0), high=KEY_MAX):
        """(key, data) of every leaf item of the tree at `root` with
        low <= key < high, in key order; key = (objectid, type, offset)."""
        head, data = self.block(root, level)
        if head.level == 0:
            for i in range(head.nritems):
                objectid, type_, offset, where, size = ITEM.unpack_from(
                    data, HEADER.size + i * ITEM.size)
                key = (objectid, type_, offset)
                if key < low:
                    continue
                if key >= high:
                    return
                start = HEADER.size + where
                if start + size > self.nodesize:
                    raise MapError(f"btrfs leaf {root}: item {i} runs past "
                                   f"the block")
                yield key, data[start:start + size]
            return
        ptrs = [KEY_PTR.unpack_from(data, HEADER.size + i * KEY_PTR.size)
                for i in range(head.nritems)]
        for i, (objectid, type_, offset, child, _gen) in enumerate(ptrs):
            if (objectid, type_, offset) >= high:
                return
            if i + 1 < len(ptrs) and tuple(ptrs[i + 1][:3]) <= low:
                continue
            yield from self.items(child, head.level - 1, low, high)


def key_of(data, pos=0):
    """A disk key (objectid, type, offset) at `pos` of `data`."""
    k = DISK_KEY.unpack(data, pos)
    return k.objectid, k.type, k.offset
