"""Every data extent the file trees reference is the extent item the map
keeps: an extent item moved or resized inside its chunk (the block group
counts still agree) would otherwise leave a file's data out of the map.

A data extent item's `refs` is the number of file extent items that point
at it, each counted in the one tree block holding it (a leaf shared by a
subvolume and its snapshot holds its references once).  So, over every
file tree (the top-level subvolume 5, subvolumes and snapshots 256 and up,
relocation trees -8, the data relocation tree -9, and the root tree
itself, whose v1 free-space cache inodes own data extents), each block
read once: the multiset of (disk_bytenr, disk_num_bytes) of the regular
and preallocated file extent items must equal the data extent items
(start, length) taken `refs` times.  Compared in constant memory as the
count and the sum modulo 2**64 of a 64-bit hash of each pair.

Likewise every tree block reached from the root tree, the chunk tree and
every root item's tree (each once) must be a tree-block extent item and
every tree-block extent item a block reached: a METADATA_ITEM moved
inside its chunk would otherwise leave a block of a tree the map does not
read (a file tree, the csum tree) out of the map.

A deleted subvolume not yet cleaned (a root item with refs 0) is being
dropped a part at a time: its references are not all there, so the check
is not made (the block group counts still are).
"""

import hashlib
import struct

from ..usedmap import MapError

ROOT_ITEM_KEY, EXTENT_DATA_KEY = 132, 108
FS_TREE, FIRST_FREE, LAST_FREE = 5, 256, 2 ** 64 - 256
TREE_RELOC, DATA_RELOC = 2 ** 64 - 8, 2 ** 64 - 9
#: struct btrfs_root_item: bytenr u64 @176, refs u32 @216, level u8 @238
_ROOT_BYTENR, _ROOT_REFS, _ROOT_LEVEL = 176, 216, 238
#: struct btrfs_file_extent_item: type u8 @20; disk_bytenr u64 @21,
#: disk_num_bytes u64 @29 for type 1 (regular) and 2 (prealloc)
_FILE_TYPE, _FILE_DISK = 20, struct.Struct("<QQ")
MASK = 2 ** 64 - 1


def _hash(start, length):
    return int.from_bytes(hashlib.blake2b(_FILE_DISK.pack(start, length),
                                          digest_size=8).digest(), "little")


class Tally:
    """Count and hash sum of (start, length) pairs, with multiplicity."""

    def __init__(self):
        self.count, self.sum = 0, 0

    def add(self, start, length, times=1):
        self.count += times
        self.sum = (self.sum + times * _hash(start, length)) & MASK


def _is_file_tree(objectid):
    return objectid in (1, FS_TREE, TREE_RELOC, DATA_RELOC) or \
        FIRST_FREE <= objectid <= LAST_FREE


def all_trees(trees, sb):
    """[(objectid, bytenr, level)] of every tree: the root tree, the chunk
    tree, and each root item's; None when a deleted subvolume is being
    dropped."""
    found = [(1, sb.root, sb.root_level), (3, sb.chunk_root,
                                           sb.chunk_root_level)]
    for key, data in trees.items(sb.root, sb.root_level):
        if key[1] != ROOT_ITEM_KEY:
            continue
        objectid = key[0]
        if len(data) < _ROOT_LEVEL + 1:
            raise MapError(f"btrfs root item {objectid} is short")
        if _is_file_tree(objectid) and \
                struct.unpack_from("<I", data, _ROOT_REFS)[0] == 0:
            return None
        bytenr, = struct.unpack_from("<Q", data, _ROOT_BYTENR)
        found.append((objectid, bytenr, data[_ROOT_LEVEL]))
    return found


def referenced(trees, sb):
    """(Tally of every file extent item's disk extent, Tally of every tree
    block reached (start, nodesize)), walking every tree with each block
    read once; None when it cannot be complete (a subvolume being
    dropped)."""
    roots = all_trees(trees, sb)
    if roots is None:
        return None
    tally, shared = Tally(), set()
    for objectid, bytenr, level in roots:
        file_tree = _is_file_tree(objectid)
        for key, data in trees.items(bytenr, level, shared=shared):
            if key[1] != EXTENT_DATA_KEY or not file_tree:
                continue
            if len(data) <= _FILE_TYPE:
                raise MapError(f"btrfs file extent item of tree {objectid} "
                               f"is short")
            if data[_FILE_TYPE] not in (1, 2):
                continue            # inline: its data is in the leaf
            if len(data) < _FILE_TYPE + 1 + _FILE_DISK.size:
                raise MapError(f"btrfs file extent item of tree {objectid} "
                               f"is short")
            start, length = _FILE_DISK.unpack_from(data, _FILE_TYPE + 1)
            if start:               # 0: a hole
                tally.add(start, length)
    blocks = Tally()
    for logical in shared:
        blocks.add(logical, sb.nodesize)
    return tally, blocks
