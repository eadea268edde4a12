"""Used blocks of an XFS volume: everything its free space btrees do not
hold.

Each allocation group's AGF roots a B+tree of the free extents by block
number (the bnobt: "ABTB" blocks in v4, "AB3B" with v5's CRC header).  The
walk goes down the tree in key order (so the extents come sorted) and
checks every block: its magic, its level (one less than its parent's), its
record count, that v5 blocks name their own address, the filesystem and
the AG, that each pointer and each extent lies inside the AG, and that the
extents ascend without touching or overlapping.  Their sum must be the
AGF's agf_freeblks and the longest its agf_longest, and the btree by size
(the cntbt: "ABTC" / "AB3C") must hold the same extents (compared by
count, total and two sums).  What is not free is used: the AG headers, the
free list (AGFL), inode chunks, every btree, the internal log (which must
not be free) and all file data.

A first pass over the runs counts and checks, keeping nothing; the map's
runs are made again, AG by AG, each time they are read (usedmap.LazyRuns),
and checked again as they are.  The log must be clean (log.check_clean):
after a crash the btrees on disk may lack allocations only the log holds.
"""

import bisect
import struct

from ...errors import TableError
from ...structs import read_exact
from ..usedmap import LazyRuns, MapError, UsedMap, coalesce, survey
from . import log
from .super import (BTREE_CRC_OFF, BTREE_SHORT, BTREE_SHORT_CRC, NULLAGBLOCK,
                    XFS_ABTB_CRC_MAGIC, XFS_ABTB_MAGIC, XFS_ABTC_CRC_MAGIC,
                    XFS_ABTC_MAGIC, XFS_BTREE_MAXLEVELS, Geometry, crc_ok)

REC = struct.Struct(">II")            # xfs_alloc_rec: startblock, blockcount
PTR = struct.Struct(">I")             # xfs_alloc_ptr_t


def open_volume(read, size):
    """The UsedMap of the XFS volume read by read(offset, length) in a
    partition of `size` bytes; MapError when it cannot be trusted."""
    volume = _Volume(read, size)
    return volume.used_map()


class _Volume(Geometry):

    def __init__(self, read, size):
        super().__init__(read, size)
        self.header = BTREE_SHORT_CRC if self.v5 else BTREE_SHORT
        self.magics = {"bno": XFS_ABTB_CRC_MAGIC if self.v5
                       else XFS_ABTB_MAGIC,
                       "cnt": XFS_ABTC_CRC_MAGIC if self.v5
                       else XFS_ABTC_MAGIC}
        self.maxrecs_leaf = (self.bs - self.header.size) // REC.size
        self.maxrecs_node = (self.bs - self.header.size) // (REC.size +
                                                             PTR.size)

    def used_map(self):
        log_at, log_length = log.check_clean(self)
        spare = 0
        for agno in range(self.agcount):
            agf, _ = self.agf(agno)
            self._check_by_size(agno, agf)
            spare += agf.agf_flcount + agf.agf_btreeblks
        # The first pass over the runs checks each AG's btree against its
        # AGF and that the log is in use, keeping nothing.
        used, missing = survey(self.used_runs(),
                               [(log_at, log_length, "the internal log")])
        if missing:
            raise MapError(f"the free space btrees hold blocks of the "
                           f"internal log (bytes {log_at}-"
                           f"{log_at + log_length - 1})")
        free = self.blocks - used // self.bs
        self._check_counts(free, spare)
        return UsedMap("xfs", self.bs, self.total, used,
                       LazyRuns(self.used_runs), label=self.label(),
                       uuid=self.uuid())

    def _check_counts(self, free, spare):
        """The superblock's free block and inode counters against the
        AGs'.  With a clean log they were synced at unmount (lazy counters
        included: xfs_log_sbcount), so they must be exact:
        sb_fdblocks = sum of agf_freeblks + agf_flcount + agf_btreeblks
        (xfs_initialize_perag_data), sb_icount = sum of agi_count,
        sb_ifree = sum of agi_freecount.  A free extent made up in both
        btrees and its AGF, CRCs recomputed, is caught here."""
        sb = self.sb
        if free + spare != sb.sb_fdblocks:
            raise MapError(f"the free space btrees hold {free} free blocks "
                           f"(and {spare} on free lists or in their own "
                           f"blocks), the superblock counts "
                           f"{sb.sb_fdblocks}")
        count = sum(c for c, _ in self.inode_counts.values())
        freecount = sum(f for _, f in self.inode_counts.values())
        if len(self.inode_counts) != self.agcount or \
                (count, freecount) != (sb.sb_icount, sb.sb_ifree):
            raise MapError(f"the AGIs count {count} inodes, {freecount} "
                           f"free; the superblock {sb.sb_icount}, "
                           f"{sb.sb_ifree} free")

    def _check_by_size(self, agno, agf):
        """The by-size btree (cntbt) must hold the extents of the bnobt:
        compared by count, total, longest and two sums over them."""
        def digest(tree):
            n = total = starts = mixed = longest = 0
            for start, count in self.free_extents(agno, agf, tree):
                n, total, starts = n + 1, total + count, starts + start
                mixed = (mixed + start * count) & 0xFFFFFFFFFFFFFFFF
                longest = max(longest, count)
            return n, total, starts, mixed, longest
        by_block, by_size = digest("bno"), digest("cnt")
        if by_block != by_size:
            raise MapError(f"allocation group {agno}: its free space btrees "
                           f"disagree: {by_block[0]} extents of "
                           f"{by_block[1]} blocks by block number, "
                           f"{by_size[0]} of {by_size[1]} by size")

    def used_runs(self):
        """Used (offset, length) byte runs, ascending, coalesced: the
        complement of each AG's free extents, AG after AG.  Each AG's
        btree is checked against its AGF as it is read."""
        return coalesce(self._used_blocks())

    def _used_blocks(self):
        for agno in range(self.agcount):
            agf, _ = self.agf(agno)
            # The free list's blocks are free to the AGF but in no free
            # extent: they are kept (copied), and must not be free twice.
            # So are the btrees' roots.
            kept = sorted([(b, "on the free list") for b in
                           self.agfl(agno, agf)] +
                          [(b, f"the {name} root") for name, b in
                           self.roots(agno, agf).items()])
            blocks = [b for b, _ in kept]
            cursor = total = longest = 0
            for start, count in self.free_extents(agno, agf):
                k = bisect.bisect_left(blocks, start)
                if k < len(blocks) and blocks[k] < start + count:
                    raise MapError(f"allocation group {agno}: block "
                                   f"{blocks[k]} is {kept[k][1]} and in "
                                   f"the free extent {start}+{count}")
                if start > cursor:
                    yield (self.ag_offset(agno, cursor),
                           (start - cursor) * self.bs)
                cursor = start + count
                total += count
                longest = max(longest, count)
            if total != agf.agf_freeblks or longest != agf.agf_longest:
                raise MapError(
                    f"allocation group {agno}: the free space btree holds "
                    f"{total} free blocks, longest {longest}; its AGF says "
                    f"{agf.agf_freeblks}, longest {agf.agf_longest}")
            if cursor < agf.agf_length:
                yield (self.ag_offset(agno, cursor),
                       (agf.agf_length - cursor) * self.bs)

    def free_extents(self, agno, agf, tree="bno"):
        """The (agbno, count) free extents of AG `agno` from its btree by
        block number ("bno", ascending) or by size ("cnt", by count then
        block), every block checked."""
        length, prev = agf.agf_length, None
        # The AG's first four sectors (superblock, AGF, AGI, AGFL) are
        # never free: no free extent may start in their blocks.
        headers = -(-4 * self.sb.sb_sectsize // self.bs)
        root, levels = (agf.agf_bno_root, agf.agf_bno_level) \
            if tree == "bno" else (agf.agf_cnt_root, agf.agf_cnt_level)
        if not 0 < root < length or not 1 <= levels <= XFS_BTREE_MAXLEVELS:
            raise MapError(f"allocation group {agno}: {tree}bt root {root} "
                           f"at level {levels} is not valid")
        # Depth first, leftmost child first: (agbno, level it must have).
        stack = [(root, levels - 1)]
        seen = 0
        while stack:
            agbno, level = stack.pop()
            seen += 1
            if seen > length:
                raise MapError(f"allocation group {agno}: the {tree}bt has "
                               f"more blocks than the group")
            block, at, head = self._block(agno, agbno, level, tree)
            body = self.header.size
            if level == 0:
                for k in range(head.bb_numrecs):
                    start, count = REC.unpack_from(block, body + k * 8)
                    if tree == "bno":
                        # ascending, apart: XFS merges free neighbours
                        ordered = prev is None or start > prev[0] + prev[1]
                    else:
                        ordered = prev is None or (count, start) > \
                            (prev[1], prev[0])
                    if start < headers:
                        raise MapError(
                            f"allocation group {agno}: free extent "
                            f"{start}+{count} in the {tree}bt block at byte "
                            f"offset {at} holds the group's headers")
                    if count == 0 or not ordered or start + count > length:
                        raise MapError(
                            f"allocation group {agno}: free extent "
                            f"{start}+{count} in the {tree}bt block at byte "
                            f"offset {at} is out of order or outside the "
                            f"group of {length} blocks")
                    prev = (start, count)
                    yield start, count
                continue
            ptrs = body + self.maxrecs_node * REC.size
            children = []
            for k in range(head.bb_numrecs):
                child, = PTR.unpack_from(block, ptrs + k * 4)
                if not 0 < child < length:
                    raise MapError(f"allocation group {agno}: {tree}bt "
                                   f"block at byte offset {at} points to "
                                   f"block {child}, outside the group")
                children.append((child, level - 1))
            stack.extend(reversed(children))

    def _block(self, agno, agbno, level, tree):
        """One block of the `tree` btree at `agbno` of AG `agno`, which
        must be at `level`: (bytes, byte offset, header)."""
        at = self.ag_offset(agno, agbno)
        try:
            block = read_exact(self.read, at, self.bs, "free space btree")
            head = self.header.unpack(block, at=at)
        except TableError as err:
            raise MapError(str(err)) from None
        most = self.maxrecs_leaf if level == 0 else self.maxrecs_node
        bad = None
        magic = self.magics[tree]
        if head.bb_magic != magic:
            bad = f"magic {head.bb_magic!r}, not {magic!r}"
        elif head.bb_level != level:
            bad = f"level {head.bb_level} where {level} belongs"
        elif not 0 < head.bb_numrecs <= most and not (
                level == 0 and head.bb_numrecs == 0 and
                head.bb_leftsib == head.bb_rightsib == NULLAGBLOCK):
            bad = f"{head.bb_numrecs} records (at most {most})"
        elif self.v5 and (head.bb_blkno != at // 512 or
                          head.bb_uuid != self.meta_uuid or
                          head.bb_owner != agno):
            bad = "its address, UUID or owner is another block's"
        elif self.v5 and not crc_ok(block, BTREE_CRC_OFF):
            bad = "its CRC is wrong"
        if bad:
            raise MapError(f"allocation group {agno}: {tree}bt block "
                           f"{agbno} (byte offset {at}): {bad}")
        return block, at, head
