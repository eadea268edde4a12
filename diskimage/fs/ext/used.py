"""Used blocks of an ext2, ext3 or ext4 volume, read from its block bitmaps.

Field names follow the kernel's fs/ext4/ext4.h.  Used is block 0 up to the
end of the superblock, and every cluster whose bit is set in its group's
block bitmap.  A group flagged BLOCK_UNINIT (with uninit_bg or
metadata_csum) has no bitmap on disk; its used clusters are computed the way
the kernel's ext4_init_block_bitmap and e2fsprogs do: the superblock backup
and group descriptor blocks (old style and reserved, or meta_bg's) of the
group, and the bitmaps and inode tables placed in it.  On top of that, and
whatever the bitmaps say, the map always holds every group's superblock
backup, descriptor blocks, bitmaps and inode tables and the MMP block.

Before the map is trusted (docs/filesystems/damaged.md): the metadata and
the internal journal's blocks must be marked used in the bitmaps; every
in-use inode's blocks too (walk.py); each group's descriptor must count
exactly its bitmap's free clusters (the superblock's total may lag: a
warning); with metadata_csum the block bitmaps' checksums must match, and
the descriptors' and superblock's (super.py, csum.py).  Any disagreement
raises MapError.

With bigalloc one bitmap bit is a cluster of 2^s_log_cluster_size bytes;
the map's block_size is then the cluster size.
"""

import struct

from ...errors import TableError
from .super import (COMPAT_HAS_JOURNAL, EXT2_ERROR_FS, EXT2_VALID_FS,
                    EXT4_BG_BLOCK_UNINIT, EXT4_SUPER_MAGIC,
                    INCOMPAT_64BIT, INCOMPAT_MMP, READ_BATCH,
                    RO_COMPAT_METADATA_CSUM, SUPERBLOCK,
                    SUPERBLOCK_OFFSET, Geometry, field_offset)
from ...structs import read_exact
from ..usedmap import (LazyRuns, MapError, UsedMap, bitmap_runs, coalesce,
                       merge_runs, merged, scaled, survey)
from .csum import crc32c, csum_seed, superblock_csum
from .walk import EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL, INODE, Walk


def clipped(runs, ranges):
    """The parts of sorted, coalesced (start, count) `runs` inside the
    sorted, disjoint `ranges`."""
    i = 0
    for start, count in ranges:
        end = start + count
        while i < len(runs) and runs[i][0] + runs[i][1] <= start:
            i += 1
        j = i
        while j < len(runs) and runs[j][0] < end:
            a, b = max(runs[j][0], start), min(runs[j][0] + runs[j][1], end)
            if a < b:
                yield a, b - a
            j += 1

def open_volume(read, size):
    """The UsedMap of the ext2/3/4 volume read by read(offset, length) in a
    partition of `size` bytes; None when there is no ext superblock."""
    raw = read(SUPERBLOCK_OFFSET, SUPERBLOCK.size)
    if len(raw) < 0x3A or struct.unpack_from("<H", raw, 0x38)[0] \
            != EXT4_SUPER_MAGIC:
        return None
    try:
        sb = SUPERBLOCK.unpack(raw, at=SUPERBLOCK_OFFSET)
        umap = _Volume(read, size, sb).used_map()
    except TableError as err:
        raise MapError(str(err)) from None
    # Last, so that a field that is wrong is named for what is wrong in it.
    if sb.s_feature_ro_compat & RO_COMPAT_METADATA_CSUM and \
            superblock_csum(raw) != sb.s_checksum:
        raise MapError(f"superblock checksum {sb.s_checksum:#010x} is not "
                       f"{superblock_csum(raw):#010x} (byte offset "
                       f"{field_offset('s_checksum')})")
    return umap


class _Volume(Walk, Geometry):
    """The used-block map of an ext volume, checked against its counts,
    its metadata and its inodes (walk.py) before it is trusted."""

    def used_map(self):
        descs = self.descriptors()
        # The metadata every bitmap must mark used, named for the error:
        # descriptor blocks, MMP block, every group's superblock backup,
        # descriptors, bitmaps and inode table.  O(groups) runs, kept; the
        # bitmaps' runs are streamed.
        named = [(self.desc_block(i), 1, "a group descriptor block")
                 for i in range(self.gdb)]
        if self.sb.s_feature_incompat & INCOMPAT_MMP:
            self.in_fs(self.sb.s_mmp_block, 1, "MMP block",
                       field_offset("s_mmp_block"))
            named.append((self.sb.s_mmp_block, 1, "the MMP block"))
        self.on_disk, uninit = [], []
        for group, d in enumerate(descs):
            named += [(b, n, f"group {group}'s superblock or descriptors")
                      for b, n in self.base_meta(group)]
            named += [(d.bb, 1, f"group {group}'s block bitmap"),
                      (d.ib, 1, f"group {group}'s inode bitmap"),
                      (d.it, self.itb, f"group {group}'s inode table")]
            if self.csum and d.flags & EXT4_BG_BLOCK_UNINIT:
                uninit.append((self.group_first(group), self.bpg))
            else:
                self.on_disk.append((group, d.bb))
        # Block 0 up to the end of the superblock is always in the map.
        self.meta = list(coalesce(sorted(
            [(0, self.sb_block + 1)] + [(b, n) for b, n, _ in named])))
        # What a BLOCK_UNINIT group's bitmap would hold: the metadata in it.
        self.uninit_meta = list(clipped(self.meta, uninit))
        journal = self._journal(descs)
        jname = f"journal inode {self.sb.s_journal_inum}"
        wanted = sorted(named + [(b, n, jname) for b, n in journal],
                        key=lambda w: (w[0], w[1]))
        # One pass over the bitmaps counts each group and checks that every
        # block the metadata and the inodes hold is marked used.
        used = [0] * self.groups
        metadata_csum = self.sb.s_feature_ro_compat & RO_COMPAT_METADATA_CSUM
        self.verify, self.bad_bitmap, self.descs = metadata_csum, None, descs
        self.seed = csum_seed(self.sb) if metadata_csum else None
        blocks, missing = survey(self._counted(merged(
            iter(self.uninit_meta), self._bitmap_runs()), used), wanted)
        self.verify = False                 # later passes only read
        if missing:
            block, length, what = missing
            raise MapError(f"{what} holds blocks {block}-{block + length - 1}"
                           f" that the block bitmaps mark free")
        # Then every in-use inode's blocks, against the bitmaps (walk.py).
        self.check_inodes(descs, skip={self.sb.s_journal_inum})
        self._check_free(used, descs)
        if self.bad_bitmap:
            raise MapError(self.bad_bitmap)
        total = self.count * self.bs
        return UsedMap(self.kind(), self.bs * self.ratio, total,
                       min((self.first + blocks) * self.bs, total),
                       LazyRuns(lambda: scaled(self.block_runs(), self.bs,
                                               total)),
                       label=self.sb.s_volume_name.split(b"\0")[0].decode(
                           "utf-8", "replace"),
                       uuid=self.uuid(), warnings=self.warnings)

    def _counted(self, runs, used):
        """The (block, count) runs, whole clusters, clipped to the
        filesystem, passed on while each group's used clusters are added
        to `used`."""
        r, cpg = self.ratio, self.bpg // self.ratio
        runs = coalesce((b // r * r, -(-(b + n) // r) * r - b // r * r)
                        for b, n in runs) if r > 1 else runs
        for block, count in runs:
            if block >= self.count:
                return
            count = min(count, self.count - block)
            yield block, count
            c, end = (block - self.first) // r, \
                -(-(block + count - self.first) // r)
            while c < end:
                group = c // cpg
                stop = min(end, (group + 1) * cpg)
                used[group] += stop - c
                c = stop

    def block_runs(self):
        """Used (block, count) runs, ascending, coalesced, within the
        filesystem's blocks (clusters whole with bigalloc): the metadata
        runs merged with the bitmaps' runs, read group by group."""
        runs = merged(iter(self.meta), self._bitmap_runs())
        if self.ratio > 1:
            r = self.ratio
            runs = coalesce((b // r * r, -(-(b + n) // r) * r - b // r * r)
                            for b, n in runs)
        for block, count in runs:
            if block >= self.count:
                return
            yield block, min(count, self.count - block)

    def _verify_bitmap(self, group, bitmap):
        """With metadata_csum, note the first block bitmap whose checksum
        (crc32c of the seed and clusters_per_group/8 bytes, as the kernel's
        ext4_block_bitmap_csum_verify) does not match its descriptor's."""
        d = self.descs[group]
        want = crc32c(self.seed, bitmap[:self.bpg // self.ratio // 8])
        if self.dsz < 0x3A:
            want &= 0xFFFF
        if want != d.bcsum:
            self.bad_bitmap = (f"group {group}'s block bitmap checksum "
                               f"{d.bcsum:#x} is not {want:#x} (descriptor "
                               f"at byte offset {d.at})")

    def _bitmap_runs(self):
        """(block, count) runs of the set bits of the on-disk bitmaps, in
        group order; consecutive bitmap blocks are read together."""
        most, i = max(1, READ_BATCH // self.bs), 0
        while i < len(self.on_disk):
            j = i + 1
            while j < len(self.on_disk) and j - i < most and \
                    self.on_disk[j][1] == self.on_disk[j - 1][1] + 1:
                j += 1
            first = self.on_disk[i][1]
            data = read_exact(self.read, first * self.bs, (j - i) * self.bs,
                              "block bitmap")
            for k in range(j - i):
                group = self.on_disk[i + k][0]
                bitmap = data[k * self.bs:(k + 1) * self.bs]
                if self.verify and self.bad_bitmap is None:
                    self._verify_bitmap(group, bitmap)
                nbits = self.group_clusters(group)
                start = self.group_first(group)
                # Only the part between the first and last non-zero bytes.
                body = bitmap[:-(-nbits // 8)].rstrip(b"\0")
                skip = len(body) - len(body.lstrip(b"\0"))
                for c, n in bitmap_runs(body[skip:], min(
                        nbits, 8 * len(body)) - 8 * skip, 8 * skip):
                    yield start + c * self.ratio, n * self.ratio
            i = j

    def _check_free(self, used, descs):
        """`used`: each group's used clusters by its bitmap.  Each group's
        descriptor must count its bitmap's free clusters exactly (the
        kernel changes both in one transaction; e2fsck -fn fails on any
        difference).  The superblock's total may lag (the kernel writes it
        from its per-cpu counters only now and then; e2fsck -fn passes):
        a warning."""
        for group, d in enumerate(descs):
            free = self.group_clusters(group) - used[group]
            if free != d.free:
                raise MapError(f"group {group}'s descriptor counts {d.free} "
                               f"free clusters, its block bitmap leaves "
                               f"{free} (byte offset {d.at})")
        sb = self.sb
        hi = sb.s_free_blocks_count_hi \
            if sb.s_feature_incompat & INCOMPAT_64BIT else 0
        in_sb = (sb.s_free_blocks_count_lo | hi << 32) // self.ratio
        counted = sum(d.free for d in descs)
        if in_sb != counted:
            self.warnings.append(f"the superblock counts {in_sb} free "
                                 f"clusters, the block bitmaps and group "
                                 f"descriptors {counted}")
        if not sb.s_state & EXT2_VALID_FS:
            self.warnings.append("not cleanly unmounted")
        if sb.s_state & EXT2_ERROR_FS:
            self.warnings.append("the kernel found errors on it")

    def _journal(self, descs):
        """The internal journal's (block, count) runs, sorted; none without
        a journal."""
        sb = self.sb
        if not sb.s_feature_compat & COMPAT_HAS_JOURNAL or \
                not sb.s_journal_inum:
            return []
        ino = sb.s_journal_inum
        group, index = divmod(ino - 1, sb.s_inodes_per_group)
        if group >= self.groups:
            raise MapError(f"journal inode {ino} does not exist (byte offset "
                           f"{field_offset('s_journal_inum')})")
        at = descs[group][2] * self.bs + index * self.isz
        inode = INODE.read(self.read, at)
        if inode.i_flags & EXT4_INLINE_DATA_FL:
            return []
        what = f"journal inode {ino}"
        # Blocks the walk may read: a looping or bloated map is an error.
        self.budget = 2 * ((inode.i_size_lo | inode.i_size_high << 32)
                           // self.bs) + 64
        if inode.i_flags & EXT4_EXTENTS_FL:
            journal = list(self._extents(inode.i_block, at + 0x28, what, 5))
        else:
            journal = merge_runs(self._indirect(inode.i_block, at + 0x28,
                                                what))
        return sorted(journal)
