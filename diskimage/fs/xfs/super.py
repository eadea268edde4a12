"""XFS's superblock and allocation group headers, as the kernel declares
them (fs/xfs/libxfs/xfs_format.h: struct xfs_dsb, xfs_agf, xfs_btree_block;
field names kept), and the checks made right after parsing them.

Everything is big-endian.  The primary superblock is sector 0 of the
volume; each allocation group (AG) starts at byte
``agno * sb_agblocks * sb_blocksize`` with a copy of the superblock in its
first sector and its AGF (free space header) in the second.  Block numbers
inside an AG (``xfs_agblock_t``) count from the AG's start.
"""

import struct

from .. import crc32c

from ...structs import Struct, read_exact
from ...errors import TableError
from ..foreign import text, uuid
from ..usedmap import MapError

XFS_SB_MAGIC = b"XFSB"
XFS_AGF_MAGIC = b"XAGF"
NULLAGBLOCK = 0xFFFFFFFF
XFS_SB_VERSION_NUMBITS = 0x000F
XFS_SB_VERSION_5 = 5
XFS_SB_FEAT_INCOMPAT_META_UUID = 1 << 2
XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR = 1 << 4
#: Incompatible features this reader knows do not change the AGF or the
#: free space btrees: FTYPE, SPINODES, META_UUID, BIGTIME, NEEDSREPAIR
#: (refused on its own), NREXT64, EXCHRANGE, PARENT.
KNOWN_INCOMPAT = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80
MIN_BLOCK, MAX_BLOCK = 512, 65536


def _big_endian(name, fields, size):
    """A :class:`Struct` read big-endian, as every XFS structure is."""
    declared = Struct(name, fields, size=size)
    declared.format = ">" + declared.format[1:]
    declared.struct = struct.Struct(declared.format)
    return declared


# struct xfs_dsb, up to sb_meta_uuid (what this reader needs: 264 bytes).
SUPERBLOCK = _big_endian("xfs superblock", [
    ("4s", "sb_magicnum"), ("I", "sb_blocksize"), ("Q", "sb_dblocks"),
    ("Q", "sb_rblocks"), ("Q", "sb_rextents"), ("16s", "sb_uuid"),
    ("Q", "sb_logstart"), ("Q", "sb_rootino"), ("Q", "sb_rbmino"),
    ("Q", "sb_rsumino"), ("I", "sb_rextsize"), ("I", "sb_agblocks"),
    ("I", "sb_agcount"), ("I", "sb_rbmblocks"), ("I", "sb_logblocks"),
    ("H", "sb_versionnum"), ("H", "sb_sectsize"), ("H", "sb_inodesize"),
    ("H", "sb_inopblock"), ("12s", "sb_fname"), ("B", "sb_blocklog"),
    ("B", "sb_sectlog"), ("B", "sb_inodelog"), ("B", "sb_inopblog"),
    ("B", "sb_agblklog"), ("B", "sb_rextslog"), ("B", "sb_inprogress"),
    ("B", "sb_imax_pct"), ("Q", "sb_icount"), ("Q", "sb_ifree"),
    ("Q", "sb_fdblocks"), ("Q", "sb_frextents"), ("Q", "sb_uquotino"),
    ("Q", "sb_gquotino"), ("H", "sb_qflags"), ("B", "sb_flags"),
    ("B", "sb_shared_vn"), ("I", "sb_inoalignmt"), ("I", "sb_unit"),
    ("I", "sb_width"), ("B", "sb_dirblklog"), ("B", "sb_logsectlog"),
    ("H", "sb_logsectsize"), ("I", "sb_logsunit"), ("I", "sb_features2"),
    ("I", "sb_bad_features2"), ("I", "sb_features_compat"),
    ("I", "sb_features_ro_compat"), ("I", "sb_features_incompat"),
    ("I", "sb_features_log_incompat"), ("4s", "sb_crc"),
    ("I", "sb_spino_align"), ("Q", "sb_pquotino"), ("Q", "sb_lsn"),
    ("16s", "sb_meta_uuid"),
], size=264)

# struct xfs_agf, up to agf_crc (220 bytes).  agf_roots / agf_levels are
# indexed by btree: 0 by block number (bnobt), 1 by size (cntbt), 2 rmapbt.
AGF = _big_endian("xfs AGF", [
    ("4s", "agf_magicnum"), ("I", "agf_versionnum"), ("I", "agf_seqno"),
    ("I", "agf_length"), ("I", "agf_bno_root"), ("I", "agf_cnt_root"),
    ("I", "agf_rmap_root"), ("I", "agf_bno_level"), ("I", "agf_cnt_level"),
    ("I", "agf_rmap_level"), ("I", "agf_flfirst"), ("I", "agf_fllast"),
    ("I", "agf_flcount"), ("I", "agf_freeblks"), ("I", "agf_longest"),
    ("I", "agf_btreeblks"), ("16s", "agf_uuid"), ("I", "agf_rmap_blocks"),
    ("I", "agf_refcount_blocks"), ("I", "agf_refcount_root"),
    ("I", "agf_refcount_level"), ("112s", "agf_spare64"), ("Q", "agf_lsn"),
    ("4s", "agf_crc"),
], size=220)
XFS_AGF_VERSION = 1
XFS_BTREE_MAXLEVELS = 9

# struct xfs_btree_block with its short (AG-relative) pointers: 16 bytes
# in v4, 56 with the v5 CRC fields.
BTREE_SHORT = _big_endian("xfs btree block", [
    ("4s", "bb_magic"), ("H", "bb_level"), ("H", "bb_numrecs"),
    ("I", "bb_leftsib"), ("I", "bb_rightsib"),
], size=16)
BTREE_SHORT_CRC = _big_endian("xfs v5 btree block", [
    ("4s", "bb_magic"), ("H", "bb_level"), ("H", "bb_numrecs"),
    ("I", "bb_leftsib"), ("I", "bb_rightsib"), ("Q", "bb_blkno"),
    ("Q", "bb_lsn"), ("16s", "bb_uuid"), ("I", "bb_owner"),
    ("4s", "bb_crc"),
], size=56)
XFS_ABTB_MAGIC, XFS_ABTB_CRC_MAGIC = b"ABTB", b"AB3B"   # by block number
XFS_ABTC_MAGIC, XFS_ABTC_CRC_MAGIC = b"ABTC", b"AB3C"   # by size
XFS_AGFL_MAGIC = b"XAFL"
#: Smallest AG mkfs.xfs makes (XFS_MIN_AG_BLOCKS): no more AGs than this
#: allows are believed, however many the superblock says.
XFS_MIN_AG_BLOCKS = 64
XFS_AGI_MAGIC = b"XAGI"
XFS_IBT_MAGIC, XFS_IBT_CRC_MAGIC = b"IABT", b"IAB3"     # inode btree
# sb_features_ro_compat: btrees whose roots the AGF or AGI then names.
XFS_SB_FEAT_RO_COMPAT_FINOBT, XFS_SB_FEAT_RO_COMPAT_RMAPBT, \
    XFS_SB_FEAT_RO_COMPAT_REFLINK = 0x1, 0x2, 0x4
AGI_CRC_OFF = 312
# Where each v5 structure keeps its CRC32C (xfs_format.h: XFS_SB_CRC_OFF,
# XFS_AGF_CRC_OFF, XFS_AGFL_CRC_OFF, XFS_BTREE_SBLOCK_CRC_OFF).
SB_CRC_OFF, AGF_CRC_OFF, AGFL_CRC_OFF, BTREE_CRC_OFF = 224, 216, 32, 52


def crc_ok(data, offset):
    """Whether the v5 CRC of `data` (a whole sector or block) is right:
    CRC32C (Castagnoli, seed and final XOR ~0) of `data` with its 4 bytes
    at `offset` zeroed, stored little-endian there (xfs_cksum.h)."""
    zeroed = data[:offset] + bytes(4) + data[offset + 4:]
    return struct.pack("<I", crc32c.value(zeroed)) == \
        bytes(data[offset:offset + 4])


def field_offset(structure, name):
    """Byte offset of field *name* in *structure*, for messages."""
    index = structure.names.index(name)
    return struct.calcsize(">" + "".join(structure.codes[:index]))


class Geometry:
    """The superblock of an XFS volume of `size` bytes, checked."""

    def __init__(self, read, size):
        self.read, self.size = read, size
        #: agno -> (agi_count, agi_freecount), filled by roots()
        self.inode_counts = {}
        try:
            self.sb = sb = SUPERBLOCK.read(read, 0)
        except TableError as err:
            raise MapError(str(err)) from None
        if sb.sb_magicnum != XFS_SB_MAGIC:
            raise MapError("no XFS superblock at byte offset 0")
        self.v5 = sb.sb_versionnum & XFS_SB_VERSION_NUMBITS == \
            XFS_SB_VERSION_5
        self.bs = bs = sb.sb_blocksize
        self._sane(sb)
        if self.v5:
            self.check_crc(0, sb.sb_sectsize, SB_CRC_OFF, "the superblock")
        self.agblocks, self.agcount = sb.sb_agblocks, sb.sb_agcount
        self.blocks = sb.sb_dblocks
        self.total = self.blocks * bs
        meta = sb.sb_features_incompat & XFS_SB_FEAT_INCOMPAT_META_UUID
        self.meta_uuid = sb.sb_meta_uuid if self.v5 and meta else sb.sb_uuid

    def _sane(self, sb):
        bs = sb.sb_blocksize
        if not (MIN_BLOCK <= bs <= MAX_BLOCK and bs & (bs - 1) == 0 and
                bs == 1 << sb.sb_blocklog and
                sb.sb_sectsize == 1 << sb.sb_sectlog and
                512 <= sb.sb_sectsize <= min(bs, 32768)):
            raise MapError(f"XFS superblock: block size {bs} (log "
                           f"{sb.sb_blocklog}) or sector size "
                           f"{sb.sb_sectsize} is not valid")
        if not sb.sb_agcount or sb.sb_agblocks < XFS_MIN_AG_BLOCKS or \
                (1 << sb.sb_agblklog) < sb.sb_agblocks or \
                sb.sb_agblocks * (sb.sb_agcount - 1) >= sb.sb_dblocks or \
                sb.sb_dblocks > sb.sb_agblocks * sb.sb_agcount:
            raise MapError(f"XFS superblock: {sb.sb_agcount} allocation "
                           f"groups of {sb.sb_agblocks} blocks do not make "
                           f"its {sb.sb_dblocks} blocks")
        if sb.sb_dblocks * bs > self.size:
            raise MapError(f"XFS superblock: {sb.sb_dblocks} blocks of {bs} "
                           f"bytes do not fit in the {self.size}-byte "
                           f"partition")
        if sb.sb_inprogress:
            raise MapError("XFS superblock: mkfs.xfs did not finish "
                           "(sb_inprogress is set)")
        if sb.sb_rblocks or sb.sb_rextents:
            raise MapError("XFS with a realtime device: its data is "
                           "elsewhere, so the volume is copied whole")
        if sb.sb_logstart == 0:
            raise MapError("XFS with an external log device: the log is "
                           "elsewhere, so the volume is copied whole")
        incompat = sb.sb_features_incompat if self.v5 else 0
        if incompat & XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR:
            raise MapError("XFS superblock: the filesystem needs "
                           "xfs_repair (NEEDSREPAIR is set)")
        if incompat & ~KNOWN_INCOMPAT:
            raise MapError(f"XFS superblock: incompatible features "
                           f"{incompat & ~KNOWN_INCOMPAT:#x} this reader "
                           f"does not know")

    def check_crc(self, at, length, offset, what):
        """MapError naming `what` unless the v5 CRC at `offset` of the
        `length` bytes at byte `at` is right; the bytes."""
        try:
            data = read_exact(self.read, at, length, what)
        except TableError as err:
            raise MapError(str(err)) from None
        if not crc_ok(data, offset):
            raise MapError(f"XFS: the CRC of {what} (byte offset {at}) is "
                           f"wrong")
        return data

    def agfl(self, agno, agf):
        """The AG block numbers on the free list (AGFL) of AG `agno`, each
        checked to lie inside the group; the AGFL's CRC and header in v5."""
        at = self.ag_offset(agno) + 3 * self.sb.sb_sectsize
        where = f"the AGFL of allocation group {agno}"
        head = 36 if self.v5 else 0     # magic, seqno, uuid, lsn, crc
        if self.v5:
            data = self.check_crc(at, self.sb.sb_sectsize, AGFL_CRC_OFF,
                                  where)
            if data[:4] != XFS_AGFL_MAGIC or \
                    struct.unpack_from(">I", data, 4)[0] != agno or \
                    data[8:24] != self.meta_uuid:
                raise MapError(f"{where} (byte offset {at}): bad magic, "
                               f"group or UUID")
        else:
            try:
                data = read_exact(self.read, at, self.sb.sb_sectsize, where)
            except TableError as err:
                raise MapError(str(err)) from None
        size = (len(data) - head) // 4
        first, last, count = agf.agf_flfirst, agf.agf_fllast, agf.agf_flcount
        if first >= size or last >= size or (
                count and (last - first) % size + 1 != count):
            raise MapError(f"{where}: first {first}, last {last} and count "
                           f"{count} do not fit its {size} slots")
        blocks = [struct.unpack_from(">I", data, head + 4 * ((first + k) %
                                                             size))[0]
                  for k in range(count)]
        length = agf.agf_length
        if any(not 0 < b < length for b in blocks) or \
                len(set(blocks)) != len(blocks):
            raise MapError(f"{where}: a block outside the group, or twice")
        return blocks

    def roots(self, agno, agf):
        """The AG blocks of the btree roots the AGF and the AGI of AG
        `agno` name (free space, rmap and refcount; inode and free inode
        btrees), each inside the group: never free.  The AGI's CRC, magic
        and AG number are checked (v5: its CRC and UUID)."""
        at = self.ag_offset(agno) + 2 * self.sb.sb_sectsize
        where = f"the AGI of allocation group {agno}"
        if self.v5:
            data = self.check_crc(at, self.sb.sb_sectsize, AGI_CRC_OFF, where)
        else:
            try:
                data = read_exact(self.read, at, 336, where)
            except TableError as err:
                raise MapError(str(err)) from None
        # xfs_agi: magic 0, seqno 8, length 12, count 16, root 20, level
        # 24, freecount 28, uuid 296, free_root 328
        magic = data[:4]
        seqno, length, count, root, level, freecount = struct.unpack_from(
            ">6I", data, 8)
        if magic != XFS_AGI_MAGIC or seqno != agno or (
                self.v5 and data[296:312] != self.meta_uuid):
            raise MapError(f"{where} (byte offset {at}): bad magic, group "
                           f"or UUID")
        if length != agf.agf_length or freecount > count or \
                not 1 <= level <= XFS_BTREE_MAXLEVELS:
            raise MapError(f"{where} (byte offset {at}): length {length} "
                           f"(the AGF's {agf.agf_length}), {count} inodes "
                           f"with {freecount} free, inobt level {level}")
        self.inode_counts[agno] = (count, freecount)
        ro = self.sb.sb_features_ro_compat if self.v5 else 0
        roots = {"bnobt": agf.agf_bno_root, "cntbt": agf.agf_cnt_root,
                 "inobt": root}
        if ro & XFS_SB_FEAT_RO_COMPAT_FINOBT:
            roots["finobt"], = struct.unpack_from(">I", data, 328)
        if ro & XFS_SB_FEAT_RO_COMPAT_RMAPBT:
            roots["rmapbt"] = agf.agf_rmap_root
        if ro & XFS_SB_FEAT_RO_COMPAT_REFLINK:
            roots["refcountbt"] = agf.agf_refcount_root
        for name, block in roots.items():
            if not 0 < block < agf.agf_length:
                raise MapError(f"allocation group {agno}: the {name} root "
                               f"{block} is outside the group")
        self._inobt_root(agno, root, level)
        return roots

    def _inobt_root(self, agno, root, levels):
        """The inode btree's root block must be one: its magic, the level
        the AGI gives (`levels` - 1), in v5 its address, UUID, AG and
        CRC."""
        at = self.ag_offset(agno, root)
        try:
            block = read_exact(self.read, at, self.bs, "inode btree root")
        except TableError as err:
            raise MapError(str(err)) from None
        magic, level = block[:4], struct.unpack_from(">H", block, 4)[0]
        good = magic == (XFS_IBT_CRC_MAGIC if self.v5 else XFS_IBT_MAGIC) \
            and level == levels - 1
        if good and self.v5:
            blkno, = struct.unpack_from(">Q", block, 16)
            owner, = struct.unpack_from(">I", block, 48)
            good = blkno == at // 512 and owner == agno and \
                block[32:48] == self.meta_uuid and \
                crc_ok(block, BTREE_CRC_OFF)
        if not good:
            raise MapError(f"allocation group {agno}: the inobt root {root} "
                           f"(byte offset {at}) is not the root of "
                           f"{levels} levels the AGI names (magic, level, "
                           f"address, owner or CRC)")

    def label(self):
        return text(self.sb.sb_fname)

    def uuid(self):
        return uuid(self.sb.sb_uuid)

    def ag_length(self, agno):
        """Blocks in AG `agno` (the last one may be shorter)."""
        if agno < self.agcount - 1:
            return self.agblocks
        return self.blocks - self.agblocks * (self.agcount - 1)

    def ag_offset(self, agno, agbno=0):
        """Byte offset of block `agbno` of AG `agno`."""
        return (agno * self.agblocks + agbno) * self.bs

    def agf(self, agno):
        """The AGF of AG `agno`, checked against the superblock."""
        at = self.ag_offset(agno) + self.sb.sb_sectsize
        try:
            agf = AGF.unpack(read_exact(self.read, at, AGF.size, "AGF"),
                             at=at)
        except TableError as err:
            raise MapError(str(err)) from None
        where = f"AGF of allocation group {agno} (byte offset {at})"
        if self.v5:
            self.check_crc(at, self.sb.sb_sectsize, AGF_CRC_OFF,
                           f"the AGF of allocation group {agno}")
        if agf.agf_magicnum != XFS_AGF_MAGIC or \
                agf.agf_versionnum != XFS_AGF_VERSION:
            raise MapError(f"bad magic or version in the {where}")
        if agf.agf_seqno != agno or agf.agf_length != self.ag_length(agno):
            raise MapError(f"the {where} says it is group {agf.agf_seqno} "
                           f"of {agf.agf_length} blocks, the superblock "
                           f"{agno} of {self.ag_length(agno)}")
        if self.v5 and agf.agf_uuid != self.meta_uuid:
            raise MapError(f"the {where} belongs to another filesystem "
                           f"(its UUID differs)")
        if agf.agf_freeblks > agf.agf_length or \
                agf.agf_longest > agf.agf_freeblks or \
                agf.agf_flcount > agf.agf_length:
            raise MapError(f"the {where}: {agf.agf_freeblks} free blocks, "
                           f"longest {agf.agf_longest}, free list "
                           f"{agf.agf_flcount}, in {agf.agf_length}")
        return agf, at
