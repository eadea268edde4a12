"""Used clusters of an NTFS volume, read from its $Bitmap file.

Record 6 ($Bitmap) holds one bit per cluster of the volume (the MFT is read
by :mod:`diskimage.fs.ntfs.mft`).  Every metadata file ($MFT, $MFTMirr,
$LogFile, $Boot, ...) has its clusters marked there, so the used runs are
the set bits, plus the boot sector and the backup boot sector, which lives
in the sector just after the volume (the volume is one sector smaller than
its partition).

The bitmap is turned into runs by :func:`~diskimage.fs.usedmap.bitmap_runs`,
a chunk of it at a time and again on every pass over the runs: no Python
loop runs per cluster or per bit, and the runs are never all in memory.
"""

from .mft import (
    AT_DATA, AT_VOLUME_INFORMATION, AT_VOLUME_NAME, BITMAP_CHUNK, END_OF_SECTOR_MARKER,
    FILE_BITMAP, FILE_VOLUME, NTFS_BOOT_SECTOR, OEM_ID, VOLUME_INFORMATION,
    VOLUME_IS_DIRTY, NtfsVolume, parse_struct)
from ..usedmap import (LazyRuns, MapError, UsedMap, bitmap_runs, coalesce,
                       merged, scaled, survey)

METADATA_FILES = ((2, "$LogFile"), (4, "$AttrDef"), (10, "$UpCase"))


def _label_and_flags(volume):
    label, flags = "", 0
    for attr in volume.attributes(volume.record(FILE_VOLUME)):
        if attr.head.type == AT_VOLUME_NAME:
            label = volume.value(attr).decode("utf-16-le", "replace")
        elif attr.head.type == AT_VOLUME_INFORMATION:
            flags = parse_struct(VOLUME_INFORMATION, volume.value(attr), 0,
                           attr.record.where + attr.pos).flags
    return label, flags


def _bitmap_byte_runs(volume, runs):
    """Byte runs of the clusters the $Bitmap (whose runlist is `runs`)
    marks used, streamed chunk by chunk of the bitmap, coalesced."""
    nbytes = (volume.clusters + 7) // 8
    for start in range(0, nbytes, BITMAP_CHUNK):
        chunk = volume.read_runs(runs, start, min(BITMAP_CHUNK,
                                                  nbytes - start), "$Bitmap")
        yield from scaled(bitmap_runs(chunk, min(
            len(chunk) * 8, volume.clusters - start * 8), start * 8),
            volume.cluster, volume.total_bytes)


def _metadata_files(volume):
    """(lcn, count, name) of the clusters of $LogFile, $AttrDef and $UpCase
    (records 2, 4 and 10): metadata files every NTFS has, cheap to read,
    whose clusters a $Bitmap that is this volume's marks used."""
    found = []
    for number, name in METADATA_FILES:
        for attr in volume.find(number, AT_DATA):
            if attr.head.non_resident:
                found += [(lcn, n, name) for _, lcn, n in
                          volume.mapping_pairs(attr)[1] if lcn is not None]
    return found


def _used_clusters(volume):
    """The used clusters' byte runs as a re-iterable stream and their
    bytes, from a first pass that also checks that the clusters every NTFS
    needs are marked (or the bitmap is not this volume's)."""
    runs, data_size, initialized = volume.data_runs(FILE_BITMAP)
    nbytes = (volume.clusters + 7) // 8
    if min(data_size, initialized) < nbytes:
        raise MapError(f"NTFS $Bitmap of {data_size} bytes ({initialized} "
                       f"initialized) is too small for {volume.clusters} "
                       "clusters")
    needed = [(0, 1, "$Boot"), (volume.boot.mftmirr_lcn, 1, "$MFTMirr")]
    needed += [(lcn, n, "$MFT") for _, lcn, n in volume.mft_runs]
    needed += [(lcn, n, "$Bitmap") for _, lcn, n in runs]
    needed += _metadata_files(volume)
    used, missing = survey(coalesce(_bitmap_byte_runs(volume, runs)), sorted(
        (lcn * volume.cluster, n * volume.cluster, (lcn, n, name))
        for lcn, n, name in needed))
    if missing:
        lcn, count, name = missing[2]
        raise MapError(f"NTFS $Bitmap marks clusters {lcn}-"
                       f"{lcn + count - 1} of {name} free (byte "
                       f"{lcn * volume.cluster})")
    return LazyRuns(lambda: coalesce(_bitmap_byte_runs(volume, runs))), used


def open_volume(read, size):
    """The UsedMap of the NTFS volume read by read(offset, length), `size`
    bytes of partition; None when its boot sector does not say NTFS."""
    head = read(0, NTFS_BOOT_SECTOR.size)
    if len(head) < NTFS_BOOT_SECTOR.size or head[3:11] != OEM_ID:
        return None
    boot = parse_struct(NTFS_BOOT_SECTOR, head, 0, 0)
    if boot.end_of_sector_marker != END_OF_SECTOR_MARKER:
        raise MapError(f"NTFS boot sector end marker "
                       f"{boot.end_of_sector_marker:#06x} at byte 510 is "
                       "not 0xaa55")
    volume = NtfsVolume(read, size, boot)
    sector = volume.sector
    extra = [(0, sector)]
    for backup in {volume.volume_bytes, size // sector * sector - sector}:
        # The backup boot sector: in the sector after the volume, which is
        # the partition's last; also the partition's last sector when the
        # partition is larger and that sector holds a copy of the boot one.
        if backup + sector <= size and (
                backup == volume.volume_bytes
                or read(backup, NTFS_BOOT_SECTOR.size) == head):
            extra.append((backup, sector))
    clusters, used = _used_clusters(volume)
    runs = LazyRuns(lambda: merged(iter(sorted(extra)), clusters))
    # The boot sector lies in cluster 0, which the first pass found used; a
    # backup boot sector past the clusters' bytes adds its sector, one
    # among the clusters (a partition no larger than the volume) needs a
    # count of the merged runs.
    if any(offset < volume.total_bytes for offset, _ in extra[1:]):
        used = survey(runs)[0]
    else:
        used += sum(n for _, n in extra[1:])
    label, flags = _label_and_flags(volume)
    warnings = []
    if flags & VOLUME_IS_DIRTY:
        warnings.append("NTFS volume is marked dirty (not cleanly unmounted "
                        "or hibernated): its $Bitmap may be stale")
    return UsedMap(
        "ntfs", block_size=volume.cluster, total_bytes=volume.total_bytes,
        used_bytes=used, runs=runs,
        label=label, uuid=f"{boot.volume_serial_number:016X}",
        warnings=warnings)


def volume_dirty(read, size):
    """True when the NTFS read by read(offset, length), `size` bytes, has
    VOLUME_IS_DIRTY set in $Volume (ntfsresize sets it, so that Windows
    checks the volume once; ntfs-3g's tools then refuse to write)."""
    boot = parse_struct(NTFS_BOOT_SECTOR, read(0, NTFS_BOOT_SECTOR.size), 0, 0)
    volume = NtfsVolume(read, size, boot)
    return bool(_label_and_flags(volume)[1] & VOLUME_IS_DIRTY)
