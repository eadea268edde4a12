"""Used blocks of an ext2, ext3 or ext4 volume, read from its block bitmaps.

Field names follow the kernel's fs/ext4/ext4.h.  Used is block 0 up to the
end of the superblock, and every cluster whose bit is set in its group's
block bitmap.  A group flagged BLOCK_UNINIT (with uninit_bg or
metadata_csum) has no bitmap on disk; its used clusters are computed the way
the kernel's ext4_init_block_bitmap and e2fsprogs do: the superblock backup
and group descriptor blocks (old style and reserved, or meta_bg's) of the
group, and the bitmaps and inode tables placed in it.  On top of that, and
whatever the bitmaps say, the map always holds every group's superblock
backup, descriptor blocks, bitmaps and inode tables and the MMP block.  The
internal journal (inode 8) is walked and each of its blocks must be marked
used, or the bitmaps are not trusted.

With bigalloc one bitmap bit is a cluster of 2^s_log_cluster_size bytes;
the map's block_size is then the cluster size.
"""

import array
import struct
import sys

from ...errors import TableError
from .super import (COMPAT_HAS_JOURNAL, EXT2_ERROR_FS, EXT2_VALID_FS,
                    EXT4_BG_BLOCK_UNINIT, EXT4_SUPER_MAGIC,
                    INCOMPAT_64BIT, INCOMPAT_MMP, READ_BATCH, SUPERBLOCK,
                    SUPERBLOCK_OFFSET, Geometry, field_offset)
from ...structs import Struct, read_exact
from ..usedmap import (LazyRuns, MapError, UsedMap, bitmap_runs, coalesce,
                       merge_runs, merged, scaled, survey)

INODE = Struct("ext4 inode", [
    ("H", "i_mode"), ("H", "i_uid"), ("I", "i_size_lo"), ("I", "i_atime"),
    ("I", "i_ctime"), ("I", "i_mtime"), ("I", "i_dtime"), ("H", "i_gid"),
    ("H", "i_links_count"), ("I", "i_blocks_lo"), ("I", "i_flags"),
    ("I", "l_i_version"), ("60s", "i_block"), ("I", "i_generation"),
    ("I", "i_file_acl_lo"), ("I", "i_size_high"), ("I", "i_obso_faddr"),
    ("12s", "osd2"),
], size=128)
EXTENT_HEADER = Struct("ext4 extent header", [
    ("H", "eh_magic"), ("H", "eh_entries"), ("H", "eh_max"),
    ("H", "eh_depth"), ("I", "eh_generation"),
], size=12)
EXTENT = Struct("ext4 extent", [
    ("I", "ee_block"), ("H", "ee_len"), ("H", "ee_start_hi"),
    ("I", "ee_start_lo"),
], size=12)
EXTENT_IDX = Struct("ext4 extent index", [
    ("I", "ei_block"), ("I", "ei_leaf_lo"), ("H", "ei_leaf_hi"),
    ("H", "ei_unused"),
], size=12)
EXT4_EXT_MAGIC = 0xF30A
EXT_INIT_MAX_LEN = 1 << 15
EXT4_EXTENTS_FL = 0x80000
EXT4_INLINE_DATA_FL = 0x10000000


def open_volume(read, size):
    """The UsedMap of the ext2/3/4 volume read by read(offset, length) in a
    partition of `size` bytes; None when there is no ext superblock."""
    raw = read(SUPERBLOCK_OFFSET, SUPERBLOCK.size)
    if len(raw) < 0x3A or struct.unpack_from("<H", raw, 0x38)[0] \
            != EXT4_SUPER_MAGIC:
        return None
    try:
        sb = SUPERBLOCK.unpack(raw, at=SUPERBLOCK_OFFSET)
        return _Volume(read, size, sb).used_map()
    except TableError as err:
        raise MapError(str(err)) from None


class _Volume(Geometry):
    """The used-block map of an ext volume and the walk of its journal."""

    def used_map(self):
        descs = self.descriptors()
        # Block 0 up to the end of the superblock, descriptors, MMP block,
        # every group's superblock backup, descriptors, bitmaps and inode
        # table: O(groups) runs, kept; the bitmaps' runs are streamed.
        meta = [(0, self.sb_block + 1)]
        meta += [(self.desc_block(i), 1) for i in range(self.gdb)]
        if self.sb.s_feature_incompat & INCOMPAT_MMP:
            self.in_fs(self.sb.s_mmp_block, 1, "MMP block",
                       field_offset("s_mmp_block"))
            meta.append((self.sb.s_mmp_block, 1))
        owner, self.on_disk = {}, []
        for group, (bb, ib, it, _, flags) in enumerate(descs):
            meta += self.base_meta(group)
            meta += [(bb, 1), (ib, 1), (it, self.itb)]
            if owner.setdefault(bb, group) != group:
                raise MapError(f"groups {owner[bb]} and {group} share the "
                               f"block bitmap at block {bb}")
            if not (self.csum and flags & EXT4_BG_BLOCK_UNINIT):
                self.on_disk.append((group, bb))
        self.meta = list(coalesce(sorted(meta)))
        journal, at = self._journal(descs)
        # The first pass counts and checks, keeping nothing.
        used, missing = survey(self.block_runs(), [
            (block, length, at) for block, length in journal])
        self._check_free(used - self.first, descs)
        if missing:
            block, length, at = missing
            raise MapError(f"journal inode {self.sb.s_journal_inum} holds "
                           f"blocks {block}-{block + length - 1} that the "
                           f"block bitmaps mark free (inode at byte offset "
                           f"{at})")
        total = self.count * self.bs
        return UsedMap(self.kind(), self.bs * self.ratio, total,
                       min(used * self.bs, total),
                       LazyRuns(lambda: scaled(self.block_runs(), self.bs,
                                               total)),
                       label=self.sb.s_volume_name.split(b"\0")[0].decode(
                           "utf-8", "replace"),
                       uuid=self.uuid(), warnings=self.warnings)

    def block_runs(self):
        """Used (block, count) runs, ascending, coalesced, within the
        filesystem's blocks (clusters whole with bigalloc): the metadata
        runs merged with the bitmaps' runs, read group by group."""
        runs = merged(iter(self.meta), self._bitmap_runs())
        if self.ratio > 1:
            r = self.ratio
            runs = coalesce((b // r * r, -(-(b + n) // r) * r - b // r * r)
                            for b, n in runs)
        for block, count in runs:
            if block >= self.count:
                return
            yield block, min(count, self.count - block)

    def _bitmap_runs(self):
        """(block, count) runs of the set bits of the on-disk bitmaps, in
        group order; consecutive bitmap blocks are read together."""
        most, i = max(1, READ_BATCH // self.bs), 0
        while i < len(self.on_disk):
            j = i + 1
            while j < len(self.on_disk) and j - i < most and \
                    self.on_disk[j][1] == self.on_disk[j - 1][1] + 1:
                j += 1
            first = self.on_disk[i][1]
            data = read_exact(self.read, first * self.bs, (j - i) * self.bs,
                              "block bitmap")
            for k in range(j - i):
                group = self.on_disk[i + k][0]
                bitmap = data[k * self.bs:(k + 1) * self.bs]
                nbits = self.group_clusters(group)
                start = self.group_first(group)
                # Only the part between the first and last non-zero bytes.
                body = bitmap[:-(-nbits // 8)].rstrip(b"\0")
                skip = len(body) - len(body.lstrip(b"\0"))
                for c, n in bitmap_runs(body[skip:], min(
                        nbits, 8 * len(body)) - 8 * skip, 8 * skip):
                    yield start + c * self.ratio, n * self.ratio
            i = j

    def _check_free(self, used, descs):
        """`used`: blocks in use from s_first_data_block on."""
        total = sum(self.group_clusters(g) for g in range(self.groups))
        free = total - -(-used // self.ratio)
        counted = sum(d[3] for d in descs)
        sb = self.sb
        hi = sb.s_free_blocks_count_hi \
            if sb.s_feature_incompat & INCOMPAT_64BIT else 0
        in_sb = (sb.s_free_blocks_count_lo | hi << 32) // self.ratio
        slack = 256 + total // 64
        if abs(free - counted) > slack and abs(free - in_sb) > slack:
            raise MapError(f"the block bitmaps leave {free} clusters free, "
                           f"the group descriptors {counted} and the "
                           f"superblock {in_sb} (byte offset "
                           f"{field_offset('s_free_blocks_count_lo')})")
        if free != counted:
            self.warnings.append(f"the block bitmaps leave {free} clusters "
                                 f"free, the group descriptors count "
                                 f"{counted}")
        if not sb.s_state & EXT2_VALID_FS:
            self.warnings.append("not cleanly unmounted")
        if sb.s_state & EXT2_ERROR_FS:
            self.warnings.append("the kernel found errors on it")

    def _journal(self, descs):
        """The internal journal's (block, count) runs, sorted, and the byte
        offset of its inode; none without a journal."""
        sb = self.sb
        if not sb.s_feature_compat & COMPAT_HAS_JOURNAL or \
                not sb.s_journal_inum:
            return [], None
        ino = sb.s_journal_inum
        group, index = divmod(ino - 1, sb.s_inodes_per_group)
        if group >= self.groups:
            raise MapError(f"journal inode {ino} does not exist (byte offset "
                           f"{field_offset('s_journal_inum')})")
        at = descs[group][2] * self.bs + index * self.isz
        inode = INODE.read(self.read, at)
        if inode.i_flags & EXT4_INLINE_DATA_FL:
            return [], at
        what = f"journal inode {ino}"
        # Blocks the walk may read: a looping or bloated map is an error.
        self.budget = 2 * ((inode.i_size_lo | inode.i_size_high << 32)
                           // self.bs) + 64
        if inode.i_flags & EXT4_EXTENTS_FL:
            journal = list(self._extents(inode.i_block, at + 0x28, what, 5))
        else:
            journal = self._indirect(inode.i_block, at + 0x28, what)
        return sorted(journal), at

    def _spend(self, count, what):
        self.budget -= count
        if self.budget < 0:
            raise MapError(f"{what} maps more blocks than its size holds")

    def _extents(self, node, at, what, depth):
        head = EXTENT_HEADER.unpack(node, at=at)
        if head.eh_magic != EXT4_EXT_MAGIC or \
                12 + 12 * head.eh_entries > len(node) or depth < 0:
            raise MapError(f"{what}: bad extent node at byte offset {at}")
        for k in range(head.eh_entries):
            pos = 12 + 12 * k
            if head.eh_depth == 0:
                e = EXTENT.unpack(node, pos, at=at + pos)
                length = e.ee_len if e.ee_len <= EXT_INIT_MAX_LEN \
                    else e.ee_len - EXT_INIT_MAX_LEN
                start = e.ee_start_lo | e.ee_start_hi << 32
                self.in_fs(start, length, f"{what}'s extent", at + pos)
                self._spend(length, what)
                yield start, length
            else:
                idx = EXTENT_IDX.unpack(node, pos, at=at + pos)
                leaf = idx.ei_leaf_lo | idx.ei_leaf_hi << 32
                self.in_fs(leaf, 1, f"{what}'s extent index", at + pos)
                yield leaf, 1
                self._spend(1, what)
                child = read_exact(self.read, leaf * self.bs, self.bs, what)
                yield from self._extents(child, leaf * self.bs, what,
                                         depth - 1)

    def _indirect(self, i_block, at, what):
        """Block runs of a block-mapped inode: 12 direct pointers, then
        single, double and triple indirect blocks."""
        pointers = struct.unpack("<15I", i_block)
        blocks = [b for b in pointers[:12] if b]
        level = [(b, depth) for depth, b in enumerate(pointers[12:], 1) if b]
        while level:
            deeper = []
            for block, depth in level:
                self.in_fs(block, 1, f"{what}'s indirect block", at)
                self._spend(1, what)
                blocks.append(block)
                entries = array.array("I", read_exact(
                    self.read, block * self.bs, self.bs, what))
                if sys.byteorder == "big":
                    entries.byteswap()
                if depth == 1:
                    data = [b for b in entries if b]
                    self._spend(len(data), what)
                    blocks += data
                else:
                    deeper += [(b, depth - 1) for b in entries if b]
            level = deeper
        if blocks:
            self.in_fs(min(blocks), max(blocks) - min(blocks) + 1,
                       f"{what}'s blocks", at)
        return merge_runs((b, 1) for b in blocks)
