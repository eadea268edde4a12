"""The block map of an ext file (direct and indirect blocks, or an ext4
extent tree) as imgx reads it over dissect.extfs, bounded by what the
volume holds.

dissect's INode.dataruns() lists one block number per block of the file's
size, holes included, before the first read; an indirect block of zeros
below the first level was read from block 0; and nothing stops a map
that names one indirect block many times.  :func:`runs` walks the map the
way the kernel's ext2_get_block() does: a zero pointer at any level is a
hole of everything below it (one run, whatever its length), and every
other pointer is checked: a block past the volume, or one the map names
twice, is damage (BlockMapDamage, a MapError: "damaged filesystem" in
imgx).  So the work is bounded by the blocks the volume holds, not by
the size the inode claims.  dissect's extent walk had no check of the
tree: a node naming one child block many times was walked once per name
(entries to the power of the depth) and uninitialized extents lost their
place in the file; :func:`extent_runs` checks the tree as the kernel does.
The result is set as dissect's runlist.

Layout (fs/ext2/inode.c): i_block holds 15 little-endian 32-bit block
numbers, 12 direct, then one single-, one double- and one
triple-indirect; an indirect block holds block_size / 4 of them.
"""

import array
import struct
import sys

from ..usedmap import MapError
from .dirents import volume_bytes

EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL = 0x80000, 0x10000000
NDIR = 12
EXTENT_HEADER = struct.Struct("<HHHHI")   # magic, entries, max, depth, gen
EXTENT = struct.Struct("<IHHI")    # ee_block, ee_len, ee_start_hi, _lo
EXTENT_IDX = struct.Struct("<IIHH")   # ei_block, ei_leaf_lo, _hi, unused
EXTENT_MAGIC = 0xF30A
EXT_INIT_MAX_LEN = 0x8000
#: ext4_ext_check(): no tree is deeper (EXT4_MAX_EXTENT_DEPTH).
EXT4_MAX_EXTENT_DEPTH = 5


class BlockMapDamage(MapError):
    """A block map naming a block past the volume, or a block twice."""


def _blocks(raw):
    values = array.array("I", raw)
    if sys.byteorder == "big":
        values.byteswap()
    return values


class _Map:
    def __init__(self, inode):
        extfs = inode.extfs
        self.inode = inode
        self.fh = extfs.fh
        self.block_size = extfs.block_size
        self.per = self.block_size // 4
        self.limit = volume_bytes(extfs) // self.block_size
        self.seen = set()
        self.runs = []

    def add(self, block, count):
        runs = self.runs
        if runs:
            start, length = runs[-1]
            if (block is None and start is None) or \
                    (block is not None and start is not None and
                     start + length == block):
                runs[-1] = (start, length + count)
                return
        runs.append((block, count))

    def claim(self, block, what):
        if block >= self.limit:
            raise BlockMapDamage(
                f"inode {self.inode.inum}: its block map names {what} "
                f"block {block}, past the end of the volume ({self.limit} "
                f"blocks)")
        if block in self.seen:
            raise BlockMapDamage(
                f"inode {self.inode.inum}: its block map names block "
                f"{block} twice")
        self.seen.add(block)

    def data(self, block):
        if block:
            self.claim(block, "data")
            self.add(block, 1)
        else:
            self.add(None, 1)

    def walk(self, pointer, level, count):
        """Map `count` blocks (at most what `pointer` at `level` covers)."""
        if not pointer:
            self.add(None, count)
            return
        self.claim(pointer, "indirect")
        self.fh.seek(pointer * self.block_size)
        raw = self.fh.read(self.block_size)
        entries = _blocks(raw.ljust(self.block_size, b"\0"))
        if level == 1:
            for block in entries[:count]:
                self.data(block)
            return
        span = self.per ** (level - 1)
        for block in entries:
            if count <= 0:
                return
            self.walk(block, level - 1, min(span, count))
            count -= span


def runs(inode):
    """[(block or None for a hole, count)] of the dissect INode `inode`
    mapped by direct and indirect blocks."""
    m = _Map(inode)
    count = -(-inode.size // m.block_size)
    pointers = _blocks(bytes(inode.inode.i_block)[:60])
    for block in pointers[:min(count, NDIR)]:
        m.data(block)
    count -= NDIR
    for level in (1, 2, 3):
        if count <= 0:
            break
        span = m.per ** level
        m.walk(pointers[NDIR + level - 1], level, min(span, count))
        count -= span
    return m.runs


def extent_runs(inode):
    """[(block or None, count)] of the dissect INode `inode` mapped by an
    extent tree, checked as ext4_ext_check() and ext4_valid_extent() do:
    the magic, entries within their node, each level one below its parent
    (at most 5), extents rising and not empty, tree blocks inside the
    volume and none twice; else BlockMapDamage.  Data past the end of the
    volume is left to the read (diskimage.fs.damage.Checked says how much
    of the file there is)."""
    m = _Map(inode)
    state = {"at": 0}

    def damage(text):
        raise BlockMapDamage(f"inode {inode.inum}: its extent tree {text}")

    def node(raw, depth, where):
        magic, entries, _, level, _ = EXTENT_HEADER.unpack_from(raw)
        room = (len(raw) - EXTENT_HEADER.size) // EXTENT.size
        if magic != EXTENT_MAGIC:
            damage(f"node {where} has no extent magic")
        if entries > room or (depth is not None and level != depth) or \
                level > EXT4_MAX_EXTENT_DEPTH:
            damage(f"node {where} is level {level} with {entries} entries "
                   f"(room for {room})")
        for i in range(entries):
            at = EXTENT_HEADER.size + i * EXTENT.size
            if level:
                _, lo, hi, _ = EXTENT_IDX.unpack_from(raw, at)
                child = (hi << 32) | lo
                m.claim(child, "extent tree")
                m.fh.seek(child * m.block_size)
                block = m.fh.read(m.block_size).ljust(m.block_size, b"\0")
                node(block, level - 1, f"at block {child}")
                continue
            logical, length, hi, lo = EXTENT.unpack_from(raw, at)
            zeros = length > EXT_INIT_MAX_LEN
            length -= EXT_INIT_MAX_LEN if zeros else 0
            start = (hi << 32) | lo
            if not length:
                damage(f"has an empty extent at file block {logical}")
            if logical < state["at"]:
                damage(f"has extents out of order at file block {logical}")
            if logical > state["at"]:
                m.add(None, logical - state["at"])
            m.add(None if zeros else start, length)
            state["at"] = logical + length

    node(bytes(inode.inode.i_block)[:60], None, "in the inode")
    count = -(-inode.size // m.block_size)
    if state["at"] < count:
        m.add(None, count - state["at"])
    return m.runs


def prepare(inode):
    """Set the runlist dissect reads `inode` (a file or directory) by;
    inline data is left to diskimage.fs.ext.inline."""
    flags = inode.inode.i_flags
    if flags & EXT4_INLINE_DATA_FL or inode._runlist:
        return
    inode._runlist = extent_runs(inode) if flags & EXT4_EXTENTS_FL else \
        runs(inode)
