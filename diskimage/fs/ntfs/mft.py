"""The MFT of an NTFS volume: its boot sector, MFT records with their
fixups, attributes, resident values and runlists (also through an
$ATTRIBUTE_LIST into extension records), read through ``read(offset,
length)``.

Structure and field names follow ntfs-3g's ``layout.h``.  The boot sector
gives the cluster size and where the MFT starts; MFT record 0 ($MFT) gives
the runs of the MFT itself (it may be fragmented, and its runlist may go on
in extension records).  The runlists are decoded one run at a time.  Every
parse or short read is a MapError naming the structure and byte offset.
"""

from collections import namedtuple

from ...errors import TableError
from ...structs import Struct, read_exact
from ..usedmap import MapError

NTFS_BOOT_SECTOR = Struct("NTFS boot sector", [
    ("3s", "jump"),
    ("8s", "oem_id"),
    ("H", "bytes_per_sector"),          # BIOS parameter block
    ("B", "sectors_per_cluster"),
    ("H", "reserved_sectors"),
    ("B", "fats"),
    ("H", "root_entries"),
    ("H", "sectors"),
    ("B", "media_type"),
    ("H", "sectors_per_fat"),
    ("H", "sectors_per_track"),
    ("H", "heads"),
    ("I", "hidden_sectors"),
    ("I", "large_sectors"),
    ("B", "physical_drive"),
    ("B", "current_head"),
    ("B", "extended_boot_signature"),
    ("B", "reserved2"),
    ("q", "number_of_sectors"),         # the volume's total sectors
    ("q", "mft_lcn"),
    ("q", "mftmirr_lcn"),
    ("b", "clusters_per_mft_record"),   # negative n: 2**-n bytes
    ("3s", "reserved0"),
    ("b", "clusters_per_index_record"),
    ("3s", "reserved1"),
    ("Q", "volume_serial_number"),
    ("I", "checksum"),
    ("426s", "bootstrap"),
    ("H", "end_of_sector_marker"),
], size=512)
MFT_RECORD = Struct("MFT record header", [
    ("4s", "magic"),
    ("H", "usa_ofs"),
    ("H", "usa_count"),
    ("Q", "lsn"),
    ("H", "sequence_number"),
    ("H", "link_count"),
    ("H", "attrs_offset"),
    ("H", "flags"),
    ("I", "bytes_in_use"),
    ("I", "bytes_allocated"),
    ("Q", "base_mft_record"),
    ("H", "next_attr_instance"),
    ("H", "reserved"),
    ("I", "mft_record_number"),
], size=48)
ATTR_RECORD = Struct("attribute header", [
    ("I", "type"),
    ("I", "length"),
    ("B", "non_resident"),
    ("B", "name_length"),
    ("H", "name_offset"),
    ("H", "flags"),
    ("H", "instance"),
], size=16)
ATTR_RESIDENT = Struct("resident attribute", [
    ("I", "value_length"),
    ("H", "value_offset"),
    ("B", "resident_flags"),
    ("B", "reservedR"),
], size=8)
ATTR_NON_RESIDENT = Struct("non-resident attribute", [
    ("q", "lowest_vcn"),
    ("q", "highest_vcn"),
    ("H", "mapping_pairs_offset"),
    ("B", "compression_unit"),
    ("5s", "reserved1"),
    ("q", "allocated_size"),
    ("q", "data_size"),
    ("q", "initialized_size"),
], size=48)
ATTR_LIST_ENTRY = Struct("attribute list entry", [
    ("I", "type"),
    ("H", "length"),
    ("B", "name_length"),
    ("B", "name_offset"),
    ("q", "lowest_vcn"),
    ("Q", "mft_reference"),
    ("H", "instance"),
], size=26)
VOLUME_INFORMATION = Struct("volume information", [
    ("Q", "reserved"),
    ("B", "major_ver"),
    ("B", "minor_ver"),
    ("H", "flags"),
], size=12)

OEM_ID = b"NTFS    "
END_OF_SECTOR_MARKER = 0xAA55
FILE_MAGIC = b"FILE"
NTFS_BLOCK_SIZE = 512            # the fixup stride, whatever the sector size
MFT_RECORD_IN_USE = 0x0001
VOLUME_IS_DIRTY = 0x0001
MREF_MASK = (1 << 48) - 1
MAX_VALUE = 1 << 24              # a sane bound on a non-resident list
BITMAP_CHUNK = 1 << 22           # bitmap bytes turned into runs at a time
# system files and attribute types used here
FILE_MFT, FILE_VOLUME, FILE_BITMAP = 0, 3, 6
AT_ATTRIBUTE_LIST, AT_VOLUME_NAME, AT_VOLUME_INFORMATION, AT_DATA = (
    0x20, 0x60, 0x70, 0x80)
AT_END = b"\xff\xff\xff\xff"


# A FILE record with its fixups applied; an attribute in one.
Record = namedtuple("Record", "number where data head")
Attr = namedtuple("Attr", "record pos head")


class NtfsVolume:
    """One NTFS volume being read: the boot sector's geometry and the MFT's
    runs, with readers for FILE records, attributes and runlists.  A run is
    (vcn, lcn or None when sparse, count of clusters)."""

    def __init__(self, read, size, boot):
        self.read, self.boot = read, boot
        self.sector = boot.bytes_per_sector
        spc = boot.sectors_per_cluster
        if spc > 0x80:                  # Windows 10 clusters above 64 KiB
            spc = 1 << (256 - spc)
        if (self.sector < 256 or self.sector & (self.sector - 1)
                or spc == 0 or spc & (spc - 1)):
            raise MapError(f"NTFS cluster size {self.sector} x {spc} bytes "
                           "(boot sector byte 11) is not a power of two")
        self.cluster = self.sector * spc
        self.volume_bytes = boot.number_of_sectors * self.sector
        if boot.number_of_sectors <= 0 or self.volume_bytes > size:
            raise MapError(f"NTFS volume of {self.volume_bytes} bytes "
                           f"({boot.number_of_sectors} sectors, boot sector "
                           f"byte 40) does not fit its partition of {size} "
                           "bytes")
        self.clusters = boot.number_of_sectors // spc
        self.total_bytes = self.clusters * self.cluster   # as ntfsinfo says
        self.record_size = self._unit("clusters_per_mft_record", 64)
        self._unit("clusters_per_index_record", 68)
        for name in ("mft_lcn", "mftmirr_lcn"):
            lcn = getattr(boot, name)
            if not 0 < lcn < self.clusters:
                raise MapError(f"NTFS {name} {lcn} is outside the volume of "
                               f"{self.clusters} clusters (boot sector)")
        # Enough of the MFT to read record 0; then the runs in record 0,
        # enough to read the extension records its $ATTRIBUTE_LIST names;
        # then all of them.
        self.mft_runs = [(0, boot.mft_lcn, -(-self.record_size
                                              // self.cluster))]
        self.mft_runs = self.data_runs(FILE_MFT, base_only=True)[0]
        self.mft_runs = self.data_runs(FILE_MFT)[0]

    def _unit(self, name, at):
        """A record size from the boot sector field `name` at byte `at`:
        clusters, or when negative n, 2**-n bytes."""
        value = getattr(self.boot, name)
        size = value * self.cluster if value > 0 else 1 << min(-value, 64)
        if value == 0 or not NTFS_BLOCK_SIZE <= size <= 65536 \
                or size & (size - 1):
            raise MapError(f"NTFS {name} {value} at byte {at} of the boot "
                           "sector is not a record size (a power of two "
                           "from 512 to 65536 bytes)")
        return size

    def read_runs(self, runs, offset, length, what):
        """Bytes [offset, offset+length) of a stream laid out in `runs`;
        sparse parts read as zeros."""
        pieces, end = [], offset + length
        for vcn, lcn, count in runs:
            start, stop = vcn * self.cluster, (vcn + count) * self.cluster
            lo, hi = max(start, offset), min(stop, end)
            if lo >= hi:
                continue
            if lcn is None:
                pieces.append(bytes(hi - lo))
            else:
                pieces.append(_mapped(read_exact, self.read, lcn
                                      * self.cluster + lo - start, hi - lo,
                                      what))
        data = b"".join(pieces)
        if len(data) != length:
            raise MapError(f"NTFS {what}: bytes {offset}-{end} of the stream "
                           "are not in its runlist")
        return data

    def record(self, number):
        """FILE record `number`, its signature and fixups checked."""
        what = f"NTFS MFT record {number}"
        offset = number * self.record_size
        data = bytearray(self.read_runs(self.mft_runs, offset,
                                        self.record_size, what))
        vcn = offset // self.cluster
        where = next((offset - first * self.cluster + lcn * self.cluster
                      for first, lcn, count in self.mft_runs
                      if first <= vcn < first + count), -1)
        what = f"{what} at byte {where}"
        head = parse_struct(MFT_RECORD, data, 0, where)
        if head.magic != FILE_MAGIC:
            raise MapError(f"{what} has no FILE signature ({head.magic!r})")
        blocks = self.record_size // NTFS_BLOCK_SIZE
        usa_end = head.usa_ofs + 2 * head.usa_count
        if head.usa_count != blocks + 1 or head.usa_ofs % 2 \
                or usa_end > NTFS_BLOCK_SIZE - 2:
            raise MapError(f"{what}: update sequence array of "
                           f"{head.usa_count} entries at {head.usa_ofs} for "
                           f"{blocks} blocks")
        usa = data[head.usa_ofs:usa_end]
        for i in range(blocks):
            tail = (i + 1) * NTFS_BLOCK_SIZE - 2
            if data[tail:tail + 2] != usa[0:2]:
                raise MapError(f"{what}: fixup mismatch at byte {tail} of "
                               "the record (torn or corrupt)")
            data[tail:tail + 2] = usa[2 * i + 2:2 * i + 4]
        if not head.flags & MFT_RECORD_IN_USE:
            raise MapError(f"{what} is not in use")
        if head.usa_ofs >= MFT_RECORD.size and \
                head.mft_record_number != number:
            raise MapError(f"{what} says it is record "
                           f"{head.mft_record_number}")
        return Record(number, where, bytes(data), head)

    def attributes(self, record):
        """Each attribute of a record, up to its end marker."""
        pos, data = record.head.attrs_offset, record.data
        limit = min(record.head.bytes_in_use, len(data))
        while pos + 4 <= limit:
            if data[pos:pos + 4] == AT_END:
                return
            head = parse_struct(ATTR_RECORD, data[:limit], pos, record.where + pos)
            if head.length < 24 or head.length % 8 \
                    or pos + head.length > limit:
                raise MapError(f"NTFS MFT record {record.number}: attribute "
                               f"{head.type:#x} of {head.length} bytes at "
                               f"byte {record.where + pos} runs past the "
                               "record")
            yield Attr(record, pos, head)
            pos += head.length
        raise MapError(f"NTFS MFT record {record.number} at byte "
                       f"{record.where}: attributes have no end marker")

    def value(self, attr):
        """The whole value of an attribute, resident or not."""
        data, pos, where = attr.record.data, attr.pos, attr.record.where
        if not attr.head.non_resident:
            res = parse_struct(ATTR_RESIDENT, data, pos + 16, where + pos)
            start = pos + res.value_offset
            if start + res.value_length > pos + attr.head.length:
                raise MapError(f"NTFS resident value at byte {where + pos} "
                               "runs past its attribute")
            return data[start:start + res.value_length]
        nonres, runs = self.mapping_pairs(attr)
        if not 0 <= nonres.data_size <= MAX_VALUE:
            raise MapError(f"NTFS attribute {attr.head.type:#x} of "
                           f"{nonres.data_size} bytes at byte {where + pos}")
        return self.read_runs(runs, 0, nonres.data_size,
                              f"attribute at byte {where + pos}")

    def mapping_pairs(self, attr):
        """The non-resident header and the decoded runlist of an attribute,
        checked against the volume and the attribute's VCN range."""
        data, where = attr.record.data, attr.record.where
        nonres = parse_struct(ATTR_NON_RESIDENT, data, attr.pos + 16,
                        where + attr.pos)
        runs, vcn, lcn = [], nonres.lowest_vcn, 0
        at = attr.pos + nonres.mapping_pairs_offset
        end = attr.pos + attr.head.length
        while at < end and data[at]:
            length_size, offset_size = data[at] & 0x0F, data[at] >> 4
            nxt = at + 1 + length_size + offset_size
            count = int.from_bytes(data[at + 1:at + 1 + length_size],
                                   "little", signed=True)
            if not 0 < length_size <= 8 or offset_size > 8 or nxt > end \
                    or count <= 0:
                raise MapError(f"NTFS bad run {data[at:nxt].hex()} at byte "
                               f"{where + at}")
            if offset_size:
                lcn += int.from_bytes(data[at + 1 + length_size:nxt],
                                      "little", signed=True)
                if lcn < 0 or lcn + count > self.clusters:
                    raise MapError(
                        f"NTFS run of clusters {lcn}-{lcn + count - 1} at "
                        f"byte {where + at} is outside the volume of "
                        f"{self.clusters} clusters")
            runs.append((vcn, lcn if offset_size else None, count))
            vcn += count
            at = nxt
        if at >= end or vcn != nonres.highest_vcn + 1:
            raise MapError(f"NTFS runlist at byte {where + attr.pos} covers "
                           f"VCNs up to {vcn - 1}, its attribute says "
                           f"{nonres.highest_vcn}")
        return nonres, runs

    def find(self, number, type_, base_only=False):
        """The unnamed attributes of `type_` of a record, with those in
        extension records that its $ATTRIBUTE_LIST names."""
        record = self.record(number)
        attrs = list(self.attributes(record))
        found = [a for a in attrs if a.head.type == type_
                 and not a.head.name_length]
        lists = [a for a in attrs if a.head.type == AT_ATTRIBUTE_LIST]
        if not lists or base_only:
            return found
        raw, at, others = self.value(lists[0]), 0, []
        while at + ATTR_LIST_ENTRY.size <= len(raw):
            entry = parse_struct(ATTR_LIST_ENTRY, raw, at, at)
            if entry.length < ATTR_LIST_ENTRY.size:
                raise MapError(f"NTFS MFT record {number}: attribute list "
                               f"entry of {entry.length} bytes at {at}")
            other = entry.mft_reference & MREF_MASK
            if entry.type == type_ and not entry.name_length \
                    and other != number and other not in others:
                others.append(other)
            at += entry.length
        for other in others:
            extension = self.record(other)
            if extension.head.base_mft_record & MREF_MASK != number:
                raise MapError(f"NTFS MFT record {other} at byte "
                               f"{extension.where} is not an extension of "
                               f"record {number}")
            found += [a for a in self.attributes(extension)
                      if a.head.type == type_ and not a.head.name_length]
        return found

    def data_runs(self, number, base_only=False):
        """The runs, data size and initialized size of the unnamed $DATA of
        a metadata file: one stream in order, no sparse runs."""
        extents = []
        for attr in self.find(number, AT_DATA, base_only):
            if not attr.head.non_resident:
                raise MapError(f"NTFS MFT record {number}: $DATA is "
                               "resident")
            extents.append(self.mapping_pairs(attr) + (attr.record.number,))
        extents.sort(key=lambda extent: extent[0].lowest_vcn)
        if not extents or extents[0][0].lowest_vcn != 0:
            raise MapError(f"NTFS MFT record {number} has no $DATA "
                           "attribute starting at VCN 0")
        runs = []
        for nonres, extent, owner in extents:
            if nonres.lowest_vcn != (runs[-1][0] + runs[-1][2] if runs
                                     else 0):
                raise MapError(f"NTFS MFT record {number}: $DATA extent in "
                               f"record {owner} starts at VCN "
                               f"{nonres.lowest_vcn}, not where the one "
                               "before ends")
            runs += extent
        first = extents[0][0]
        end = runs[-1][0] + runs[-1][2] if runs else 0
        sparse = [vcn for vcn, lcn, _ in runs if lcn is None]
        if sparse or not base_only and not (
                0 <= first.data_size <= end * self.cluster):
            raise MapError(f"NTFS MFT record {number}: $DATA of "
                           f"{first.data_size} bytes in {end} clusters, "
                           f"sparse at VCNs {sparse[:3]}")
        return runs, first.data_size, first.initialized_size


def parse_struct(table, data, offset, where):
    """`table` parsed from `data` at `offset`; `where` is its byte offset
    on the volume, for the MapError."""
    return _mapped(table.unpack, data, offset, at=where)


def _mapped(function, *args, **kwargs):
    """A structs helper's result, its TableError raised as a MapError."""
    try:
        return function(*args, **kwargs)
    except TableError as exc:
        raise MapError(str(exc)) from None
