"""The btrfs superblock: its fields, its checksum, the device item it holds
and the chunks of its sys_chunk_array.

Offsets and names follow the kernel's include/uapi/linux/btrfs_tree.h
(struct btrfs_super_block, btrfs_dev_item, btrfs_chunk, btrfs_stripe);
every integer is little-endian.  docs/filesystems/btrfs.md lists them.
"""

import hashlib
import struct

from .. import crc32c

from ...errors import TableError
from ...structs import Struct
from ..usedmap import MapError, read_exact

SUPER_OFFSET = 0x10000
SUPER_SIZE = 4096
#: The superblock and its mirrors: 64 KiB, 64 MiB, 256 GiB (the kernel's
#: btrfs_sb_offset: 16 KiB << 12 * mirror, the first at 64 KiB).
MIRRORS = (0x10000, 0x4000000, 0x4000000000)
MAGIC = b"_BHRfS_M"

SUPERBLOCK = Struct("btrfs superblock", [
    ("32s", "csum"), ("16s", "fsid"), ("Q", "bytenr"), ("Q", "flags"),
    ("8s", "magic"), ("Q", "generation"), ("Q", "root"),
    ("Q", "chunk_root"), ("Q", "log_root"), ("Q", "log_root_transid"),
    ("Q", "total_bytes"), ("Q", "bytes_used"), ("Q", "root_dir_objectid"),
    ("Q", "num_devices"), ("I", "sectorsize"), ("I", "nodesize"),
    ("I", "leafsize"), ("I", "stripesize"), ("I", "sys_chunk_array_size"),
    ("Q", "chunk_root_generation"), ("Q", "compat_flags"),
    ("Q", "compat_ro_flags"), ("Q", "incompat_flags"), ("H", "csum_type"),
    ("B", "root_level"), ("B", "chunk_root_level"), ("B", "log_root_level"),
    ("98s", "dev_item"), ("256s", "label"), ("Q", "cache_generation"),
    ("Q", "uuid_tree_generation"), ("16s", "metadata_uuid"),
    ("Q", "nr_global_roots"), ("216s", "reserved"),
    ("2048s", "sys_chunk_array"), ("1237s", "super_roots_and_padding"),
], size=SUPER_SIZE)

DEV_ITEM = Struct("btrfs dev item", [
    ("Q", "devid"), ("Q", "total_bytes"), ("Q", "bytes_used"),
    ("I", "io_align"), ("I", "io_width"), ("I", "sector_size"),
    ("Q", "type"), ("Q", "generation"), ("Q", "start_offset"),
    ("I", "dev_group"), ("B", "seek_speed"), ("B", "bandwidth"),
    ("16s", "uuid"), ("16s", "fsid"),
], size=98)

DISK_KEY = Struct("btrfs disk key", [
    ("Q", "objectid"), ("B", "type"), ("Q", "offset"),
], size=17)

CHUNK = Struct("btrfs chunk", [
    ("Q", "length"), ("Q", "owner"), ("Q", "stripe_len"), ("Q", "type"),
    ("I", "io_align"), ("I", "io_width"), ("I", "sector_size"),
    ("H", "num_stripes"), ("H", "sub_stripes"),
], size=48)
STRIPE = Struct("btrfs stripe", [
    ("Q", "devid"), ("Q", "offset"), ("16s", "dev_uuid"),
], size=32)

CHUNK_ITEM_KEY = 228
# incompat: the fsid in tree blocks is metadata_uuid (btrfstune -m)
INCOMPAT_METADATA_UUID = 1 << 10
# compat_ro: block group items live in their own tree (objectid 11)
COMPAT_RO_BLOCK_GROUP_TREE = 1 << 3

#: incompat features whose blocks the chunk and extent trees describe:
#: mixed_backref, default_subvol, mixed_groups, compress_lzo, compress_zstd,
#: big_metadata, extended_iref, raid56 (its chunks are refused one by one),
#: skinny_metadata, no_holes, metadata_uuid, raid1c34 (likewise).  Not
#: simple_quota (1 << 16), which btrfs-progs 6.2 here cannot make to test.
INCOMPAT_KNOWN = (1 << 12) - 1
INCOMPAT_NAMES = {1 << 12: "zoned", 1 << 13: "extent_tree_v2",
                  1 << 14: "raid_stripe_tree"}
#: compat_ro: free_space_tree, free_space_tree_valid, verity,
#: block_group_tree
COMPAT_RO_KNOWN = 0xf
#: superblock flags: written, reloc, error, seeding
FLAGS_KNOWN = 1 | 2 | 4 | 1 << 32
FLAG_NAMES = {1 << 33: "metadump", 1 << 34: "metadump_v2",
              1 << 35: "changing_fsid", 1 << 36: "changing_fsid_v2",
              1 << 38: "changing_bg_tree", 1 << 39: "changing_data_csum",
              1 << 40: "changing_meta_csum"}

# block group / chunk type flags
DATA, SYSTEM, METADATA = 1, 2, 4
DUP = 1 << 5
PROFILES = {1 << 3: "RAID0", 1 << 4: "RAID1", 1 << 5: "DUP",
            1 << 6: "RAID10", 1 << 7: "RAID5", 1 << 8: "RAID6",
            1 << 9: "RAID1C3", 1 << 10: "RAID1C4"}

_CSUM_NAMES = {0: "crc32c", 1: "xxhash64", 2: "sha256", 3: "blake2b"}


def checksum(csum_type, data):
    """The checksum btrfs stores in the first bytes of a superblock or
    tree block, of `data` (everything after the 32-byte csum field)."""
    if csum_type == 0:
        return struct.pack("<I", crc32c.value(data))
    if csum_type == 2:
        return hashlib.sha256(data).digest()
    if csum_type == 3:
        return hashlib.blake2b(data, digest_size=32).digest()
    raise MapError(f"btrfs checksum type {_CSUM_NAMES.get(csum_type, csum_type)}"
                   f" is not read here")


def verify(csum_type, block, what):
    """MapError unless the checksum stored in `block` matches its bytes."""
    want = checksum(csum_type, block[32:])
    if block[:len(want)] != want:
        raise MapError(f"btrfs {what}: checksum mismatch")


class Chunk:
    """A chunk: `length` bytes of logical addresses at `logical`, held by
    `stripes` [(devid, physical offset)], of block group type `type`."""

    def __init__(self, logical, length, type_, stripes):
        self.logical, self.length, self.type = logical, length, type_
        self.stripes = stripes

    def profile(self):
        names = [name for bit, name in PROFILES.items() if self.type & bit]
        return names[0] if names else "single"

    def kind(self):
        return "/".join(name for bit, name in ((DATA, "data"),
                                               (METADATA, "metadata"),
                                               (SYSTEM, "system"))
                        if self.type & bit) or "unknown"


def parse_chunk(logical, data, at):
    """The Chunk of a btrfs_chunk item at logical address `logical`."""
    head = CHUNK.unpack(data, 0, at=at)
    stripes = []
    for i in range(head.num_stripes):
        stripe = STRIPE.unpack(data, CHUNK.size + i * STRIPE.size,
                               at=at + CHUNK.size + i * STRIPE.size)
        stripes.append((stripe.devid, stripe.offset))
    return Chunk(logical, head.length, head.type, stripes)


def read_super(read):
    """The parsed, checksum-verified primary superblock."""
    raw = read_exact(read, SUPER_OFFSET, SUPER_SIZE, "btrfs superblock")
    try:
        sb = SUPERBLOCK.unpack(raw, at=SUPER_OFFSET)
    except TableError as err:
        raise MapError(str(err)) from None
    if sb.magic != MAGIC:
        raise MapError("no btrfs superblock at 64 KiB")
    verify(sb.csum_type, raw, "superblock at 64 KiB")
    if sb.bytenr != SUPER_OFFSET:
        raise MapError(f"btrfs superblock at 64 KiB says it is at byte "
                       f"{sb.bytenr}")
    _check_sizes(sb)
    _check_features(sb)
    return sb


def _power_of_two(n, low, high):
    return low <= n <= high and not n & (n - 1)


def _check_sizes(sb):
    """Sector and node sizes the kernel accepts (4 KiB to 64 KiB, powers
    of two, nodes no smaller than sectors): a block is never read past
    64 KiB at a time."""
    if not _power_of_two(sb.sectorsize, 4096, 65536) or \
            not _power_of_two(sb.nodesize, sb.sectorsize, 65536):
        raise MapError(f"btrfs superblock: sector size {sb.sectorsize}, "
                       f"node size {sb.nodesize} are not ones btrfs uses")


def _check_features(sb):
    """Only the features whose blocks this map finds: extent tree v2,
    zoned devices, the raid stripe tree, an unknown feature, or a
    conversion under way (the CHANGING_* and metadump flags) are refused,
    not guessed."""
    for what, flags, known in (("incompat", sb.incompat_flags, INCOMPAT_KNOWN),
                               ("compat_ro", sb.compat_ro_flags,
                                COMPAT_RO_KNOWN),
                               ("superblock flags", sb.flags, FLAGS_KNOWN)):
        extra = flags & ~known
        if extra:
            names = [INCOMPAT_NAMES.get(bit, hex(bit)) if what == "incompat"
                     else FLAG_NAMES.get(bit, hex(bit)) if what[0] == "s"
                     else hex(bit)
                     for bit in (1 << i for i in range(64)) if extra & bit]
            raise MapError(f"btrfs {what} {', '.join(names)}: not mapped "
                           f"here")


def sys_chunks(sb):
    """The chunks of the superblock's sys_chunk_array (those that hold the
    chunk tree): (key, CHUNK, stripes) entries, packed end to end."""
    array = sb.sys_chunk_array[:sb.sys_chunk_array_size]
    if sb.sys_chunk_array_size > len(sb.sys_chunk_array):
        raise MapError(f"btrfs sys_chunk_array_size "
                       f"{sb.sys_chunk_array_size} is past its 2048 bytes")
    chunks, pos = [], 0
    try:
        while pos < len(array):
            key = DISK_KEY.unpack(array, pos, at=0x32b + pos)
            if key.type != CHUNK_ITEM_KEY:
                raise MapError(f"btrfs sys_chunk_array: key type {key.type} "
                               f"at byte {pos} is not a chunk item")
            pos += DISK_KEY.size
            head = CHUNK.unpack(array, pos, at=0x32b + pos)
            size = CHUNK.size + head.num_stripes * STRIPE.size
            if head.num_stripes == 0:
                raise MapError(f"btrfs sys_chunk_array: the chunk at "
                               f"{key.offset} has no stripes")
            if pos + size > len(array):
                raise MapError(f"btrfs sys_chunk_array: the chunk at "
                               f"{key.offset} ({head.num_stripes} stripes) "
                               f"runs past the array")
            chunks.append(parse_chunk(key.offset, array[pos:pos + size],
                                      0x32b + pos))
            pos += size
    except TableError as err:
        raise MapError(str(err)) from None
    return chunks
