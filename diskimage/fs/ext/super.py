"""The superblock and group descriptors of an ext2, ext3 or ext4 volume:
parsed, checked, and the geometry that follows from them (where each
group's superblock backup, descriptor blocks, bitmaps and inode table are).

Field names follow the kernel's fs/ext4/ext4.h.  :func:`ext_kind` tells
ext2, ext3, ext4 (and jbd, ext4dev) apart by the feature rules of
libblkid, so that capture names a filesystem as `blkid -p` does.
"""

import collections
import struct

from ...structs import Struct, read_exact
from ..usedmap import MapError
from .csum import csum_seed, desc_csum

SUPERBLOCK_OFFSET = 1024
EXT4_SUPER_MAGIC = 0xEF53
SUPERBLOCK = Struct("ext4 superblock", [
    ("I", "s_inodes_count"), ("I", "s_blocks_count_lo"),
    ("I", "s_r_blocks_count_lo"), ("I", "s_free_blocks_count_lo"),
    ("I", "s_free_inodes_count"), ("I", "s_first_data_block"),
    ("I", "s_log_block_size"), ("I", "s_log_cluster_size"),
    ("I", "s_blocks_per_group"), ("I", "s_clusters_per_group"),
    ("I", "s_inodes_per_group"), ("I", "s_mtime"), ("I", "s_wtime"),
    ("H", "s_mnt_count"), ("h", "s_max_mnt_count"), ("H", "s_magic"),
    ("H", "s_state"), ("H", "s_errors"), ("H", "s_minor_rev_level"),
    ("I", "s_lastcheck"), ("I", "s_checkinterval"), ("I", "s_creator_os"),
    ("I", "s_rev_level"), ("H", "s_def_resuid"), ("H", "s_def_resgid"),
    ("I", "s_first_ino"), ("H", "s_inode_size"), ("H", "s_block_group_nr"),
    ("I", "s_feature_compat"), ("I", "s_feature_incompat"),
    ("I", "s_feature_ro_compat"), ("16s", "s_uuid"), ("16s", "s_volume_name"),
    ("64s", "s_last_mounted"), ("I", "s_algorithm_usage_bitmap"),
    ("B", "s_prealloc_blocks"), ("B", "s_prealloc_dir_blocks"),
    ("H", "s_reserved_gdt_blocks"), ("16s", "s_journal_uuid"),
    ("I", "s_journal_inum"), ("I", "s_journal_dev"), ("I", "s_last_orphan"),
    ("16s", "s_hash_seed"), ("B", "s_def_hash_version"),
    ("B", "s_jnl_backup_type"), ("H", "s_desc_size"),
    ("I", "s_default_mount_opts"), ("I", "s_first_meta_bg"),
    ("I", "s_mkfs_time"), ("68s", "s_jnl_blocks"), ("I", "s_blocks_count_hi"),
    ("I", "s_r_blocks_count_hi"), ("I", "s_free_blocks_count_hi"),
    ("H", "s_min_extra_isize"), ("H", "s_want_extra_isize"), ("I", "s_flags"),
    ("H", "s_raid_stride"), ("H", "s_mmp_update_interval"),
    ("Q", "s_mmp_block"), ("I", "s_raid_stripe_width"),
    ("B", "s_log_groups_per_flex"), ("B", "s_checksum_type"),
    ("B", "s_encryption_level"), ("B", "s_reserved_pad"),
    ("Q", "s_kbytes_written"), ("I", "s_snapshot_inum"),
    ("I", "s_snapshot_id"), ("Q", "s_snapshot_r_blocks_count"),
    ("I", "s_snapshot_list"), ("I", "s_error_count"),
    ("I", "s_first_error_time"), ("I", "s_first_error_ino"),
    ("Q", "s_first_error_block"), ("32s", "s_first_error_func"),
    ("I", "s_first_error_line"), ("I", "s_last_error_time"),
    ("I", "s_last_error_ino"), ("I", "s_last_error_line"),
    ("Q", "s_last_error_block"), ("32s", "s_last_error_func"),
    ("64s", "s_mount_opts"), ("I", "s_usr_quota_inum"),
    ("I", "s_grp_quota_inum"), ("I", "s_overhead_clusters"),
    ("I", "s_backup_bgs_0"), ("I", "s_backup_bgs_1"),
    ("4s", "s_encrypt_algos"), ("16s", "s_encrypt_pw_salt"),
    ("I", "s_lpf_ino"), ("I", "s_prj_quota_inum"), ("I", "s_checksum_seed"),
    ("B", "s_wtime_hi"), ("B", "s_mtime_hi"), ("B", "s_mkfs_time_hi"),
    ("B", "s_lastcheck_hi"), ("B", "s_first_error_time_hi"),
    ("B", "s_last_error_time_hi"), ("B", "s_first_error_errcode"),
    ("B", "s_last_error_errcode"), ("H", "s_encoding"),
    ("H", "s_encoding_flags"), ("I", "s_orphan_file_inum"),
    ("376s", "s_reserved"), ("I", "s_checksum"),
], size=1024)
# A 32-byte descriptor (without 64bit) is the first half, the rest zero.
GROUP_DESC = Struct("ext4 group descriptor", [
    ("I", "bg_block_bitmap_lo"), ("I", "bg_inode_bitmap_lo"),
    ("I", "bg_inode_table_lo"), ("H", "bg_free_blocks_count_lo"),
    ("H", "bg_free_inodes_count_lo"), ("H", "bg_used_dirs_count_lo"),
    ("H", "bg_flags"), ("I", "bg_exclude_bitmap_lo"),
    ("H", "bg_block_bitmap_csum_lo"), ("H", "bg_inode_bitmap_csum_lo"),
    ("H", "bg_itable_unused_lo"), ("H", "bg_checksum"),
    ("I", "bg_block_bitmap_hi"), ("I", "bg_inode_bitmap_hi"),
    ("I", "bg_inode_table_hi"), ("H", "bg_free_blocks_count_hi"),
    ("H", "bg_free_inodes_count_hi"), ("H", "bg_used_dirs_count_hi"),
    ("H", "bg_itable_unused_hi"), ("I", "bg_exclude_bitmap_hi"),
    ("H", "bg_block_bitmap_csum_hi"), ("H", "bg_inode_bitmap_csum_hi"),
    ("I", "bg_reserved"),
], size=64)
COMPAT_HAS_JOURNAL = 0x4
COMPAT_SPARSE_SUPER2 = 0x200
RO_COMPAT_SPARSE_SUPER = 0x1
RO_COMPAT_GDT_CSUM = 0x10
RO_COMPAT_BIGALLOC = 0x200
RO_COMPAT_METADATA_CSUM = 0x400
INCOMPAT_RECOVER = 0x4
INCOMPAT_JOURNAL_DEV = 0x8
INCOMPAT_META_BG = 0x10
INCOMPAT_64BIT = 0x80
INCOMPAT_MMP = 0x100
INCOMPAT_FLEX_BG = 0x200
# filetype, recover, meta_bg, extents, 64bit, mmp, flex_bg, ea_inode,
# dirdata, csum_seed, largedir, inline_data, encrypt, casefold
INCOMPAT_KNOWN = 0x2 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | \
    0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000
EXT2_VALID_FS, EXT2_ERROR_FS = 0x1, 0x2
EXT4_BG_INODE_UNINIT, EXT4_BG_BLOCK_UNINIT = 0x1, 0x2
READ_BATCH = 4 << 20
# What descriptors() gives of each group; `at` is the descriptor's byte
# offset, `unused` bg_itable_unused (inodes at the table's end never used),
# `bcsum` and `icsum` the block and inode bitmaps' checksums (their high
# halves only in descriptors of 0x3A and 0x3C bytes or more,
# EXT4_BG_BLOCK_BITMAP_CSUM_HI_LOCATION, EXT4_BG_INODE_BITMAP_CSUM_HI_END).
Desc = collections.namedtuple("Desc",
                              "bb ib it free flags unused at bcsum icsum")


# What ext2 and ext3 support, as libblkid (superblocks/ext.c) tells them
# from ext4.
EXT2_RO_COMPAT_SUPP = 0x1 | 0x2 | 0x4      # sparse_super, large_file, btree
EXT2_INCOMPAT_SUPP = 0x2 | 0x10            # filetype, meta_bg
EXT3_RO_COMPAT_SUPP = EXT2_RO_COMPAT_SUPP
EXT3_INCOMPAT_SUPP = 0x2 | 0x4 | 0x10      # filetype, recover, meta_bg
EXT2_FLAGS_TEST_FILESYS = 0x4


def ext_kind(compat, incompat, ro_compat, flags):
    """"ext2", "ext3", "ext4", "ext4dev", "jbd" (an external journal) or
    None, from the superblock's feature words and s_flags, by libblkid's
    rules: a journal device is jbd; the test flag makes ext4dev; any
    feature ext3 does not know (extents, 64bit, flex_bg, huge_file,
    metadata_csum, ...) makes ext4; else a journal makes ext3; else, when
    ext2 knows every feature, ext2."""
    if incompat & INCOMPAT_JOURNAL_DEV:
        return "jbd"
    if flags & EXT2_FLAGS_TEST_FILESYS:
        return "ext4dev"
    if ro_compat & ~EXT3_RO_COMPAT_SUPP or incompat & ~EXT3_INCOMPAT_SUPP:
        return "ext4"
    if compat & COMPAT_HAS_JOURNAL:
        return "ext3"
    if ro_compat & ~EXT2_RO_COMPAT_SUPP or incompat & ~EXT2_INCOMPAT_SUPP:
        return None
    return "ext2"


def field_offset(name):
    """The byte offset of a superblock field, for error messages."""
    fields = SUPERBLOCK.record._fields
    return SUPERBLOCK_OFFSET + struct.calcsize(
        "<" + "".join(SUPERBLOCK.codes[:fields.index(name)]))


class Geometry:
    """The layout of an ext volume from its superblock `sb`: checked on
    creation, a MapError naming the field and its byte offset if not sane."""

    def __init__(self, read, size, sb):
        self.read, self.sb, self.warnings = read, sb, []
        self._geometry(size)

    def _check(self, ok, message, field):
        if not ok:
            raise MapError(f"{message} (byte offset {field_offset(field)})")

    def _within(self, value, low, high, field, what=None):
        self._check(low <= value <= high, f"{what or field} {value} is not "
                    f"{low}-{high}", field)

    def _geometry(self, size):
        sb, check, within = self.sb, self._check, self._within
        incompat, ro = sb.s_feature_incompat, sb.s_feature_ro_compat
        check(not incompat & INCOMPAT_JOURNAL_DEV, "an external journal "
              "device, not a filesystem", "s_feature_incompat")
        check(not incompat & ~INCOMPAT_KNOWN, f"unknown incompatible "
              f"features {incompat & ~INCOMPAT_KNOWN:#x}",
              "s_feature_incompat")
        check(not incompat & INCOMPAT_RECOVER, "the journal needs recovery: "
              "the bitmaps on disk may be older than the journal",
              "s_feature_incompat")
        within(sb.s_log_block_size, 0, 6, "s_log_block_size")
        self.bs = bs = 1024 << sb.s_log_block_size
        self.ratio, self.bpg = 1, sb.s_blocks_per_group
        if ro & RO_COMPAT_BIGALLOC:
            shift = sb.s_log_cluster_size - sb.s_log_block_size
            within(shift, 0, 16, "s_log_cluster_size", "cluster shift")
            self.ratio = 1 << shift
            check(self.bpg == sb.s_clusters_per_group << shift, f"s_blocks_"
                  f"per_group {self.bpg} is not s_clusters_per_group "
                  f"{sb.s_clusters_per_group} clusters", "s_blocks_per_group")
        within(self.bpg // self.ratio, 8, 8 * bs, "s_blocks_per_group",
               "clusters per group")
        self.count = sb.s_blocks_count_lo
        if incompat & INCOMPAT_64BIT:
            self.count |= sb.s_blocks_count_hi << 32
        self.first = sb.s_first_data_block
        within(self.first, 0, int(bs == 1024 and self.ratio == 1),
               "s_first_data_block")
        check(self.first < self.count <= size // bs, f"filesystem of "
              f"{self.count} blocks of {bs} bytes is empty or larger than "
              f"the partition of {size} bytes", "s_blocks_count_lo")
        self.groups = -(-(self.count - self.first) // self.bpg)
        ipg = sb.s_inodes_per_group
        within(ipg, 1, 8 * bs, "s_inodes_per_group")
        check(sb.s_inodes_count == ipg * self.groups, f"s_inodes_count "
              f"{sb.s_inodes_count} is not {self.groups} groups of {ipg} "
              f"inodes ({self.count} blocks)", "s_inodes_count")
        self.isz = sb.s_inode_size if sb.s_rev_level else 128
        check(128 <= self.isz <= bs and not self.isz & (self.isz - 1),
              f"s_inode_size {self.isz} is not a power of 2 from 128 to {bs}",
              "s_inode_size")
        self.itb = -(-ipg * self.isz // bs)
        self.dsz = sb.s_desc_size if incompat & INCOMPAT_64BIT else 32
        check(32 <= self.dsz <= 1024 and not self.dsz & (self.dsz - 1) and
              (self.dsz >= 64 or not incompat & INCOMPAT_64BIT), f"s_desc_"
              f"size {self.dsz} is not a power of 2 from 64 to 1024",
              "s_desc_size")
        self.dpb = bs // self.dsz
        self.gdb = -(-self.groups // self.dpb)
        self.meta_bg = bool(incompat & INCOMPAT_META_BG)
        within(sb.s_first_meta_bg if self.meta_bg else 0, 0, self.gdb,
               "s_first_meta_bg")
        within(sb.s_reserved_gdt_blocks, 0, bs // 4, "s_reserved_gdt_blocks")
        self.old_gdb = sb.s_first_meta_bg if self.meta_bg else self.gdb
        self.sb_block = SUPERBLOCK_OFFSET // bs     # the primary superblock
        check(self.sb_block + 1 + self.old_gdb + sb.s_reserved_gdt_blocks <=
              min(self.count, self.first + self.bpg), f"{self.old_gdb} "
              f"descriptor blocks and {sb.s_reserved_gdt_blocks} reserved "
              f"ones do not fit in group 0", "s_reserved_gdt_blocks")
        self.csum = bool(ro & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM))
        if sb.s_feature_compat & COMPAT_SPARSE_SUPER2:
            self.backups = {0} | {g for g in (sb.s_backup_bgs_0,
                                              sb.s_backup_bgs_1)
                                  if 0 < g < self.groups}
        elif ro & RO_COMPAT_SPARSE_SUPER:
            self.backups = {0, 1} | {b ** k for b in (3, 5, 7)
                                     for k in range(1, 33)
                                     if b ** k < self.groups}
        else:
            self.backups = None                     # every group

    def has_super(self, group):
        return self.backups is None or group in self.backups

    def group_first(self, group):
        return self.first + group * self.bpg

    def group_clusters(self, group):
        blocks = min(self.bpg, self.count - self.group_first(group))
        return -(-blocks // self.ratio)

    def desc_block(self, index):
        """Where descriptor block `index` is (the kernel's descriptor_loc)."""
        if not self.meta_bg or index < self.sb.s_first_meta_bg:
            return self.sb_block + 1 + index
        group = index * self.dpb
        base = self.sb_block if group == 0 else self.group_first(group)
        return base + self.has_super(group)

    def base_meta(self, group):
        """Block runs of the superblock backup and descriptor blocks that
        `group` holds (the kernel's ext4_num_base_meta_clusters)."""
        base = self.sb_block if group == 0 else self.group_first(group)
        runs, has_super = [], self.has_super(group)
        if has_super:
            runs.append((base, 1))
        if not self.meta_bg or group // self.dpb < self.sb.s_first_meta_bg:
            if has_super:
                runs.append((base + 1, self.old_gdb +
                             self.sb.s_reserved_gdt_blocks))
        elif group % self.dpb in (0, 1, self.dpb - 1):
            runs.append((base + has_super, 1))
        return runs

    def blocks(self, numbers, what):
        """(block, data) of each block in `numbers`, contiguous ones read
        together."""
        numbers = sorted(numbers)
        i, most = 0, max(1, READ_BATCH // self.bs)
        while i < len(numbers):
            j = i + 1
            while j < len(numbers) and j - i < most and \
                    numbers[j] == numbers[j - 1] + 1:
                j += 1
            data = read_exact(self.read, numbers[i] * self.bs,
                              (j - i) * self.bs, what)
            for k in range(j - i):
                yield numbers[i + k], data[k * self.bs:(k + 1) * self.bs]
            i = j

    def in_fs(self, block, length, what, at):
        if not (self.first <= block and block + length <= self.count):
            raise MapError(f"{what} at block {block} (+{length}) is outside "
                           f"the filesystem's blocks {self.first}-"
                           f"{self.count - 1} (byte offset {at})")

    def descriptors(self):
        """Each group's (block bitmap, inode bitmap, inode table, free
        clusters, flags), checked to lie inside the filesystem."""
        where = {self.desc_block(i): i for i in range(self.gdb)}
        for block in where:
            self.in_fs(block, 1, "group descriptor block", SUPERBLOCK_OFFSET)
        if len(where) < self.gdb:
            raise MapError(f"{self.gdb} group descriptor blocks share "
                           f"{len(where)} places (byte offset "
                           f"{field_offset('s_first_meta_bg')})")
        flex = self.sb.s_feature_incompat & INCOMPAT_FLEX_BG
        metadata_csum = self.sb.s_feature_ro_compat & RO_COMPAT_METADATA_CSUM
        seed = csum_seed(self.sb) if metadata_csum else 0
        sums = []
        descs = [None] * self.groups
        for block, data in self.blocks(where, "group descriptors"):
            first = where[block] * self.dpb
            for k in range(min(self.dpb, self.groups - first)):
                group, at = first + k, block * self.bs + k * self.dsz
                raw = data[k * self.dsz:(k + 1) * self.dsz]
                d = GROUP_DESC.unpack(raw[:64].ljust(64, b"\0"), at=at)
                bb = d.bg_block_bitmap_lo | d.bg_block_bitmap_hi << 32
                ib = d.bg_inode_bitmap_lo | d.bg_inode_bitmap_hi << 32
                it = d.bg_inode_table_lo | d.bg_inode_table_hi << 32
                free = d.bg_free_blocks_count_lo | \
                    d.bg_free_blocks_count_hi << 16
                start = self.group_first(group)
                for what, loc, length in (("block bitmap", bb, 1),
                                          ("inode bitmap", ib, 1),
                                          ("inode table", it, self.itb)):
                    self.in_fs(loc, length, f"group {group}'s {what}", at)
                    if not flex and not (start <= loc and loc + length <=
                                         start + self.bpg):
                        raise MapError(f"group {group}'s {what} at block "
                                       f"{loc} is outside its group without "
                                       f"flex_bg (byte offset {at})")
                if free > self.group_clusters(group):
                    raise MapError(f"group {group} counts {free} free of its "
                                   f"{self.group_clusters(group)} clusters "
                                   f"(byte offset {at})")
                if group == self.groups - 1 and self.csum and \
                        d.bg_flags & EXT4_BG_BLOCK_UNINIT:
                    raise MapError(f"the last group {group} is flagged "
                                   f"BLOCK_UNINIT: its bitmap's padding "
                                   f"cannot be computed (byte offset {at})")
                if self.csum:
                    sums.append((group, raw, d.bg_checksum, at))
                descs[group] = Desc(bb, ib, it, free, d.bg_flags,
                                    d.bg_itable_unused_lo |
                                    d.bg_itable_unused_hi << 16, at,
                                    d.bg_block_bitmap_csum_lo |
                                    (d.bg_block_bitmap_csum_hi << 16
                                     if self.dsz >= 0x3A else 0),
                                    d.bg_inode_bitmap_csum_lo |
                                    (d.bg_inode_bitmap_csum_hi << 16
                                     if self.dsz >= 0x3C else 0))
        self._no_overlap(descs)
        # Checksums last, so that a descriptor that is wrong is named for
        # what is wrong in it.
        for group, raw, found, at in sums:
            want = desc_csum(self.sb, metadata_csum, seed, group, raw)
            if want != found:
                raise MapError(f"group {group}'s descriptor checksum "
                               f"{found:#06x} is not {want:#06x} (byte "
                               f"offset {at})")
        return descs

    def _no_overlap(self, descs):
        """No two of the superblocks, descriptor blocks, bitmaps and inode
        tables share a block (a descriptor pointing at block 0 or at another
        group's table is damage, not a layout)."""
        places = []
        for group, d in enumerate(descs):
            places += [(b, n, f"group {group}'s superblock or descriptors")
                       for b, n in self.base_meta(group)]
            places += [(d.bb, 1, f"group {group}'s block bitmap"),
                       (d.ib, 1, f"group {group}'s inode bitmap"),
                       (d.it, self.itb, f"group {group}'s inode table")]
        places.sort(key=lambda p: p[0])
        for (b1, n1, w1), (b2, n2, w2) in zip(places, places[1:]):
            if b2 < b1 + n1:
                raise MapError(f"{w2} at block {b2} lies in {w1} at blocks "
                               f"{b1}-{b1 + n1 - 1}")

    def kind(self):
        sb = self.sb
        return ext_kind(sb.s_feature_compat, sb.s_feature_incompat,
                        sb.s_feature_ro_compat, sb.s_flags)

    def uuid(self):
        h = self.sb.s_uuid.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
