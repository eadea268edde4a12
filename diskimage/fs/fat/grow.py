"""Growing a FAT12, FAT16 or FAT32 filesystem in place, after a restore has
put it into a larger partition.

The field's tool for this, fatresize (libparted), needs a partitioned disk
device and aborts on a partition of a disk file ("Assertion ... snap()
failed" in fatresize 1.1.0), so the grow is done here.  A FAT volume is
reserved sectors, the FATs, (FAT12/16) the root directory, then the data
clusters numbered from 2.  More clusters need longer FATs, which push the
root directory and the data region out by the growth of all FATs together;
the clusters keep their numbers, so the directory entries and chains stay
as they are:

1. the new FAT length is the least that holds the new cluster count, grown
   by whole clusters' worth over all FATs (the data keeps its alignment);
2. the root directory (FAT12/16) and every used cluster move up by that
   growth, highest first, so nothing is overwritten before it is read;
3. each FAT copy is written at its new place, last copy first: the active
   FAT's entries for the old clusters, then zeros (free clusters);
4. the boot sector (and the FAT32 backup) gets the new total and FAT
   length; FSInfo's free count is raised by the clusters added.

A volume stays the FAT type it is: FAT12 holds at most 4084 clusters and
FAT16 65524 (of the cluster size it has), so such a volume grows to that
limit and no further, and :func:`grow` returns the size it reached.

Not atomic: an interruption leaves a damaged volume.  Restore grows
filesystems before it writes the partition table, so the target then has
no table that points at it.
"""

import math
import os

from . import fdio
from .used import (BPB16, BPB32, FSINFO, MAX_FAT12, MAX_FAT16, Volume,
                   fsinfo_signed)
from ..usedmap import MapError

MAX_FAT32 = 0x0FFFFFF5
MAX_CLUSTERS = {12: MAX_FAT12, 16: MAX_FAT16, 32: MAX_FAT32}
COPY = 4 << 20


class FatGrowError(MapError):
    """The volume cannot be grown: a short read (the BPB or FAT not trusted
    raise MapError from diskimage.fs.fat.used)."""


def _pread(fd, length, offset):
    return fdio.pread(fd, length, offset, FatGrowError)


def geometry(volume, size):
    """(total sectors, FAT sectors, clusters) of *volume* grown into *size*
    bytes: the most clusters the space and the FAT type allow."""
    bps, spc = volume.bps, volume.cluster // volume.bps
    reserved = volume.fat_start // bps
    root = volume.root[1] // bps
    old_fat = volume.fat_bytes // bps
    # FAT growth in steps whose sum over all FATs is whole clusters.
    step = spc // math.gcd(spc, volume.nfats)
    total = min(size // bps, 0xFFFFFFFF)
    fat = old_fat
    while True:
        clusters = (total - reserved - volume.nfats * fat - root) // spc
        clusters = min(clusters, MAX_CLUSTERS[volume.bits])
        table_bytes = ((clusters + 2) * volume.bits + 7) // 8
        need = -(-table_bytes // bps)
        if need <= fat:
            break
        fat = old_fat + -(-(need - old_fat) // step) * step
    end = reserved + volume.nfats * fat + root + clusters * spc
    if clusters == MAX_CLUSTERS[volume.bits]:
        total = min(total, end)
    return total, fat, clusters


def grow(path, size):
    """Grow the FAT volume that starts at byte 0 of *path* (a file or a
    device) to at most *size* bytes.  Returns the volume's size in bytes
    after the grow (its old size when no cluster more fits)."""
    fd = os.open(path, os.O_RDWR)
    try:
        def read(offset, length):
            return os.pread(fd, length, offset)

        head = _pread(fd, 512, 0)
        volume = Volume(read, os.lseek(fd, 0, os.SEEK_END), head)
        total, fat, clusters = geometry(volume, size)
        if clusters <= volume.clusters:
            return volume.total
        _grow(fd, volume, total, fat, clusters)
        os.fsync(fd)
        return total * volume.bps
    finally:
        os.close(fd)


def _grow(fd, volume, total, fat, clusters):
    bps = volume.bps
    shift = volume.nfats * (fat * bps - volume.fat_bytes)
    root_start, root_bytes = volume.root
    used, bad = 0, 0
    runs = []
    for found, in_use, marked, _ in volume.scan():
        runs.extend(found)
        used += in_use
        bad += marked
    if root_bytes:
        runs.insert(0, (root_start, root_bytes))
    for start, length in reversed(runs):
        end = start + length
        while end > start:
            n = min(COPY, end - start)
            fdio.pwrite(fd, _pread(fd, n, end - n), end - n + shift)
            end -= n
    _write_fats(fd, volume, fat * bps)
    _write_boot(fd, volume, total, fat,
                volume.clusters - used - bad, clusters - volume.clusters)


def _write_fats(fd, volume, new_bytes):
    """Every FAT copy at its new place: the active FAT's entries for the
    old clusters, then zeros."""
    old_bytes, start = volume.fat_bytes, volume.fat_start
    active = volume.active[0]
    if active:      # mirroring off: copy 0's place takes the active FAT
        for offset in range(0, old_bytes, COPY):
            n = min(COPY, old_bytes - offset)
            fdio.pwrite(fd, _pread(fd, n, start + active * old_bytes + offset),
                    start + offset)
    bits = (volume.clusters + 2) * volume.bits
    keep = bits // 8
    for number in reversed(range(volume.nfats)):
        base = start + number * new_bytes
        if number:
            for offset in range(0, keep, COPY):
                n = min(COPY, keep - offset)
                fdio.pwrite(fd, _pread(fd, n, start + offset), base + offset)
        tail = keep
        if bits % 8:        # FAT12: half of this byte is the last entry
            low = _pread(fd, 1, start + keep)[0] & 0x0F
            fdio.pwrite(fd, bytes([low]), base + keep)
            tail += 1
        for offset in range(tail, new_bytes, COPY):
            fdio.pwrite(fd, bytes(min(COPY, new_bytes - offset)),
                        base + offset)


def _write_boot(fd, volume, total, fat, free, added):
    bps, bpb = volume.bps, volume.bpb
    fields = {"BPB_TotSec16": total if volume.bits != 32 and total < 0x10000
              and bpb.BPB_TotSec16 else 0}
    fields["BPB_TotSec32"] = 0 if fields["BPB_TotSec16"] else total
    if volume.bits == 32:
        fields["BPB_FATSz32"] = fat
        sectors = [0]
        if bpb.BPB_BkBootSec not in (0, 0xFFFF):
            sectors.append(bpb.BPB_BkBootSec)
        info = [bpb.BPB_FSInfo + s for s in sectors]
    else:
        fields["BPB_FATSz16"] = fat
        sectors, info = [0], []
    struct = BPB32 if volume.bits == 32 else BPB16
    packed = struct.pack(**bpb._replace(**fields)._asdict())
    for sector in sectors:
        fdio.pwrite(fd, packed, sector * bps)
    for sector in info:
        if not 0 < sector < volume.fat_start // bps:
            continue
        raw = _pread(fd, FSINFO.size, sector * bps)
        fsinfo = FSINFO.unpack(raw)
        if not fsinfo_signed(fsinfo) or fsinfo.FSI_Free_Count == 0xFFFFFFFF:
            continue
        fsinfo = fsinfo._replace(FSI_Free_Count=free + added)
        fdio.pwrite(fd, FSINFO.pack(**fsinfo._asdict()), sector * bps)
