"""Is the internal log of an XFS volume clean?  An XFS superblock has no
"needs recovery" flag: the log says it.  After a clean unmount the last
record written is an unmount record (one operation, flagged
XLOG_UNMOUNT_TRANS); after a crash it is a transaction the on-disk btrees
may not show yet, so their free extents cannot be trusted.

The log is a circular run of 512-byte basic blocks.  Every record starts
with a header (struct xlog_rec_header, fs/xfs/libxfs/xfs_log_format.h,
big-endian) whose first word is XLOG_HEADER_MAGIC_NUM; the first word of
every other block of a record is replaced by the cycle number (the header
keeps the words it replaced), so the magic at a block's start is always a
header.  The kernel also stamps blocks ahead of the head with headers of
the previous cycle.  The last record is the header with the highest LSN
(cycle << 32 | block); the log is clean when that record is an unmount
record.  The whole log is read once for this.
"""

import struct

from ...structs import read_exact
from ...errors import TableError
from ..usedmap import MapError

BBSIZE = 512
XLOG_HEADER_MAGIC_NUM = b"\xfe\xed\xba\xbe"
XLOG_HEADER_CYCLE_SIZE = 32 * 1024
XLOG_UNMOUNT_TRANS = 0x20
# xlog_rec_header: h_magicno, h_cycle, h_version, h_len, h_lsn,
# h_tail_lsn, h_crc, h_prev_block, h_num_logops; h_size at byte 320.
REC_HEADER = struct.Struct(">4sIIIQQ4sII")
H_SIZE = struct.Struct(">I")
H_SIZE_AT = 320
# xlog_op_header: oh_tid, oh_len, oh_clientid, oh_flags, oh_res2.
OP_HEADER = struct.Struct(">IIBBH")
CHUNK = 1 << 20


def log_extent(volume):
    """(byte offset, length) of the internal log of `volume` (a
    super.Geometry), checked to lie inside one AG."""
    sb = volume.sb
    agno = sb.sb_logstart >> sb.sb_agblklog
    agbno = sb.sb_logstart & ((1 << sb.sb_agblklog) - 1)
    if agno >= volume.agcount or \
            agbno + sb.sb_logblocks > volume.ag_length(agno) or \
            sb.sb_logblocks * volume.bs < 64 * BBSIZE:
        raise MapError(f"XFS superblock: the internal log ({sb.sb_logblocks}"
                       f" blocks at block {agbno} of allocation group "
                       f"{agno}) is not inside the filesystem")
    return volume.ag_offset(agno, agbno), sb.sb_logblocks * volume.bs


def last_record(read, start, length):
    """(LSN, header fields, block) of the log's record with the highest
    LSN, or None when the log holds no record header."""
    best = None
    for base in range(0, length, CHUNK):
        try:
            data = read_exact(read, start + base, min(CHUNK, length - base),
                              "XFS log")
        except TableError as err:
            raise MapError(str(err)) from None
        at = data.find(XLOG_HEADER_MAGIC_NUM)
        while at >= 0:
            if at % BBSIZE == 0 and at + REC_HEADER.size <= len(data):
                head = REC_HEADER.unpack_from(data, at)
                block = (base + at) // BBSIZE
                lsn = head[4]
                # A header names its own block and cycle in h_lsn.
                if lsn & 0xFFFFFFFF == block and lsn >> 32 == head[1] and \
                        (best is None or lsn > best[0]):
                    size, = H_SIZE.unpack_from(data, at + H_SIZE_AT) \
                        if at + H_SIZE_AT + 4 <= len(data) else (0,)
                    best = (lsn, head, block, size)
            at = data.find(XLOG_HEADER_MAGIC_NUM, at + 1)
    return best


def check_clean(volume):
    """MapError unless the internal log of `volume` ends with an unmount
    record; (byte offset, length) of the log."""
    start, length = log_extent(volume)
    found = last_record(volume.read, start, length)
    if found is None:
        raise MapError("the XFS log holds no record: it cannot be told "
                       "whether it needs recovery")
    lsn, head, block, size = found
    version, num_logops = head[2], head[8]
    hblks = 1
    if version == 2 and size > XLOG_HEADER_CYCLE_SIZE:
        hblks = -(-size // XLOG_HEADER_CYCLE_SIZE)
    blocks = length // BBSIZE
    op_at = start + ((block + hblks) % blocks) * BBSIZE
    try:
        op = OP_HEADER.unpack(read_exact(volume.read, op_at, OP_HEADER.size,
                                         "XFS log operation header"))
    except TableError as err:
        raise MapError(str(err)) from None
    if num_logops != 1 or not op[3] & XLOG_UNMOUNT_TRANS:
        raise MapError(f"the XFS log needs recovery (its last record, cycle "
                       f"{lsn >> 32} block {block}, is not an unmount "
                       f"record): mount it once, or run xfs_repair, to "
                       f"replay it")
    return start, length
