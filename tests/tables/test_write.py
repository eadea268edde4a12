"""tablewrite.protective_mbr on hand-made sector 0s: a hybrid MBR's records
follow their partitions, its 0xEE record keeps covering what it covered, and
records that name nothing restored are dropped.  Records are read back with
the struct module, not with diskimage.tables.mbr."""

import struct

from diskimage.tables.write import protective_mbr

MiB = 1 << 20


def sector0(records):
    """Boot code bytes, then up to four (boot, type, start, size) records."""
    out = bytearray(b"\xfa" * 446) + bytes(66)
    for slot, (boot, kind, start, size) in enumerate(records):
        struct.pack_into("<B3sB3sII", out, 446 + 16 * slot, boot, b"\0" * 3,
                         kind, b"\0" * 3, start, size)
    out[510:512] = b"\x55\xaa"
    return bytes(out)


def records(raw):
    return [(boot, kind, start, size) for boot, _, kind, _, start, size in
            (struct.unpack_from("<B3sB3sII", raw, 446 + 16 * i)
             for i in range(4))]


def test_protective_mbr_covers_the_disk_and_keeps_boot_code():
    raw = protective_mbr(sector0([(0, 0xEE, 1, 999)]), 1 << 21)
    assert raw[:446] == b"\xfa" * 446 and raw[510:] == b"\x55\xaa"
    assert records(raw) == [(0, 0xEE, 1, (1 << 21) - 1), (0, 0, 0, 0),
                            (0, 0, 0, 0), (0, 0, 0, 0)]


def test_hybrid_with_0xee_last_covers_after_the_moved_partitions():
    old = sector0([(0x80, 0x0C, 2048, 2048), (0, 0x83, 4096, 8192),
                   (0, 0xEE, 12288, 100000), (0, 0x07, 50000, 10)])
    moved = {(2048 * 512, 2048 * 512): (2 * MiB, 4 * MiB),
             (4096 * 512, 8192 * 512): (6 * MiB, 8 * MiB)}
    raw = protective_mbr(old, 1 << 22, 512, moved, 512)
    end = (14 * MiB) // 512
    assert records(raw) == [(0x80, 0x0C, 4096, 8192), (0, 0x83, 12288, 16384),
                            (0, 0xEE, end, (1 << 22) - end), (0, 0, 0, 0)]


def test_hybrid_onto_4096_byte_sectors_counts_new_sectors():
    old = sector0([(0, 0xEE, 1, 2047), (0, 0x83, 2048, 2048)])
    moved = {(2048 * 512, 2048 * 512): (MiB, MiB)}
    raw = protective_mbr(old, 1 << 18, 4096, moved, 512)
    assert records(raw)[:2] == [(0, 0xEE, 1, 255), (0, 0x83, 256, 256)]


def test_hybrid_whose_partitions_are_not_restored_becomes_protective():
    old = sector0([(0, 0xEE, 1, 2047), (0, 0x83, 2048, 2048)])
    raw = protective_mbr(old, 1 << 20, 512, {}, 512)
    assert records(raw)[0] == (0, 0xEE, 1, (1 << 20) - 1)
    assert records(raw)[1:] == [(0, 0, 0, 0)] * 3
