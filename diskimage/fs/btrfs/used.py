"""Used bytes of a single-device btrfs volume, from its chunk tree and its
extent tree.

Used is: the first MiB (btrfs allocates no chunk below it; it holds the
boot area a boot loader may use and the superblock at 64 KiB), every
superblock mirror that fits the partition (64 MiB, 256 GiB), and inside
each chunk the extents the extent tree lists (EXTENT_ITEM: data and old
style tree blocks, METADATA_ITEM: tree blocks), mapped through the
chunk's stripes to device offsets: both copies for DUP.

Before the map is trusted: the superblock's and every tree block's
checksum, one device (num_devices and the chunk tree's device items),
single or DUP chunks only, every device extent against a chunk stripe and
their sum against the device item's bytes_used, every block group item
against its chunk and its used count against the extents inside it, and
the superblock's bytes_used against the sum of all extents, every tree's
top block against the tree-block extents, and every file extent reference
of every file tree against the data extent items (refs).  A volume with
a log tree to replay (log_root set) is not mapped: the log's blocks are in
no extent tree.
"""

import struct

from ..foreign import text, uuid
from ..usedmap import LazyRuns, MapError, UsedMap, merged, survey
from .chunks import dev_extents, read_chunks
from .refs import Tally, referenced
from .super import (COMPAT_RO_BLOCK_GROUP_TREE, DATA, METADATA, MIRRORS,
                    SUPER_SIZE, SYSTEM, read_super)

MiB = 1 << 20
ROOT_ITEM_KEY = 132
EXTENT_ITEM_KEY = 168
METADATA_ITEM_KEY = 169
BLOCK_GROUP_ITEM_KEY = 192
EXTENT_TREE, DEV_TREE, BLOCK_GROUP_TREE = 2, 4, 11
FLAG_DATA, FLAG_TREE_BLOCK = 1, 2
#: struct btrfs_root_item: bytenr at 176, level at 238
_ROOT_BYTENR, _ROOT_LEVEL = 176, 238
#: struct btrfs_extent_item: refs, generation, flags
_EXTENT_ITEM = struct.Struct("<QQQ")
#: struct btrfs_block_group_item: used, chunk_objectid, flags
_BLOCK_GROUP = struct.Struct("<QQQ")


def open_volume(read, size):
    """The UsedMap of the btrfs volume read by read(offset, length) in a
    partition of `size` bytes; MapError when it cannot be trusted."""
    return _Volume(read, size).used_map()


class _Volume:
    def __init__(self, read, size):
        self.read, self.size = read, size
        self.sb = sb = read_super(read)
        if sb.num_devices != 1:
            raise MapError(f"multi-device btrfs ({sb.num_devices} devices): "
                           f"copied whole")
        if sb.log_root:
            raise MapError("btrfs has a log tree to replay (mount it once): "
                           "its blocks are in no extent tree")
        self.chunks, self.dev, self.trees = read_chunks(read, sb)
        if self.dev.total_bytes != sb.total_bytes:
            raise MapError(f"btrfs superblock says {sb.total_bytes} bytes, "
                           f"its one device {self.dev.total_bytes}")
        roots = self._roots()
        if EXTENT_TREE not in roots or DEV_TREE not in roots:
            raise MapError("btrfs root tree lacks the extent or device tree")
        self.extent_root = roots[EXTENT_TREE]
        self.extents = dev_extents(self.trees, *roots[DEV_TREE], self.chunks,
                                   self.dev, size)
        self.group_root = roots.get(BLOCK_GROUP_TREE) \
            if sb.compat_ro_flags & COMPAT_RO_BLOCK_GROUP_TREE else None
        if sb.compat_ro_flags & COMPAT_RO_BLOCK_GROUP_TREE and \
                self.group_root is None:
            raise MapError("btrfs block-group-tree flag set, but no such tree")
        self._check_counts()

    def _roots(self):
        """{tree id: (bytenr, level)} of the root tree's root items; every
        tree's top block (and the root and chunk trees') is kept in
        self.tops, to be found among the extents."""
        roots = {}
        self.tops = {self.sb.root: "root tree",
                     self.sb.chunk_root: "chunk tree"}
        for key, data in self.trees.items(self.sb.root, self.sb.root_level):
            if key[1] == ROOT_ITEM_KEY:
                if len(data) < _ROOT_LEVEL + 1:
                    raise MapError(f"btrfs root item {key[0]} is short")
                bytenr, = struct.unpack_from("<Q", data, _ROOT_BYTENR)
                roots[key[0]] = (bytenr, data[_ROOT_LEVEL])
                self.tops[bytenr] = f"tree {key[0]}"
        return roots

    def _extent_items(self, low, high):
        """(logical, length, is_tree_block, refs) of the extent tree's
        extents with low <= logical < high, in order."""
        nodesize = self.sb.nodesize
        for key, data in self.trees.items(*self.extent_root, (low, 0, 0),
                                          (high, 0, 0)):
            if key[1] == METADATA_ITEM_KEY:
                yield key[0], nodesize, True, 1
            elif key[1] == EXTENT_ITEM_KEY:
                if len(data) < _EXTENT_ITEM.size:
                    raise MapError(f"btrfs extent item {key[0]} is short "
                                   f"(an old v0 extent item?)")
                refs, _gen, flags = _EXTENT_ITEM.unpack_from(data)
                yield key[0], key[2], bool(flags & FLAG_TREE_BLOCK), refs

    def _groups(self):
        """(logical, length, used, flags) of every block group item."""
        root = self.group_root or self.extent_root
        for key, data in self.trees.items(*root):
            if key[1] == BLOCK_GROUP_ITEM_KEY:
                if len(data) < _BLOCK_GROUP.size:
                    raise MapError(f"btrfs block group item {key[0]} is "
                                   f"short ({len(data)} bytes)")
                used, _objectid, flags = _BLOCK_GROUP.unpack_from(data)
                yield key[0], key[2], used, flags

    def _check_counts(self):
        """The extents lie inside chunks of their kind, do not overlap, and
        add up to each block group's used count and to the superblock's
        bytes_used."""
        per_chunk, end, total, chunk = {}, 0, 0, None
        tops, data, blocks = dict(self.tops), Tally(), Tally()
        for logical, length, tree, refs in self._extent_items(0,
                                                              2 ** 64 - 1):
            if tree:
                tops.pop(logical, None)
                blocks.add(logical, length)
            else:
                data.add(logical, length, refs)
            if logical < end:
                raise MapError(f"btrfs extents overlap at {logical}")
            end = logical + length
            if chunk is None or not (chunk.logical <= logical and end <=
                                     chunk.logical + chunk.length):
                chunk = self.chunks.find(logical, length)
            want = (METADATA | SYSTEM) if tree else DATA
            if not chunk.type & want:
                raise MapError(f"btrfs {'tree block' if tree else 'data'} "
                               f"extent {logical} lies in a {chunk.kind()} "
                               f"chunk")
            per_chunk[chunk.logical] = per_chunk.get(chunk.logical, 0) + \
                length
            total += length
        if tops:
            logical = min(tops)
            raise MapError(f"btrfs {tops[logical]} starts at block {logical}, "
                           f"which no extent item holds")
        groups = list(self._groups())
        if len(groups) != len(self.chunks.chunks):
            raise MapError(f"btrfs has {len(groups)} block group items for "
                           f"{len(self.chunks.chunks)} chunks")
        for logical, length, used, flags in groups:
            chunk = self.chunks.find(logical, length)
            if (chunk.logical, chunk.length, chunk.type) != (logical, length,
                                                             flags):
                raise MapError(f"btrfs block group {logical} does not match "
                               f"its chunk")
            if per_chunk.get(logical, 0) != used:
                raise MapError(f"btrfs block group {logical} says {used} "
                               f"bytes used, its extents hold "
                               f"{per_chunk.get(logical, 0)}")
        if total != self.sb.bytes_used:
            raise MapError(f"btrfs superblock says {self.sb.bytes_used} bytes "
                           f"used, the extent tree holds {total}")
        found = referenced(self.trees, self.sb)
        if found is None:
            return
        files, reached = found
        if (files.count, files.sum) != (data.count, data.sum):
            raise MapError(f"btrfs file trees hold {files.count} references "
                           f"to data extents, the extent tree "
                           f"{data.count}: they do not name the same "
                           f"extents")
        if (reached.count, reached.sum) != (blocks.count, blocks.sum):
            raise MapError(f"btrfs trees reach {reached.count} blocks, the "
                           f"extent tree lists {blocks.count} tree blocks: "
                           f"they do not name the same blocks")

    def _fixed(self):
        """The first MiB and the superblock mirrors inside the partition."""
        runs = [(0, min(MiB, self.size))]
        runs += [(at, SUPER_SIZE) for at in MIRRORS[1:]
                 if at + SUPER_SIZE <= self.size]
        return runs

    def _chunk_runs(self):
        """Each device extent's share of the extents, in device order."""
        for physical, _length, chunk in self.extents:
            shift = physical - chunk.logical
            for logical, length, _tree, _refs in self._extent_items(
                    chunk.logical, chunk.logical + chunk.length):
                yield logical + shift, length

    def runs(self):
        return merged(self._fixed(), self._chunk_runs())

    def used_map(self):
        runs = LazyRuns(self.runs)
        used, _ = survey(runs)
        sb = self.sb
        return UsedMap(kind="btrfs", block_size=sb.sectorsize,
                       total_bytes=sb.total_bytes, used_bytes=used,
                       runs=runs, label=text(sb.label), uuid=uuid(sb.fsid))
