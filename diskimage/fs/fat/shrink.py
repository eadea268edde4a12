"""Shrinking a FAT12, FAT16 or FAT32 filesystem in place, before a restore
lays it into a smaller partition (docs/filesystems/fat-shrink.md).

fatresize (libparted) aborts on a partition of a disk file or a loop
device, so the shrink is done here, the reverse of grow.py:

1. the new geometry: the total sectors that fit, the least FAT length
   that holds the clusters left (shortened in steps whose sum over all
   FATs is whole clusters, so the data keeps its alignment), and the type's
   cluster range (FAT12 <= 4084 < FAT16 <= 65524 < FAT32) checked;
2. the whole FAT read (the active copies must agree) and every chain
   followed from the root (chains.Walk): each used cluster must be on
   exactly one chain, or nothing is written;
3. each used cluster at or above the new end is copied into a free cluster
   below it (lowest first), and everything that names it rewritten: the
   FAT entry before it on its chain, the first-cluster fields of its
   directory entry (and of "." and ".." in subdirectories), the FAT32
   root cluster in the boot sector;
4. when the FATs get shorter, the FAT12/16 root directory and the used
   clusters move down by what all FATs gave up, lowest first;
5. each FAT copy is written at its new place with the new entries, zeros
   after them; FSInfo's free count and next-free hint, the backup boot
   sector (FAT32), then the boot sector last.

Not atomic: an interruption leaves a volume whose FATs and boot sector
disagree.  Restore shrinks in a temporary file and writes neither that
partition's start nor the partition table before the shrink has
succeeded, so an interrupted restore leaves a target with no valid table.
"""

import math
import os

from . import fdio
from .bpb import BPB16, BPB32, FSINFO, MAX_FAT12, MAX_FAT16
from .chains import FatShrinkError, MASK, Walk, encode, is_used, read_table
from .grow import COPY, MAX_FAT32
from .used import Volume, fsinfo_signed

__all__ = ["FatShrinkError", "geometry", "least_size", "min_size", "shrink"]
MiB = 1 << 20
#: The fewest and most clusters of each type (Microsoft's rule by count).
RANGE = {12: (1, MAX_FAT12), 16: (MAX_FAT12 + 1, MAX_FAT16),
         32: (MAX_FAT16 + 1, MAX_FAT32)}
BITS = {"fat12": 12, "fat16": 16, "fat32": 32}


def _pread(fd, length, offset):
    return fdio.pread(fd, length, offset, FatShrinkError)


def _need(volume, clusters):
    """The FAT sectors *clusters* clusters (and entries 0 and 1) take."""
    length = ((clusters + 2) * volume.bits + 7) // 8
    return -(-length // volume.bps)


def _step(volume):
    """FAT lengths change in steps whose sum over all FATs is whole
    clusters, so the data region keeps its alignment."""
    spc = volume.cluster // volume.bps
    return spc // math.gcd(spc, volume.nfats)


def geometry(volume, size):
    """(total sectors, FAT sectors, clusters) of *volume* cut to *size*
    bytes: the shortest FATs (in steps from the old length) that hold the
    clusters they leave room for."""
    bps, spc = volume.bps, volume.cluster // volume.bps
    reserved, root = volume.fat_start // bps, volume.root[1] // bps
    total = min(size // bps, volume.total // bps)
    step, fat = _step(volume), volume.fat_bytes // bps

    def clusters(fat):
        return (total - reserved - volume.nfats * fat - root) // spc

    def holds(fat):
        count = clusters(fat)
        return fat >= 1 and 0 < count <= RANGE[volume.bits][1] and \
            _need(volume, count) <= fat

    if clusters(fat) > 0 and holds(fat):
        # the least length that holds, by halving the distance to it
        low, high = 0, (fat - 1) // step       # steps taken off
        while low < high:
            mid = (low + high + 1) // 2
            if holds(fat - mid * step):
                low = mid
            else:
                high = mid - 1
        fat -= low * step
    return total, fat, max(0, clusters(fat))


def least_size(volume, clusters):
    """The fewest bytes of a volume like *volume* with *clusters*
    clusters."""
    bps, spc = volume.bps, volume.cluster // volume.bps
    old = volume.fat_bytes // bps
    fat = old - max(0, old - _need(volume, clusters)) // _step(volume) \
        * _step(volume)
    return (volume.fat_start // bps + volume.nfats * fat
            + volume.root[1] // bps + clusters * spc) * bps


def min_size(used, size, kind=None, block_size=None):
    """The least partition the plan offers a FAT volume of *used* bytes
    (the data region's start and the used clusters, as the map counts
    them): the used bytes and a tenth more (at least 1 MiB), in whole MiB;
    with its kind and cluster size also the fewest clusters of its type
    (4085 for FAT16, 65525 for FAT32) and their FATs.  Our own shrink
    needs no more than the used bytes; the margin leaves room to work."""
    least = used + max(used // 10, MiB)
    bits = BITS.get(kind)
    if bits and block_size:
        fewest = RANGE[bits][0]
        least = max(least, fewest * block_size
                    + 2 * ((fewest + 2) * bits // 8) + MiB)
    return min(size, -(-least // MiB) * MiB)


def shrink(path, size):
    """Shrink the FAT volume at byte 0 of *path* (a file or device) to at
    most *size* bytes.  Returns its size in bytes after (the old size when
    it is no larger than *size*).  FatShrinkError (a MapError) when it
    cannot, before anything is written."""
    fd = os.open(path, os.O_RDWR)
    try:
        def read(offset, length):
            return os.pread(fd, length, offset)

        def pread(length, offset):
            return _pread(fd, length, offset)

        head = _pread(fd, 512, 0)
        volume = Volume(read, os.lseek(fd, 0, os.SEEK_END), head)
        if size >= volume.total:
            return volume.total
        total, fat, clusters = geometry(volume, size)
        _check_range(volume, clusters)
        table = read_table(volume, pread)
        moved = _relocation(volume, table, clusters)
        walk = Walk(volume, table, moved, pread).run()
        used = sum(1 for v in table[2:] if is_used(v, volume.bits))
        if walk.seen != used:
            raise FatShrinkError(
                f"{used} clusters are used in the FAT but {walk.seen} are "
                f"on the chains of the directory tree (lost clusters)")
        new_table = _new_table(volume, table, clusters, moved, walk.links)
        _move_clusters(fd, volume, moved)
        _patch_entries(fd, volume, moved, walk.patches)
        shift = volume.nfats * (volume.fat_bytes - fat * volume.bps)
        if shift:
            _shift_down(fd, volume, new_table, shift)
        for number in range(volume.nfats):
            fdio.pwrite(fd, encode(new_table, volume.bits, fat * volume.bps),
                    volume.fat_start + number * fat * volume.bps)
        _write_boot(fd, volume, total, fat, new_table, moved)
        os.fsync(fd)
        return total * volume.bps
    finally:
        os.close(fd)


def _check_range(volume, clusters):
    fewest, most = RANGE[volume.bits]
    if clusters < fewest and volume.bits == 12:
        raise FatShrinkError("no room for a single cluster after the "
                             "FAT and the root directory")
    if clusters < fewest:
        raise FatShrinkError(
            f"FAT{volume.bits} needs at least {fewest} clusters (fewer are "
            f"read as {'FAT16' if volume.bits == 32 else 'FAT12'} by their "
            f"count); with {volume.cluster}-byte clusters that is at least "
            f"{least_size(volume, fewest)} bytes, the target holds "
            f"{max(clusters, 0)} clusters")
    assert clusters <= most


def _relocation(volume, table, clusters):
    """{old cluster: new cluster} for each used cluster past the new end,
    into the lowest free clusters before it."""
    bits, limit = volume.bits, clusters + 2
    mask = MASK[bits]
    high = [c for c in range(limit, len(table)) if is_used(table[c], bits)]
    if not high:
        return {}
    free = []
    for c in range(2, limit):
        if table[c] & mask == 0:
            free.append(c)
            if len(free) == len(high):
                break
    if len(free) < len(high):
        used = sum(1 for v in table[2:] if is_used(v, bits))
        bad = len(table) - 2 - used - sum(
            1 for v in table[2:] if v & mask == 0)
        raise FatShrinkError(
            f"{used} used clusters of {volume.cluster} bytes do not fit in "
            f"{clusters} clusters ({bad} marked bad): the volume needs at "
            f"least {least_size(volume, used + bad)} bytes")
    return dict(zip(high, free))


def _new_table(volume, table, clusters, moved, links):
    """The FAT entries 0 .. clusters+1 after the move."""
    new = table[:clusters + 2]
    for old, cluster in moved.items():
        new[cluster] = table[old]
    keep = ~MASK[volume.bits] & 0xFFFFFFFF if volume.bits == 32 else 0
    for cluster, following in links:
        at = moved.get(cluster, cluster)
        new[at] = new[at] & keep | following
    return new


def _runs(pairs):
    """(old, new, count) runs of consecutive (old, new) cluster pairs."""
    run = None
    for old, new in sorted(pairs):
        if run and old == run[0] + run[2] and new == run[1] + run[2]:
            run[2] += 1
            continue
        if run:
            yield tuple(run)
        run = [old, new, 1]
    if run:
        yield tuple(run)


def _copy(fd, source, target, length):
    """Copy *length* bytes from *source* to *target* < *source*, lowest
    first (safe when they overlap)."""
    done = 0
    while done < length:
        n = min(COPY, length - done)
        fdio.pwrite(fd, _pread(fd, n, source + done), target + done)
        done += n


def _at(volume, cluster):
    return volume.data_start + (cluster - 2) * volume.cluster


def _move_clusters(fd, volume, moved):
    for old, new, count in _runs(moved.items()):
        _copy(fd, _at(volume, old), _at(volume, new), count * volume.cluster)


def _patch_entries(fd, volume, moved, patches):
    """The first-cluster fields (DIR_FstClusHI at 20, DIR_FstClusLO at 26)
    of each entry naming a moved cluster, where its directory now is."""
    for cluster, offset, first in patches:
        if cluster is None:
            at = volume.root[0] + offset
        else:
            at = _at(volume, moved.get(cluster, cluster)) + offset
        if volume.bits == 32:
            fdio.pwrite(fd, (first >> 16).to_bytes(2, "little"), at + 20)
        fdio.pwrite(fd, (first & 0xFFFF).to_bytes(2, "little"), at + 26)


def _shift_down(fd, volume, table, shift):
    """The FAT12/16 root directory and the used clusters, *shift* bytes
    lower: the data region follows shorter FATs."""
    start, length = volume.root
    if length:
        _copy(fd, start, start - shift, length)
    used = [c for c in range(2, len(table)) if is_used(table[c], volume.bits)]
    for first, _, count in _runs((c, c) for c in used):
        at = _at(volume, first)
        _copy(fd, at, at - shift, count * volume.cluster)


def _write_boot(fd, volume, total, fat, table, moved):
    """Backup boot sector and FSInfo sectors first, the boot sector last."""
    bps, bpb, bits = volume.bps, volume.bpb, volume.bits
    small = bits != 32 and total < 0x10000
    fields = {"BPB_TotSec16": total if small else 0,
              "BPB_TotSec32": 0 if small else total}
    sectors, info = [0], []
    if bits == 32:
        root = bpb.BPB_RootClus
        fields.update(BPB_FATSz32=fat, BPB_RootClus=moved.get(root, root))
        if bpb.BPB_BkBootSec not in (0, 0xFFFF):
            sectors.append(bpb.BPB_BkBootSec)
        info = [bpb.BPB_FSInfo + s for s in sectors]
    else:
        fields["BPB_FATSz16"] = fat
    mask = MASK[bits]
    free = [c for c in range(2, len(table)) if table[c] & mask == 0]
    for sector in info:
        if not 0 < sector < volume.fat_start // bps:
            continue
        fsinfo = FSINFO.unpack(_pread(fd, FSINFO.size, sector * bps))
        if not fsinfo_signed(fsinfo):
            continue
        changed = {}
        if fsinfo.FSI_Free_Count != 0xFFFFFFFF:
            changed["FSI_Free_Count"] = len(free)
        if fsinfo.FSI_Nxt_Free != 0xFFFFFFFF:
            changed["FSI_Nxt_Free"] = free[0] if free else 0xFFFFFFFF
        fsinfo = fsinfo._replace(**changed)
        fdio.pwrite(fd, FSINFO.pack(**fsinfo._asdict()), sector * bps)
    layout = BPB32 if bits == 32 else BPB16
    for sector in reversed(sectors):
        copy = layout.unpack(_pread(fd, layout.size, sector * bps))
        if sector and copy.BPB_BytsPerSec != bps:
            continue            # no backup there after all: leave it
        packed = layout.pack(**copy._replace(**fields)._asdict())
        fdio.pwrite(fd, packed, sector * bps)

