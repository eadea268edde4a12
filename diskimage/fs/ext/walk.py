"""The blocks that an ext volume's inodes say they hold: the journal's
(for used.py), and every in-use inode's (data, extent tree and indirect
blocks, the extended-attribute block), each checked to be marked used in
the block bitmaps.  A used data block marked free is damage that no
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
from .csum import crc32c
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


TABLE_BATCH = 64 << 10       # inode table bytes read at a time
BITMAPS_KEPT = 32            # block bitmaps kept for the inode walk


class Walk:
    """Inode walks over a Geometry (read, bs, isz, sb, csum, in_fs, and
    used.py's on_disk and uninit_meta).  Memory is bounded: inodes are
    read in batches, their runs checked as they come against a few cached
    block bitmaps, nothing is collected."""

    def check_inodes(self, descs, skip=()):
        """MapError naming the first in-use inode (other than `skip`) that
        holds a block its group's block bitmap marks free, or the first
        inode bitmap whose checksum does not match (self.seed: the
        metadata_csum seed, None without)."""
        sb, bs, isz = self.sb, self.bs, self.isz
        ipg, self._bitmaps = sb.s_inodes_per_group, {}
        self._where, self._uninit = dict(self.on_disk), {}
        for b, n in self.uninit_meta:
            self._uninit.setdefault((b - self.first) // self.bpg,
                                    []).append((b, n))
        for group, d in enumerate(descs):
            if self.csum and d.flags & EXT4_BG_INODE_UNINIT:
                continue
            limit = ipg - d.unused if self.csum else ipg
            if limit <= 0:
                continue
            bitmap = read_exact(self.read, d.ib * bs, bs, "inode bitmap")
            if self.seed is not None:
                want = crc32c(self.seed, bitmap[:ipg // 8])
                want &= 0xFFFFFFFF if self.dsz >= 0x3C else 0xFFFF
                if want != d.icsum:
                    raise MapError(f"group {group}'s inode bitmap checksum "
                                   f"{d.icsum:#x} is not {want:#x} "
                                   f"(descriptor at byte offset {d.at}): "
                                   f"the inodes in use are not known")
            for start, count in bitmap_runs(bitmap, limit):
                index = start
                while index < start + count:
                    n = min(start + count - index, max(1, TABLE_BATCH // isz))
                    base = d.it * bs + index * isz
                    table = read_exact(self.read, base, n * isz,
                                       "inode table")
                    for k in range(n):
                        ino = group * ipg + index + k + 1
                        if ino not in skip:
                            self._check_inode(ino, INODE.unpack(
                                table, k * isz, at=base + k * isz),
                                base + k * isz)
                    index += n

    def _check_inode(self, ino, inode, at):
        for block, count in self._inode_blocks(ino, inode, at):
            free = self._first_free(block, count)
            if free is not None:
                raise MapError(f"inode {ino} holds blocks {block}-"
                               f"{block + count - 1} that the block bitmaps "
                               f"mark free (block {free}; inode at byte "
                               f"offset {at})")

    def _first_free(self, block, count):
        """The first block of [block, block+count) whose cluster the block
        bitmaps mark free, or None."""
        r, end = self.ratio, block + count
        while block < end:
            group = (block - self.first) // self.bpg
            start = self.group_first(group)
            stop = min(end, start + self.bpg)
            bits = self._group_bitmap(group)
            c0, c1 = (block - start) // r, -(-(stop - start) // r)
            chunk = int.from_bytes(bits[c0 // 8:(c1 + 7) // 8], "little")
            chunk >>= c0 % 8
            want = (1 << (c1 - c0)) - 1
            if chunk & want != want:
                missing = (~chunk & want & -(~chunk & want)).bit_length() - 1
                return start + (c0 + missing) * r
            block = stop
        return None

    def _group_bitmap(self, group):
        """A group's block bitmap: from disk, or for a BLOCK_UNINIT group
        computed from the metadata in it; the last few used kept."""
        bits = self._bitmaps.pop(group, None)
        if bits is None:
            if group in self._where:
                bits = read_exact(self.read, self._where[group] * self.bs,
                                  self.bs, "block bitmap")
            else:
                start, r, made = self.group_first(group), self.ratio, 0
                for b, n in self._uninit.get(group, ()):
                    c0, c1 = (b - start) // r, -(-(b + n - start) // r)
                    made |= ((1 << (c1 - c0)) - 1) << c0
                bits = made.to_bytes(self.bs, "little")
            if len(self._bitmaps) >= BITMAPS_KEPT:
                del self._bitmaps[next(iter(self._bitmaps))]
        self._bitmaps[group] = bits         # the most recent last
        return bits

    def _inode_blocks(self, ino, inode, at):
        """(block, count) runs of an inode's blocks, streamed (none for
        an inode not in use or that holds no blocks)."""
        sb = self.sb
        reserved = ino < (sb.s_first_ino if sb.s_rev_level else 11)
        if not inode.i_links_count and not reserved:
            return
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
        if acl:
            self.in_fs(acl, 1, f"{what}'s extended attribute block", at)
            yield acl, 1
            blocks -= self.ratio
        kind = inode.i_mode & S_IFMT
        if reserved and blocks <= 0 or not reserved and kind not in (
                S_IFREG, S_IFDIR, S_IFLNK) or \
                inode.i_flags & EXT4_INLINE_DATA_FL or \
                kind == S_IFLNK and blocks <= 0 and \
                not inode.i_flags & EXT4_EXTENTS_FL:
            return
        self.budget = 2 * max(blocks, 0) + 64
        if inode.i_flags & EXT4_EXTENTS_FL:
            yield from self._extents(inode.i_block, at + 0x28, what, 5)
        else:
            yield from self._indirect(inode.i_block, at + 0x28, what)

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
        """Block runs of a block-mapped inode, streamed: 12 direct
        pointers, then single, double and triple indirect blocks (each
        pointer block's runs coalesced)."""
        pointers = struct.unpack("<15I", i_block)
        yield from self._pointer_runs([b for b in pointers[:12] if b], at,
                                      what)
        level = [(b, depth) for depth, b in enumerate(pointers[12:], 1) if b]
        while level:
            deeper = []
            for block, depth in level:
                self.in_fs(block, 1, f"{what}'s indirect block", at)
                self._spend(1, what)
                yield block, 1
                entries = array.array("I", read_exact(
                    self.read, block * self.bs, self.bs, what))
                if sys.byteorder == "big":
                    entries.byteswap()
                if depth == 1:
                    data = [b for b in entries if b]
                    self._spend(len(data), what)
                    yield from self._pointer_runs(data, block * self.bs,
                                                  what)
                else:
                    deeper += [(b, depth - 1) for b in entries if b]
            level = deeper

    def _pointer_runs(self, blocks, at, what):
        for block, count in merge_runs((b, 1) for b in blocks):
            self.in_fs(block, count, f"{what}'s blocks", at)
            yield block, count
