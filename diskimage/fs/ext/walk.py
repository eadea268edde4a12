"""The blocks that an ext volume's inodes say they hold: the journal's,
and every in-use inode's (data, extent tree and indirect blocks, the
extended-attribute block), so that used.py can check each is marked used
in the block bitmaps.  A used data block marked free is damage that no
count shows: debugfs `freeb` and a matching `set_bg` leave every count
right, and a map from the bitmaps alone would drop the block.

In use: an inode whose bit is set in its group's inode bitmap, within the
part of the table in use (bg_itable_unused, with uninit_bg or
metadata_csum; none in an INODE_UNINIT group), with a link count, and each
reserved inode (below s_first_ino) that holds blocks.  Devices, FIFOs,
sockets, fast symlinks and inline data hold no blocks.  Only the inode
table blocks holding in-use inodes are read, ascending, in one read per
group.  Field names follow the kernel's fs/ext4/ext4.h.
"""

import array
import struct
import sys

from ...structs import Struct, read_exact
from ..usedmap import MapError, bitmap_runs, merge_runs
from .super import EXT4_BG_INODE_UNINIT, INCOMPAT_64BIT

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


S_IFMT, S_IFREG, S_IFDIR, S_IFLNK = 0xF000, 0x8000, 0x4000, 0xA000
RO_COMPAT_HUGE_FILE = 0x8
EXT4_HUGE_FILE_FL = 0x40000


class Walk:
    """Inode walks over a Geometry (read, bs, isz, sb, csum, in_fs)."""

    def file_blocks(self, descs, skip=()):
        """(block, count, inode number) of every block that in-use inodes
        other than `skip` hold, in inode order."""
        sb, bs, isz = self.sb, self.bs, self.isz
        ipg, found = sb.s_inodes_per_group, []
        for group, d in enumerate(descs):
            if self.csum and d.flags & EXT4_BG_INODE_UNINIT:
                continue
            limit = ipg - d.unused if self.csum else ipg
            if limit <= 0:
                continue
            bitmap = read_exact(self.read, d.ib * bs, bs, "inode bitmap")
            runs = list(bitmap_runs(bitmap, limit))
            if not runs:
                continue
            lo, hi = runs[0][0], runs[-1][0] + runs[-1][1]
            first_block = lo * isz // bs
            base = d.it * bs + first_block * bs
            table = read_exact(self.read, base, -(-hi * isz // bs) * bs -
                               first_block * bs, "inode table")
            for start, count in runs:
                for index in range(start, start + count):
                    ino = group * ipg + index + 1
                    if ino in skip:
                        continue
                    pos = index * isz - first_block * bs
                    found += self._inode_blocks(
                        ino, INODE.unpack(table, pos, at=base + pos),
                        base + pos)
        return found

    def _inode_blocks(self, ino, inode, at):
        sb = self.sb
        reserved = ino < (sb.s_first_ino if sb.s_rev_level else 11)
        if not inode.i_links_count and not reserved:
            return []
        osd2 = struct.unpack("<6H", inode.osd2)
        acl = inode.i_file_acl_lo
        if sb.s_feature_incompat & INCOMPAT_64BIT:
            acl |= osd2[1] << 32
        blocks = inode.i_blocks_lo
        if sb.s_feature_ro_compat & RO_COMPAT_HUGE_FILE:
            blocks |= osd2[0] << 32
        if not inode.i_flags & EXT4_HUGE_FILE_FL:
            blocks = blocks * 512 // self.bs
        what = f"inode {ino}"
        out = []
        if acl:
            self.in_fs(acl, 1, f"{what}'s extended attribute block", at)
            out.append((acl, 1, ino))
            blocks -= self.ratio
        kind = inode.i_mode & S_IFMT
        if reserved and blocks <= 0 or not reserved and kind not in (
                S_IFREG, S_IFDIR, S_IFLNK) or \
                inode.i_flags & EXT4_INLINE_DATA_FL or \
                kind == S_IFLNK and blocks <= 0 and \
                not inode.i_flags & EXT4_EXTENTS_FL:
            return out
        self.budget = 2 * max(blocks, 0) + 64
        if inode.i_flags & EXT4_EXTENTS_FL:
            runs = self._extents(inode.i_block, at + 0x28, what, 5)
        else:
            runs = self._indirect(inode.i_block, at + 0x28, what)
        out += [(block, count, ino) for block, count in runs]
        return out

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
