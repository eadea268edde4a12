"""The block map of an ext2/3 file (direct and indirect blocks) as imgx
reads it over dissect.extfs, bounded by what the volume holds.

dissect's INode.dataruns() lists one block number per block of the file's
size, holes included, before the first read; an indirect block of zeros
below the first level was read from block 0; and nothing stops a map
that names one indirect block many times.  :func:`runs` walks the map the
way the kernel's ext2_get_block() does: a zero pointer at any level is a
hole of everything below it (one run, whatever its length), and every
other pointer is checked: a block past the volume, or one the map names
twice, is damage (BlockMapDamage, a MapError: "damaged filesystem" in
imgx).  So the work is bounded by the blocks the volume holds, not by
the size the inode claims.  The result is set as dissect's runlist.

Layout (fs/ext2/inode.c): i_block holds 15 little-endian 32-bit block
numbers, 12 direct, then one single-, one double- and one
triple-indirect; an indirect block holds block_size / 4 of them.
"""

import array
import sys

from ..usedmap import MapError
from .dirents import volume_bytes

EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL = 0x80000, 0x10000000
NDIR = 12


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
                f"block {block}, past the volume's {self.limit} blocks")
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


def prepare(inode):
    """Set the runlist dissect reads `inode` by (files and directories
    mapped by indirect blocks; extents and inline data are left to
    dissect)."""
    if inode.inode.i_flags & (EXT4_EXTENTS_FL | EXT4_INLINE_DATA_FL):
        return
    if not inode._runlist:
        inode._runlist = runs(inode)
