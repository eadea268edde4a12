"""A whole FAT in memory and every chain on it, for the shrink (shrink.py).

:func:`read_table` decodes the active FAT copies (they must agree) into one
array of entry values; :func:`encode` turns entries back into the bytes of
one FAT.  :func:`walk` follows the directory tree from the root (the
FAT12/16 root region or the FAT32 root cluster chain): every live entry's
first cluster and its chain, "." and ".." of each subdirectory, so that
the shrink knows each place that names a cluster it moves.  Anything a
careful shrink cannot explain (a chain that leaves the volume, runs into a
free or bad cluster, meets another chain or itself, used clusters on no
chain) raises FatShrinkError, a MapError: nothing is written then.
"""

import sys
from array import array

from ..usedmap import MapError
from .bpb import ATTR_DIRECTORY, ATTR_LONG_NAME, ATTR_VOLUME_ID, DIR_ENTRY

EOC_MIN = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}
BAD = {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}
MASK = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}
DOT, DOTDOT = b".          ", b"..         "
LONG_NAME_MASK = 0x3F           # fatgen103: the long-name test


class FatShrinkError(MapError):
    """The volume cannot be shrunk (too small a target, a type's cluster
    range, a FAT or directory tree that cannot be trusted): the message
    says why, and nothing was written."""


def _decode(raw, bits, count):
    if bits == 12:
        raw = raw + b"\0\0"
        out = array("H", bytes(2 * count))
        for i in range(count):
            pos = i + (i >> 1)
            value = raw[pos] | raw[pos + 1] << 8
            out[i] = value >> 4 if i & 1 else value & 0xFFF
        return out
    out = array("I" if bits == 32 else "H")
    out.frombytes(raw[:count * bits // 8])
    if sys.byteorder == "big":
        out.byteswap()
    return out


def encode(entries, bits, length):
    """The bytes of one FAT of *length* bytes holding *entries*, the rest
    zeros (free)."""
    if bits == 12:
        raw = bytearray(length)
        for i, value in enumerate(entries):
            pos = i + (i >> 1)
            if i & 1:
                raw[pos] = raw[pos] & 0x0F | (value & 0x0F) << 4
                raw[pos + 1] = value >> 4 & 0xFF
            else:
                raw[pos] = value & 0xFF
                raw[pos + 1] = raw[pos + 1] & 0xF0 | value >> 8 & 0x0F
        return bytes(raw)
    table = array(entries.typecode, entries)
    if sys.byteorder == "big":
        table.byteswap()
    return table.tobytes().ljust(length, b"\0")


def read_table(volume, pread):
    """The entries 0 .. clusters+1 of the FAT, as an array; FatShrinkError
    when the active copies differ."""
    count = volume.clusters + 2
    length = min(volume.fat_bytes, (count * volume.bits + 7) // 8)
    tables = [_decode(pread(length, volume.fat_offset(number)), volume.bits,
                      count) for number in volume.active]
    for number, table in zip(volume.active[1:], tables[1:]):
        if table != tables[0]:
            raise FatShrinkError(f"FAT copy {number} differs from copy "
                                 f"{volume.active[0]}: which one is right "
                                 f"is not known")
    return tables[0]


def is_used(value, bits):
    value &= MASK[bits]
    return value != 0 and value != BAD[bits]


class Walk:
    """The chains of the volume, followed from the root with the FAT
    *table*; *moved* maps each cluster that moves to its new number.

    After :meth:`run`: ``patches`` lists (cluster or None, byte offset,
    new first cluster) of each directory entry to rewrite (None: offset in
    the FAT12/16 root region, else the offset inside that directory
    cluster, numbered as before the move), ``links`` lists (cluster, new
    next cluster) of each FAT entry that points at a moved cluster, and
    ``seen`` counts the clusters on chains."""

    def __init__(self, volume, table, moved, pread):
        self.volume, self.table, self.moved = volume, table, moved
        self.pread = pread
        self.bits = volume.bits
        self.end = volume.clusters + 2
        self.on_chain = bytearray(self.end)
        self.patches, self.links, self.seen = [], [], 0

    def chain(self, first, what, keep):
        """Follow the chain from *first*: its clusters when *keep*."""
        mask, eoc, end = MASK[self.bits], EOC_MIN[self.bits], self.end
        table, moved, on_chain = self.table, self.moved, self.on_chain
        clusters, cluster = [], first
        while True:
            if not 2 <= cluster < end:
                raise FatShrinkError(f"{what}: cluster {cluster} is outside "
                                     f"clusters 2..{end - 1}")
            if on_chain[cluster]:
                raise FatShrinkError(f"{what}: cluster {cluster} is on two "
                                     f"chains or twice on one (cross-linked "
                                     f"or a loop)")
            on_chain[cluster] = 1
            self.seen += 1
            if keep:
                clusters.append(cluster)
            following = table[cluster] & mask
            if following >= eoc:
                return clusters
            if following < 2 or following == BAD[self.bits] or \
                    following >= end:
                raise FatShrinkError(
                    f"{what}: cluster {cluster} leads to "
                    f"0x{following:X}, not a cluster or an end of chain")
            if following in moved:
                self.links.append((cluster, moved[following]))
            cluster = following

    def run(self):
        volume = self.volume
        if self.bits == 32:
            root = volume.bpb.BPB_RootClus
            places = [(c, self._cluster(c)) for c in
                      self.chain(root, "root directory", True)]
        else:
            start, length = volume.root
            places = [(None, self.pread(length, start))]
        pending = [("/", places)]
        while pending:
            path, places = pending.pop()
            for child, clusters in self._entries(path, places):
                pending.append((child, [(c, self._cluster(c))
                                        for c in clusters]))
        return self

    def _cluster(self, cluster):
        volume = self.volume
        return self.pread(volume.cluster, volume.data_start + (cluster - 2)
                          * volume.cluster)

    def _entries(self, path, places):
        """Patch what this directory names; the subdirectories to read."""
        subdirs = []
        for cluster, data in places:
            for offset in range(0, len(data) - 31, 32):
                entry = DIR_ENTRY.unpack(data, offset)
                name = entry.DIR_Name
                if name[0] == 0:
                    return subdirs
                attr = entry.DIR_Attr
                if name[0] == 0xE5 or attr & LONG_NAME_MASK == ATTR_LONG_NAME \
                        or attr & (ATTR_VOLUME_ID | ATTR_DIRECTORY) \
                        == ATTR_VOLUME_ID:
                    continue
                first = entry.DIR_FstClusLO
                if self.bits == 32:
                    first |= entry.DIR_FstClusHI << 16
                if first in self.moved:
                    self.patches.append((cluster, offset, self.moved[first]))
                if name in (DOT, DOTDOT):
                    continue
                shown = name.decode("cp850", "replace").rstrip()
                what = f"{path}{shown}"
                directory = attr & ATTR_DIRECTORY
                if first == 0:
                    if directory:
                        raise FatShrinkError(f"{what}: a directory with no "
                                             f"cluster")
                    continue
                clusters = self.chain(first, what, directory)
                if directory:
                    subdirs.append((what + "/", clusters))
        return subdirs
