"""A FAT's cluster chains checked before its map is trusted: no entry may
point into a free cluster.  A chain that runs into a free cluster means
the FAT lost an entry (a crash while a file grew, a bad write): the map
would leave that cluster out, while the original still holds whatever the
chain's owner wrote there.  `fsck.fat -n` reports it as "Contains a free
cluster (N). Assuming EOF." and exits 1.

The check is one pass at C speed over the first active FAT (the copy
fsck.fat and the kernels use): each entry's value, clamped to the entry
count, looks up its target's entry through ``map``; a target entry of zero
is a chain into free space.  Entries 0 and 1, end-of-chain and bad-cluster
marks look up a non-zero sentinel.  Field names follow fatgen103.
"""

import array
import sys
from itertools import repeat

from ..usedmap import MapError, read_exact
from .bpb import ATTR_LONG_NAME, ATTR_VOLUME_ID, DIR_ENTRY

_MASK = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}
CHUNK = 1 << 20             # entries looked up at a time


def entries(volume):
    """Every FAT entry of the first active FAT, entries 0 and 1 included,
    as an array of the entry values (FAT32's top four bits cleared)."""
    count = volume.clusters + 2
    offset = volume.fat_offset(volume.active[0])
    raw = read_exact(volume.read, offset, (count * volume.bits + 7) // 8,
                     "FAT")
    if volume.bits == 12:
        return _fat12(raw, count)
    table = array.array("H" if volume.bits == 16 else "I")
    table.frombytes(raw[:count * (volume.bits // 8)])
    if sys.byteorder == "big":
        table.byteswap()
    if volume.bits == 32 and max(table) > _MASK[32]:
        table = array.array(table.typecode,
                            map(int.__and__, table, repeat(_MASK[32])))
    return table


def _fat12(raw, count):
    """FAT12 packs two entries in three bytes (at most 4086 entries: a
    Python loop is cheap)."""
    padded = raw + b"\0\0"
    out = array.array("I")
    for k in range(count):
        pair = padded[k * 3 // 2] | padded[k * 3 // 2 + 1] << 8
        out.append(pair >> 4 if k & 1 else pair & 0xFFF)
    return out


def check_chains(volume):
    """MapError naming the first cluster whose FAT entry points at a free
    cluster, or the first root directory entry whose start cluster is
    free."""
    table = entries(volume)
    _check_root(volume, table)
    count = len(table)
    # The table becomes its own lookup: entries 0 and 1 (not clusters) and
    # every value >= count (end of chain, bad, reserved) find a non-zero.
    table[0] = table[1] = 1
    table.append(1)
    for first in range(0, count, CHUNK):
        nexts = array.array(table.typecode, map(
            table.__getitem__, map(min, table[first:min(first + CHUNK,
                                                         count)],
                                   repeat(count))))
        if nexts.count(0):
            cluster = first + nexts.index(0)
            at = volume.fat_offset(volume.active[0]) + \
                cluster * volume.bits // 8
            raise MapError(f"cluster {cluster}'s chain runs into free "
                           f"cluster {table[cluster]} (FAT entry at byte "
                           f"offset {at})")


def _check_root(volume, table):
    """The root directory's entries (as far as volume.root_directory reads)
    start in used clusters: a free start cluster is a file or directory
    the FAT lost, whose data the map would leave out."""
    root = volume.root_directory()
    for pos in range(0, len(root) - 31, 32):
        entry = DIR_ENTRY.unpack(root, pos)
        if entry.DIR_Name[0] == 0:
            return
        if entry.DIR_Name[0] == 0xE5 or entry.DIR_Attr == ATTR_LONG_NAME or \
                entry.DIR_Attr & ATTR_VOLUME_ID:
            continue
        start = entry.DIR_FstClusLO | (entry.DIR_FstClusHI << 16
                                       if volume.bits == 32 else 0)
        if 2 <= start < len(table) and table[start] == 0:
            name = entry.DIR_Name.decode("cp850", "replace").rstrip()
            raise MapError(f"root directory entry {name!r} starts in free "
                           f"cluster {start}")
