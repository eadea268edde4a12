"""The XFS log check (diskimage.fs.xfs.log) on logs built in memory, record
by record as xfs_log_format.h lays them out: the last record is the header
with the highest LSN, wherever the ring has wrapped; it must be an unmount
record.  (The same check on logs the kernel wrote is in test_xfs.py, against
xfs_logprint.)"""

import struct
from types import SimpleNamespace

import pytest

from diskimage.fs.usedmap import MapError
from diskimage.fs.xfs import log

BB = 512
BLOCKS = 64                          # basic blocks in the test log
BS = 4096
LOG_AT = 8 * BS                      # the log starts at block 8 of AG 0


def volume(records, garbage=()):
    """A volume whose log holds `records`: (block, cycle, num_logops,
    op flags, h_size).  `garbage`: (block, bytes) written over it."""
    data = bytearray(LOG_AT + BLOCKS * BB)
    for block, cycle, logops, flags, size in records:
        at = LOG_AT + block * BB
        struct.pack_into(">4sIIIQQ4sII", data, at, log.XLOG_HEADER_MAGIC_NUM,
                         cycle, 2, BB, cycle << 32 | block, 1 << 32,
                         b"\0" * 4, 0, logops)
        struct.pack_into(">I", data, at + log.H_SIZE_AT, size)
        hblks = max(1, -(-size // log.XLOG_HEADER_CYCLE_SIZE))
        op = LOG_AT + (block + hblks) % BLOCKS * BB
        struct.pack_into(">IIBBH", data, op, cycle, 8, 0xAA, flags, 0)
    for block, raw in garbage:
        data[LOG_AT + block * BB:LOG_AT + block * BB + len(raw)] = raw
    sb = SimpleNamespace(sb_logstart=8, sb_agblklog=16,
                         sb_logblocks=BLOCKS * BB // BS)
    return SimpleNamespace(
        sb=sb, agcount=1, bs=BS, read=lambda o, n: bytes(data[o:o + n]),
        ag_length=lambda agno: 1000,
        ag_offset=lambda agno, agbno=0: agbno * BS)


UNMOUNT, TRANS = log.XLOG_UNMOUNT_TRANS, 0x01


def test_clean_when_the_highest_lsn_is_an_unmount_record():
    v = volume([(0, 3, 7, TRANS, 32768), (10, 3, 1, UNMOUNT, 32768),
                (30, 2, 5, TRANS, 32768)])     # the previous cycle's
    assert log.check_clean(v) == (LOG_AT, BLOCKS * BB)


def test_dirty_when_a_transaction_follows_the_unmount_record():
    v = volume([(10, 3, 1, UNMOUNT, 32768), (20, 3, 4, TRANS, 32768)])
    with pytest.raises(MapError, match="block 20, is not an unmount"):
        log.check_clean(v)


def test_an_unmount_flag_among_many_operations_is_not_an_unmount():
    v = volume([(10, 3, 2, UNMOUNT, 32768)])
    with pytest.raises(MapError, match="needs recovery"):
        log.check_clean(v)


def test_wrapped_ring_and_multi_block_headers():
    # the last record's header is at the ring's last block; with 64 KiB
    # log buffers its header takes 2 blocks and its first operation is at
    # block 1 after the wrap
    v = volume([(5, 4, 3, TRANS, 32768), (63, 4, 1, UNMOUNT, 65536)])
    assert log.check_clean(v)
    v = volume([(5, 4, 3, TRANS, 32768), (63, 4, 1, UNMOUNT, 65536)],
               garbage=[(1, struct.pack(">IIBB", 4, 8, 0xAA, TRANS))])
    with pytest.raises(MapError, match="needs recovery"):
        log.check_clean(v)


def test_a_magic_that_does_not_name_its_own_block_is_not_a_header():
    fake = struct.pack(">4sIIIQ", log.XLOG_HEADER_MAGIC_NUM, 9, 2, BB,
                       9 << 32 | 3)            # says block 3, lies at 40
    v = volume([(10, 3, 1, UNMOUNT, 32768)], garbage=[(40, fake)])
    assert log.check_clean(v)


def test_a_log_with_no_record_cannot_be_judged():
    with pytest.raises(MapError, match="holds no record"):
        log.check_clean(volume([]))


def test_a_log_outside_its_group_is_refused():
    v = volume([(10, 3, 1, UNMOUNT, 32768)])
    v.ag_length = lambda agno: 10
    with pytest.raises(MapError, match="not inside the filesystem"):
        log.check_clean(v)
