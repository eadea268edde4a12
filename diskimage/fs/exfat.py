"""Used clusters of an exFAT volume, read from its Allocation Bitmap.

Field names follow Microsoft's "exFAT file system specification".  Used is
everything before the cluster heap (the main and backup boot regions,
sectors 0-11 and 12-23, and the FATs), and every cluster whose bit is set in
the Allocation Bitmap(s) found in the root directory.  The clusters of the
bitmaps, the up-case table and the root directory are added as well, in case
the bitmap forgot one of them (a warning says so).

Chains are followed through the FAT, one entry read at a time: only the
root directory, the bitmap and the up-case table are followed, and they are
a few clusters long.
"""

import secrets
from itertools import chain

from ..errors import TableError
from . import tooling
from .record import Filesystem
from ..structs import Struct
from .usedmap import (LazyRuns, MapError, UsedMap, bitmap_runs, coalesce,
                      merge_runs, merged, read_exact, survey)

BOOT_SECTOR = Struct("exFAT boot sector", [
    ("3s", "JumpBoot"),
    ("8s", "FileSystemName"),
    ("53s", "MustBeZero"),
    ("Q", "PartitionOffset"),
    ("Q", "VolumeLength"),
    ("I", "FatOffset"),
    ("I", "FatLength"),
    ("I", "ClusterHeapOffset"),
    ("I", "ClusterCount"),
    ("I", "FirstClusterOfRootDirectory"),
    ("I", "VolumeSerialNumber"),
    ("H", "FileSystemRevision"),
    ("H", "VolumeFlags"),
    ("B", "BytesPerSectorShift"),
    ("B", "SectorsPerClusterShift"),
    ("B", "NumberOfFats"),
    ("B", "DriveSelect"),
    ("B", "PercentInUse"),
    ("7s", "Reserved"),
    ("390s", "BootCode"),
    ("H", "BootSignature"),
], size=512)
BITMAP_ENTRY = Struct("exFAT allocation bitmap entry", [
    ("B", "EntryType"),
    ("B", "BitmapFlags"),
    ("18s", "Reserved"),
    ("I", "FirstCluster"),
    ("Q", "DataLength"),
], size=32)
UPCASE_ENTRY = Struct("exFAT up-case table entry", [
    ("B", "EntryType"),
    ("3s", "Reserved1"),
    ("I", "TableChecksum"),
    ("12s", "Reserved2"),
    ("I", "FirstCluster"),
    ("Q", "DataLength"),
], size=32)
LABEL_ENTRY = Struct("exFAT volume label entry", [
    ("B", "EntryType"),
    ("B", "CharacterCount"),
    ("22s", "VolumeLabel"),
    ("8s", "Reserved"),
], size=32)

SIGNATURE = b"EXFAT   "
BOOT_SIGNATURE = 0xAA55
BOOT_REGION_SECTORS = 12                 # main boot region; backup follows
ENTRY_END, ENTRY_BITMAP, ENTRY_UPCASE, ENTRY_LABEL = 0x00, 0x81, 0x82, 0x83
FAT_BAD, FAT_END = 0xFFFFFFF7, 0xFFFFFFFF
ACTIVE_FAT, VOLUME_DIRTY = 0x1, 0x2         # VolumeFlags bits 0 and 1
PERCENT_UNKNOWN = 0xFF
CHECKSUM_SKIPPED = (106, 107, 112)        # VolumeFlags, PercentInUse


def boot_checksum(region, sector_size):
    """The boot checksum of sectors 0-10 of a boot region (spec 3.4)."""
    checksum = 0
    for index, byte in enumerate(region[:11 * sector_size]):
        if index not in CHECKSUM_SKIPPED:
            checksum = (((checksum << 31) | (checksum >> 1)) + byte) \
                & 0xFFFFFFFF
    return checksum


def _check(boot, size):
    """Sector and cluster sizes after checking the boot sector's layout."""
    if boot.MustBeZero.strip(b"\0"):
        raise MapError("MustBeZero (byte offset 11) is not zero")
    if boot.BootSignature != BOOT_SIGNATURE:
        raise MapError(f"boot signature 0x{boot.BootSignature:04X} at byte "
                       f"offset 510 is not 0xAA55")
    if not 9 <= boot.BytesPerSectorShift <= 12:
        raise MapError(f"BytesPerSectorShift {boot.BytesPerSectorShift} "
                       f"(byte offset 108) is not 9-12")
    if boot.SectorsPerClusterShift > 25 - boot.BytesPerSectorShift:
        raise MapError(f"SectorsPerClusterShift "
                       f"{boot.SectorsPerClusterShift} (byte offset 109) "
                       f"makes clusters larger than 32 MiB")
    if boot.NumberOfFats not in (1, 2):
        raise MapError(f"NumberOfFats {boot.NumberOfFats} (byte offset 110) "
                       f"is not 1 or 2")
    bps = 1 << boot.BytesPerSectorShift
    spc = 1 << boot.SectorsPerClusterShift
    if boot.VolumeLength * bps > size:
        raise MapError(f"filesystem of {boot.VolumeLength * bps} bytes "
                       f"(byte offset 72) is larger than the partition of "
                       f"{size} bytes")
    fat_end = boot.FatOffset + boot.FatLength * boot.NumberOfFats
    if boot.FatOffset < 2 * BOOT_REGION_SECTORS or \
            fat_end > boot.ClusterHeapOffset:
        raise MapError(f"FATs at sectors {boot.FatOffset}-{fat_end} (byte "
                       f"offset 80) overlap the boot regions or the cluster "
                       f"heap at sector {boot.ClusterHeapOffset}")
    heap_end = boot.ClusterHeapOffset + boot.ClusterCount * spc
    if boot.ClusterCount == 0 or heap_end > boot.VolumeLength:
        raise MapError(f"cluster heap of {boot.ClusterCount} clusters at "
                       f"sector {boot.ClusterHeapOffset} (byte offset 88) "
                       f"ends past the volume's {boot.VolumeLength} sectors")
    if boot.FatLength * bps < (boot.ClusterCount + 2) * 4:
        raise MapError(f"FAT of {boot.FatLength} sectors (byte offset 84) "
                       f"cannot hold {boot.ClusterCount} clusters")
    root = boot.FirstClusterOfRootDirectory
    if not 2 <= root < boot.ClusterCount + 2:
        raise MapError(f"root directory cluster {root} (byte offset 96) is "
                       f"outside clusters 2..{boot.ClusterCount + 1}")
    return bps, bps * spc


class _Volume:
    def __init__(self, read, boot, bps, cluster):
        self.read, self.boot, self.cluster = read, boot, cluster
        self.heap = boot.ClusterHeapOffset * bps
        fat = 1 if boot.NumberOfFats == 2 and \
            boot.VolumeFlags & ACTIVE_FAT else 0
        self.fat = (boot.FatOffset + fat * boot.FatLength) * bps
        self.last = boot.ClusterCount + 1

    def offset(self, cluster):
        return self.heap + (cluster - 2) * self.cluster

    def chain(self, first, length=None, what="chain"):
        """The clusters of a chain from `first`: `length` bytes of it, or up
        to its end.  A first entry that is free means contiguous clusters
        (data written without a FAT chain)."""
        need = None if length is None else -(-length // self.cluster)
        clusters, seen, cluster = [], set(), first
        while need is None or len(clusters) < need:
            if not 2 <= cluster <= self.last:
                raise MapError(f"{what} reaches cluster {cluster}, outside "
                               f"clusters 2..{self.last}")
            if cluster in seen:
                raise MapError(f"{what} loops back to cluster {cluster}")
            clusters.append(cluster)
            seen.add(cluster)
            entry = int.from_bytes(read_exact(self.read, self.fat + 4 * cluster,
                                         4, "FAT"), "little")
            if entry == 0 and need is not None and len(clusters) == 1:
                if first + need - 1 > self.last:
                    raise MapError(f"{what}: {need} clusters from {first} "
                                   f"run past cluster {self.last}")
                return list(range(first, first + need))
            if entry == FAT_END:
                break
            if entry == FAT_BAD or entry == 0:
                raise MapError(f"{what}: cluster {cluster} is "
                               f"{'bad' if entry else 'free'} in the FAT at "
                               f"byte offset {self.fat + 4 * cluster}")
            cluster = entry
        if need is not None and len(clusters) < need:
            raise MapError(f"{what} ends after {len(clusters)} of {need} "
                           f"clusters")
        return clusters

    def data(self, clusters, length, what):
        return b"".join(read_exact(self.read, self.offset(c), self.cluster, what)
                        for c in clusters)[:length]


def _root_entries(volume):
    """The root directory's entries, up to the end-of-directory entry, and
    the clusters it takes."""
    clusters = volume.chain(volume.boot.FirstClusterOfRootDirectory,
                            what="root directory")
    entries = []
    for cluster in clusters:
        data = read_exact(volume.read, volume.offset(cluster), volume.cluster,
                     "root directory")
        for pos in range(0, len(data), 32):
            if data[pos] == ENTRY_END:
                return entries, clusters
            entries.append((volume.offset(cluster) + pos, data[pos:pos + 32]))
    return entries, clusters


def _marked(bitmaps, cluster):
    """Whether any allocation bitmap marks `cluster` (the first is 2)."""
    index = cluster - 2
    return any(bitmap[index // 8] >> (index % 8) & 1 for bitmap in bitmaps)


def _entry(table, raw, at):
    try:
        return table.unpack(raw, at=at)
    except TableError as exc:
        raise MapError(str(exc)) from None


def open_volume(read, size):
    """The UsedMap of the exFAT volume read by read(offset, length), None
    when it is not exFAT; MapError when its structures cannot be trusted."""
    head = read(0, 512)
    if len(head) < 512 or head[3:11] != SIGNATURE:
        return None
    boot = _entry(BOOT_SECTOR, head, 0)
    bps, cluster = _check(boot, size)
    region = read_exact(read, 0, BOOT_REGION_SECTORS * bps, "main boot region")
    stored = int.from_bytes(region[11 * bps:11 * bps + 4], "little")
    if boot_checksum(region, bps) != stored:
        raise MapError(f"main boot region checksum 0x{stored:08X} at byte "
                       f"offset {11 * bps} does not match its sectors")
    volume = _Volume(read, boot, bps, cluster)
    entries, root_clusters = _root_entries(volume)
    warnings, label = [], ""
    bitmaps, structures = [], [root_clusters]
    for at, raw in entries:
        if raw[0] == ENTRY_BITMAP:
            entry = _entry(BITMAP_ENTRY, raw, at)
            if entry.DataLength * 8 < boot.ClusterCount:
                raise MapError(f"allocation bitmap of {entry.DataLength} "
                               f"bytes (entry at byte offset {at}) is too "
                               f"short for {boot.ClusterCount} clusters")
            clusters = volume.chain(entry.FirstCluster, entry.DataLength,
                                    f"allocation bitmap at byte offset {at}")
            structures.append(clusters)
            bitmaps.append(volume.data(clusters, entry.DataLength,
                                       "allocation bitmap"))
        elif raw[0] == ENTRY_UPCASE:
            entry = _entry(UPCASE_ENTRY, raw, at)
            structures.append(volume.chain(
                entry.FirstCluster, entry.DataLength,
                f"up-case table at byte offset {at}"))
        elif raw[0] == ENTRY_LABEL:
            entry = _entry(LABEL_ENTRY, raw, at)
            count = min(entry.CharacterCount, 11)
            label = entry.VolumeLabel[:2 * count].decode("utf-16-le",
                                                         "replace")
    if boot.VolumeFlags & VOLUME_DIRTY:
        warnings.append("VolumeDirty is set: the volume was not cleanly "
                        "unmounted")
    if not bitmaps:
        raise MapError(f"no allocation bitmap entry in the root directory at "
                       f"byte offset {volume.offset(root_clusters[0])}")
    if len(bitmaps) != boot.NumberOfFats:
        warnings.append(f"{len(bitmaps)} allocation bitmaps for "
                        f"{boot.NumberOfFats} FATs")
    def cluster_runs():
        return merged(*(bitmap_runs(bitmap, boot.ClusterCount, 2)
                        for bitmap in bitmaps))

    in_use = survey(cluster_runs())[0]
    extra = merge_runs((c, 1) for clusters in structures for c in clusters
                       if not _marked(bitmaps, c))
    if extra:
        warnings.append(f"{sum(n for _, n in extra)} clusters of the "
                        f"bitmap, up-case table or root directory are free "
                        f"in the allocation bitmap; copied anyway")
    percent = 100 * in_use // boot.ClusterCount
    if boot.PercentInUse != PERCENT_UNKNOWN and \
            abs(boot.PercentInUse - percent) > 1:
        warnings.append(f"PercentInUse says {boot.PercentInUse}%, the "
                        f"allocation bitmap {percent}%")

    def byte_runs():
        return coalesce(chain([(0, volume.heap)], (
            (volume.offset(c), n * cluster)
            for c, n in merged(cluster_runs(), iter(extra)))))

    serial = boot.VolumeSerialNumber
    return UsedMap(
        kind="exfat", block_size=cluster,
        total_bytes=boot.VolumeLength * bps,
        used_bytes=volume.heap + (in_use + sum(n for _, n in extra)) *
        cluster, runs=LazyRuns(byte_runs), label=label,
        uuid=f"{serial >> 16:04X}-{serial & 0xFFFF:04X}", warnings=warnings)


def detect(read):
    return "exfat" if read(3, len(SIGNATURE)) == SIGNATURE else None


def new_ids(path, what):
    """tune.exfat -I: a random volume serial number."""
    tooling.run(["tune.exfat", "-I", f"0x{secrets.randbits(32):08x}", path],
                what)


# Not resized: the partition may grow, the filesystem keeps its size
# (exfatprogs has no resizer).
FILESYSTEM = Filesystem(
    kinds=("exfat",), family="exfat", title="exFAT", detect=detect,
    open_map=open_volume, check=("fsck.exfat", "-n"), new_ids=new_ids,
    tools=("fsck.exfat", "tune.exfat", "mount.exfat-fuse"),
    browse="exfat", edit="exfat-fuse", links=False,
    mbr_type="7", gpt_type="EBD0A0A2-B9E5-4433-87C0-68B99B26B9C7")
