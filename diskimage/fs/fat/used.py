"""Used clusters of a FAT12, FAT16 or FAT32 volume, read from its FAT.

Field names follow Microsoft's "FAT: General Overview of On-Disk Format"
(fatgen103).  Used is the reserved region (boot sector, and on FAT32 the
FSInfo sector and the backup boot sector), every FAT, the FAT12/16 root
directory region, and each cluster whose FAT entry is not zero.  Clusters
marked bad (0xFF7, 0xFFF7, 0x0FFFFFF7) are left out: nothing on them is
needed.

The FAT is decoded in bulk: the entries' bytes are taken as columns
(``raw[k::width]``), each column is turned into 0/1 flags with
``bytes.translate`` and the columns are combined as big integers, so no
Python loop runs per cluster; runs of used clusters are then found with a
regular expression over the flags.
"""

import re
from itertools import chain

from ...errors import TableError
from .bpb import (  # noqa: F401  (grow and the tests take them from here)
    ATTR_DIRECTORY, ATTR_LONG_NAME, ATTR_VOLUME_ID, BPB16, BPB32,
    CHUNK_ENTRIES, DIR_ENTRY, FSI_LEAD_SIG, FSI_STRUC_SIG, FSI_TRAIL_SIG,
    FSINFO, MAX_FAT12, MAX_FAT16, NO_NAME, ROOT_SCAN_LIMIT)
from ..usedmap import LazyRuns, MapError, UsedMap, coalesce, read_exact
from .chaincheck import check_chains

# How each FAT type lays its entries: the bytes of a group of `width` bytes,
# and for each entry in the group the (byte index, mask, bad-cluster value
# under the mask) of the bytes that make it.  FAT12 packs two entries in
# three bytes; FAT32 entries use the low 28 bits.
LAYOUTS = {
    12: (3, (((0, 0xFF, 0xF7), (1, 0x0F, 0x0F)),
             ((1, 0xF0, 0x70), (2, 0xFF, 0xFF)))),
    16: (2, (((0, 0xFF, 0xF7), (1, 0xFF, 0xFF)),)),
    32: (4, (((0, 0xFF, 0xF7), (1, 0xFF, 0xFF), (2, 0xFF, 0xFF),
              (3, 0x0F, 0x0F)),)),
}
_NONZERO = {}   # mask -> table: byte -> 1 if byte & mask else 0
_EQUAL = {}     # (mask, value) -> table: byte -> 1 if byte & mask == value
for _width, _entries in LAYOUTS.values():
    for _parts in _entries:
        for _, _mask, _value in _parts:
            _NONZERO[_mask] = bytes(int(b & _mask != 0) for b in range(256))
            _EQUAL[_mask, _value] = bytes(int(b & _mask == _value)
                                          for b in range(256))
_USED_RUN = re.compile(rb"\x01+")


def _entry_flags(raw, bits):
    """Two bytearrays with one byte per FAT entry in `raw` (whole groups of
    `width` bytes): 1 where the entry is not zero, and 1 where it marks a
    bad cluster."""
    width, entries = LAYOUTS[bits]
    groups = len(raw) // width
    nonzero = bytearray(groups * len(entries))
    bad = bytearray(len(nonzero))
    for phase, parts in enumerate(entries):
        any_set, all_bad = 0, -1
        for index, mask, value in parts:
            column = raw[index::width]
            any_set |= int.from_bytes(column.translate(_NONZERO[mask]), "big")
            all_bad &= int.from_bytes(column.translate(_EQUAL[mask, value]),
                                      "big")
        nonzero[phase::len(entries)] = any_set.to_bytes(groups, "big")
        bad[phase::len(entries)] = all_bad.to_bytes(groups, "big")
    return nonzero, bad


def _fat_type(bpb16, clusters):
    """12, 16 or 32.  FAT12 and FAT16 by the count of clusters as the spec
    says; FAT32 by its BPB (BPB_FATSz16 zero), as Linux and dosfstools do:
    mkfs.fat makes FAT32 volumes with fewer than 65525 clusters (4 KiB
    sectors, small volumes) that the count alone would misread as FAT16."""
    if bpb16.BPB_FATSz16 == 0:
        return 32
    if clusters > MAX_FAT16:
        raise MapError(f"{clusters} clusters is too many for FAT12/16 but "
                       f"BPB_FATSz16 is set (byte offset 22)")
    return 12 if clusters <= MAX_FAT12 else 16


def _check_geometry(bpb, size):
    bps, spc = bpb.BPB_BytsPerSec, bpb.BPB_SecPerClus
    if bps not in (512, 1024, 2048, 4096):
        raise MapError(f"bytes per sector {bps} (byte offset 11) is not "
                       f"512, 1024, 2048 or 4096")
    if spc == 0 or spc & (spc - 1):
        raise MapError(f"sectors per cluster {spc} (byte offset 13) is not "
                       f"a power of two")
    if bpb.BPB_RsvdSecCnt == 0:
        raise MapError("no reserved sectors (byte offset 14)")
    if bpb.BPB_NumFATs == 0:
        raise MapError("zero FATs (byte offset 16)")
    total = bpb.BPB_TotSec16 or bpb.BPB_TotSec32
    if total == 0:
        raise MapError("total sectors is zero (byte offsets 19 and 32)")
    if total * bps > size:
        raise MapError(f"filesystem of {total * bps} bytes is larger than "
                       f"the partition of {size} bytes (byte offset "
                       f"{19 if bpb.BPB_TotSec16 else 32})")
    return total


class Volume:
    """The BPB's layout in bytes and the FAT reader."""

    def __init__(self, read, size, head):
        self.read = read
        try:
            bpb16 = BPB16.unpack(head)
            bpb32 = BPB32.unpack(head)
        except TableError as exc:
            raise MapError(str(exc)) from None
        total = _check_geometry(bpb16, size)
        self.bps = bps = bpb16.BPB_BytsPerSec
        self.cluster = bps * bpb16.BPB_SecPerClus
        fat_sectors = bpb16.BPB_FATSz16 or bpb32.BPB_FATSz32
        if fat_sectors == 0:
            raise MapError("FAT size is zero (byte offsets 22 and 36)")
        root_sectors = (bpb16.BPB_RootEntCnt * 32 + bps - 1) // bps
        self.fat_start = bpb16.BPB_RsvdSecCnt * bps
        self.fat_bytes = fat_sectors * bps
        self.nfats = bpb16.BPB_NumFATs
        root_start = self.fat_start + self.nfats * self.fat_bytes
        self.data_start = root_start + root_sectors * bps
        if self.data_start >= total * bps:
            raise MapError(f"FATs and root directory end at byte offset "
                           f"{self.data_start}, past the volume's end at "
                           f"{total * bps}")
        self.clusters = (total * bps - self.data_start) // self.cluster
        if self.clusters == 0:
            raise MapError(f"no room for a cluster after byte offset "
                           f"{self.data_start}")
        self.bits = _fat_type(bpb16, self.clusters)
        if (self.bits == 32) != (bpb16.BPB_RootEntCnt == 0):
            raise MapError(f"BPB_RootEntCnt {bpb16.BPB_RootEntCnt} (byte "
                           f"offset 17) on FAT{self.bits}: FAT32 has none, "
                           f"FAT12/16 need some")
        self.bpb = bpb32 if self.bits == 32 else bpb16
        self.total = total * bps
        self.root = (root_start, root_sectors * bps)
        needed = ((self.clusters + 2) * self.bits + 7) // 8
        if needed > self.fat_bytes:
            raise MapError(f"FAT of {self.fat_bytes} bytes at byte offset "
                           f"{self.fat_start} cannot hold {self.clusters} "
                           f"clusters")
        self.active = list(range(self.nfats))
        if self.bits == 32:
            if bpb32.BPB_ExtFlags & 0x80:      # mirroring off: one FAT used
                self.active = [bpb32.BPB_ExtFlags & 0x0F]
                if self.active[0] >= self.nfats:
                    raise MapError(f"active FAT {self.active[0]} of "
                                   f"{self.nfats} (byte offset 40)")
            if not 2 <= bpb32.BPB_RootClus < self.clusters + 2:
                raise MapError(f"root cluster {bpb32.BPB_RootClus} (byte "
                               f"offset 44) is outside clusters 2.."
                               f"{self.clusters + 1}")

    def fat_offset(self, number):
        return self.fat_start + number * self.fat_bytes

    def entry(self, cluster):
        """One FAT entry of the first active FAT (for following chains)."""
        if self.bits == 12:
            pos = cluster + cluster // 2
            raw = read_exact(self.read, self.fat_offset(self.active[0]) + pos, 2,
                        "FAT")
            value = int.from_bytes(raw, "little")
            return value >> 4 if cluster & 1 else value & 0xFFF
        width = self.bits // 8
        raw = read_exact(self.read, self.fat_offset(self.active[0])
                    + cluster * width, width, "FAT")
        return int.from_bytes(raw, "little") & 0x0FFFFFFF

    def scan(self):
        """For each chunk of FAT entries: the byte runs of its used clusters
        (entry neither zero nor bad in any active copy), and its counts of
        used and bad clusters, and whether the copies differ."""
        width = LAYOUTS[self.bits][0]
        end_entry = self.clusters + 2
        for first in range(0, end_entry, CHUNK_ENTRIES):
            count = min(CHUNK_ENTRIES, end_entry - first)
            start = first * self.bits // 8
            length = (count * self.bits + 7) // 8
            length += -length % width
            flags = bad = 0
            copies = set()
            for number in self.active:
                raw = read_exact(self.read, self.fat_offset(number) + start,
                                 min(length, self.fat_bytes - start), "FAT")
                copies.add(raw.ljust(length, b"\0"))
            for index, raw in enumerate(copies):
                nonzero, marked = _entry_flags(raw[:length], self.bits)
                # a cluster used in any copy is used; bad only if in all
                flags |= int.from_bytes(nonzero[:count], "big")
                marked = int.from_bytes(marked[:count], "big")
                bad = marked if index == 0 else bad & marked
            if first == 0:      # entries 0 and 1 are not clusters
                reserved = ((1 << 16) - 1) << (8 * (count - 2))
                flags &= ~reserved
                bad &= ~reserved
            used_flags = flags ^ bad
            base = self.data_start + (first - 2) * self.cluster
            unit = self.cluster
            found = [(base + a * unit, (b - a) * unit) for a, b in (
                m.span() for m in _USED_RUN.finditer(
                    used_flags.to_bytes(count, "big")))]
            yield found, used_flags.bit_count(), bad.bit_count(), \
                len(copies) > 1

    def runs(self):
        """The used byte runs, streamed: the regions before the data
        region (reserved sectors, FATs, root directory) and the clusters
        in use."""
        return coalesce(chain([(0, self.data_start)], (
            run for found, _, _, _ in self.scan() for run in found)))

    def used_clusters(self, warnings, root_at=None):
        """One pass over the FAT: the counts of used and bad clusters, and
        whether the cluster at byte `root_at` is used."""
        used = bad = 0
        differ = root_used = False
        for found, in_use, marked, copies_differ in self.scan():
            used += in_use
            bad += marked
            differ |= copies_differ
            if root_at is not None and not root_used:
                root_used = any(o <= root_at < o + n for o, n in found)
        if differ:
            warnings.append("the FAT copies differ; clusters used in any "
                            "copy are kept")
        return used, bad, root_used

    def check_media(self):
        for number in self.active:
            offset = self.fat_offset(number)
            media = read_exact(self.read, offset, 1, "FAT")[0]
            if media != self.bpb.BPB_Media:
                raise MapError(f"FAT[0] media byte 0x{media:02X} at byte "
                               f"offset {offset} does not match BPB_Media "
                               f"0x{self.bpb.BPB_Media:02X}")

    def root_directory(self):
        """Up to ROOT_SCAN_LIMIT bytes of the root directory."""
        if self.bits != 32:
            start, length = self.root
            return read_exact(self.read, start, min(length, ROOT_SCAN_LIMIT),
                         "root directory")
        data, cluster, seen = [], self.bpb.BPB_RootClus, set()
        while (2 <= cluster < self.clusters + 2 and cluster not in seen
               and len(data) * self.cluster < ROOT_SCAN_LIMIT):
            seen.add(cluster)
            data.append(read_exact(self.read, self.data_start + (cluster - 2)
                              * self.cluster, self.cluster, "root directory"))
            cluster = self.entry(cluster)
        return b"".join(data)


def _label(volume):
    """The volume label as blkid gives it: the root directory's volume-ID
    entry first, then BS_VolLab; "NO NAME" counts as none."""
    labels = []
    root = volume.root_directory()
    for pos in range(0, len(root) - 31, 32):
        entry = DIR_ENTRY.unpack(root, pos)
        name = entry.DIR_Name
        if name[0] == 0:
            break
        if (name[0] != 0xE5 and entry.DIR_Attr != ATTR_LONG_NAME and
                entry.DIR_Attr & (ATTR_VOLUME_ID | ATTR_DIRECTORY)
                == ATTR_VOLUME_ID):
            labels.append(b"\xe5" + name[1:] if name[0] == 5 else name)
            break
    if volume.bpb.BS_BootSig == 0x29:
        labels.append(volume.bpb.BS_VolLab)
    for label in labels:
        if label != NO_NAME and label.strip(b" \0"):
            return label.rstrip(b" \0").decode("cp850", "replace")
    return ""


def fsinfo_signed(info):
    """True when a parsed FSInfo sector carries its three signatures."""
    return (info.FSI_LeadSig, info.FSI_StrucSig, info.FSI_TrailSig) == (
        FSI_LEAD_SIG, FSI_STRUC_SIG, FSI_TRAIL_SIG)


def _fsinfo_warning(volume, read, free):
    sector = volume.bpb.BPB_FSInfo
    if not 0 < sector < volume.bpb.BPB_RsvdSecCnt:
        return None
    info = FSINFO.unpack(read_exact(read, sector * volume.bps, 512, "FSInfo"))
    if not fsinfo_signed(info):
        return f"FSInfo sector {sector} has no valid signatures"
    if info.FSI_Free_Count not in (0xFFFFFFFF, free):
        return (f"FSInfo says {info.FSI_Free_Count} free clusters, the FAT "
                f"{free}")
    return None


def open_volume(read, size):
    """The UsedMap of the FAT volume read by read(offset, length), None when
    it is not a FAT volume; MapError when its BPB or FAT cannot be trusted."""
    head = read(0, 512)
    if (len(head) < 512 or head[510:512] != b"\x55\xaa"
            or not (head[0] == 0xE9 or head[0] == 0xEB and head[2] == 0x90)
            or head[3:11] in (b"NTFS    ", b"EXFAT   ")):
        return None
    volume = Volume(read, size, head)
    volume.check_media()
    check_chains(volume)
    warnings = []
    root_at = None
    if volume.bits == 32:
        root = volume.bpb.BPB_RootClus
        root_at = volume.data_start + (root - 2) * volume.cluster
    used, bad, root_used = volume.used_clusters(warnings, root_at)
    if volume.bits == 32:
        if not root_used:
            raise MapError(f"root cluster {root} is free in the FAT at byte "
                           f"offset {volume.fat_offset(volume.active[0])}")
        if volume.clusters <= MAX_FAT16:
            warnings.append(f"FAT32 with only {volume.clusters} clusters "
                            f"(fewer than 65525)")
        note = _fsinfo_warning(volume, read, volume.clusters - used - bad)
        if note:
            warnings.append(note)
    if bad:
        warnings.append(f"{bad} clusters marked bad are not copied")
    vol_id = volume.bpb.BS_VolID
    uuid = (f"{vol_id >> 16:04X}-{vol_id & 0xFFFF:04X}"
            if volume.bpb.BS_BootSig in (0x28, 0x29) else "")
    return UsedMap(
        kind=f"fat{volume.bits}", block_size=volume.cluster,
        total_bytes=volume.total,
        used_bytes=volume.data_start + used * volume.cluster,
        runs=LazyRuns(volume.runs), label=_label(volume),
        uuid=uuid, warnings=warnings)
