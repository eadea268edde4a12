"""MBR logical partitions in the layout and the table writer, on hand-made
metadata and sectors (the restores themselves, judged by sfdisk, fdisk and
fsck, are in test_mbr_logical_restore.py).

The expected chain is the one sfdisk 2.38 writes for the same layout (read
from its output with the struct module): 1 at 2048 (16384 sectors), the
extended partition at 18432, logical 5 at 20480 (16384), logical 6 at 38912
(32768); EBR 1 at 18432 holds (2048, 16384) and the link (18432, 34816),
EBR 2 at 36864 holds (2048, 32768) and no link.
"""

import struct

import pytest

from diskimage.errors import TableError, TargetError
from diskimage.layout import plan_layout
from diskimage.tables.write import ebr_chain
from diskimage.tables.write import mbr_writes as _mbr_writes

MiB = 1 << 20
S = 512


def records(raw, count=4):
    return [(boot, kind, start, size) for boot, _, kind, _, start, size in
            (struct.unpack_from("<B3sB3sII", raw, 446 + 16 * i)
             for i in range(count))]


def sector0(recs):
    out = bytearray(b"\xfa" * 446) + bytes(66)
    for slot, (boot, kind, start, size) in enumerate(recs):
        struct.pack_into("<B3sB3sII", out, 446 + 16 * slot, boot, b"\0" * 3,
                         kind, b"\0" * 3, start, size)
    out[510:512] = b"\x55\xaa"
    return bytes(out)


def mbr_writes(sector0, rows, ss, logicals=()):
    """tablewrite.mbr_writes of primaries and logicals, each logical's EBR
    from its row."""
    return _mbr_writes(sector0, rows + list(logicals), ss, None,
                       {p["number"]: p["ebr"] for p in logicals})


def row(number, start, size, kind="0x83", ebr=None, boot=False):
    return dict(number=number, start=start * S, size=size * S, type=kind,
                bootable=boot, ebr=None if ebr is None else ebr * S)


def test_chain_as_sfdisk_writes_it():
    old = sector0([(0x80, 0x83, 2048, 16384), (0, 0x0F, 18432, 999)])
    logicals = [row(6, 38912, 32768, "0x07", ebr=36864),
                row(5, 20480, 16384, ebr=18432)]
    writes = dict(mbr_writes(old, [row(1, 2048, 16384, boot=True)], S,
                             logicals=logicals))
    assert sorted(writes) == [0, 18432 * S, 36864 * S]
    assert writes[0][:440] == b"\xfa" * 440           # boot code kept
    assert records(writes[0]) == [(0x80, 0x83, 2048, 16384),
                                  (0, 0x0F, 18432, 71680 - 18432),
                                  (0, 0, 0, 0), (0, 0, 0, 0)]
    assert records(writes[18432 * S]) == [(0, 0x83, 2048, 16384),
                                          (0, 0x05, 18432, 34816),
                                          (0, 0, 0, 0), (0, 0, 0, 0)]
    assert records(writes[36864 * S]) == [(0, 0x07, 2048, 32768)] + \
        [(0, 0, 0, 0)] * 3
    for raw in writes.values():
        assert raw[510:] == b"\x55\xaa"
    assert writes[36864 * S][:446] == bytes(446)


def test_a_second_extended_record_is_cleared():
    old = sector0([(0, 0x83, 2048, 16384), (0, 0x05, 18432, 20000),
                   (0, 0x05, 40000, 20000)])
    writes = dict(mbr_writes(old, [], S, logicals=[
        row(5, 20480, 16384, ebr=18432), row(6, 38912, 32768, ebr=36864)]))
    assert records(writes[0])[1:3] == [(0, 0x05, 18432, 53248),
                                       (0, 0, 0, 0)]


@pytest.mark.parametrize("logicals", [[], [row(5, 20480, 16384, ebr=18432)]])
def test_a_kept_partition_in_the_extended_slot_moves_the_extended_record(
        logicals):
    """A protected partition kept from the target as number 2, the slot of
    the image's extended record: that record goes to the first empty slot
    (it was overwritten, and the logicals lost, before issue 14)."""
    old = sector0([(0, 0x83, 2048, 16384), (0, 0x05, 18432, 2048 + 16384)])
    kept = row(2, 100000, 2048, "0x27")
    raw = mbr_writes(old, [row(1, 2048, 16384), kept], S,
                     logicals=logicals)[-1][1]
    assert records(raw) == [(0, 0x83, 2048, 16384), (0, 0x27, 100000, 2048),
                            (0, 0x05, 18432, 2048 + 16384), (0, 0, 0, 0)]
    with pytest.raises(TableError, match="no MBR slot is left"):
        mbr_writes(old, [row(1, 2048, 16384), kept, row(3, 200000, 8),
                         row(4, 300000, 8)], S, logicals=logicals)


@pytest.mark.parametrize("logicals, match", [
    ([row(5, 20480, 16384, ebr=20480)], "EBR of logical partition 5"),
    ([row(5, 20480, 16384, ebr=18432), row(6, 30000, 8, ebr=30000 - 2048)],
     "EBR of logical partition 6"),
    ([row(5, 20480, 16384, ebr=18432), row(7, 38912, 8, ebr=36864)],
     "not 5 onwards"),
])
def test_a_chain_that_cannot_be_is_refused(logicals, match):
    with pytest.raises(TableError, match=match):
        ebr_chain(logicals, S)


def test_no_extended_record_is_refused():
    with pytest.raises(TableError, match="no extended partition record"):
        mbr_writes(sector0([(0, 0x83, 2048, 16384)]), [], S,
                   logicals=[row(5, 20480, 16384, ebr=18432)])


# -- the layout ---------------------------------------------------------------

def meta(parts, ebrs, disk=64 * MiB):
    """Image metadata: parts (number, start MiB, size MiB, fs), ebr areas
    (start, size) in MiB."""
    areas = [dict(kind="head", start=0, size=MiB)]
    areas += [dict(kind="ebr", start=s * MiB, size=n * MiB) for s, n in ebrs]
    areas += [dict(kind="partition", partition=n, start=s * MiB,
                   size=z * MiB, filesystem=fs, method="used-blocks",
                   used_bytes=MiB) for n, s, z, fs in parts]
    return dict(table=dict(kind="mbr", disk_size=disk, sector_size=S),
                areas=areas)


SOURCE = meta([(1, 1, 8, "ext4"), (5, 10, 8, "ext4"), (6, 19, 8, "ntfs")],
              [(9, 1), (18, 1)])


def places(m, size, **kw):
    return {p.number: (p.new_start // MiB, p.new_size // MiB,
                       None if p.ebr is None else p.ebr // MiB)
            for p in plan_layout(m, size, S, **kw)}


def test_same_places_leave_the_chain_alone():
    assert places(SOURCE, 64 * MiB) == {1: (1, 8, None), 5: (10, 8, None),
                                        6: (19, 8, None)}


def test_size_of_the_first_logical_moves_the_next_and_its_ebr():
    assert places(SOURCE, 64 * MiB, sizes={5: 12 * MiB}) == {
        1: (1, 8, None), 5: (10, 12, 9), 6: (23, 8, 22)}


def test_grow_of_a_primary_before_the_extended_moves_the_chain():
    assert places(SOURCE, 64 * MiB, sizes={1: 16 * MiB}) == {
        1: (1, 16, None), 5: (18, 8, 17), 6: (27, 8, 26)}


def test_grow_of_the_last_logical():
    assert places(SOURCE, 128 * MiB, mode="grow") == {
        1: (1, 8, None), 5: (10, 8, 9), 6: (19, 109, 18)}


def test_a_primary_after_the_extended_keeps_its_gap():
    m = meta([(1, 1, 8, "ext4"), (5, 10, 8, "ext4"), (3, 19, 8, "ext4")],
             [(9, 1)])
    assert places(m, 64 * MiB, sizes={5: 10 * MiB}) == {
        1: (1, 8, None), 5: (10, 10, 9), 3: (21, 8, None)}


@pytest.mark.parametrize("parts, ebrs, match", [
    # logical 6 lies before 5 on the disk: its number is its chain order
    ([(1, 1, 8, "ext4"), (6, 10, 8, "ext4"), (5, 19, 8, "ext4")],
     [(9, 1), (18, 1)], "not their disk order"),
    # a primary inside the span of the logicals (two extended partitions)
    ([(1, 1, 8, "ext4"), (5, 10, 8, "ext4"), (3, 19, 8, "ext4"),
      (6, 28, 8, "ext4")], [(9, 1), (27, 1)], "primary partition 3"),
    # logical 5 overlaps logical 6
    ([(1, 1, 8, "ext4"), (5, 10, 10, "ext4"), (6, 19, 8, "ext4")],
     [(9, 1)], "5 and 6 overlap"),
    # logical 5 not in the image (captured with --partitions=1,6)
    ([(1, 1, 8, "ext4"), (6, 19, 8, "ext4")], [(9, 1), (18, 1)],
     r"logical partitions \[6\] only"),
    # no EBR area before logical 6 (its EBR sat elsewhere, cut away)
    ([(1, 1, 8, "ext4"), (5, 10, 8, "ext4"), (6, 18, 8, "ext4")],
     [(9, 1)], "partition 6 has no EBR"),
])
def test_chains_that_cannot_be_kept_are_refused(parts, ebrs, match):
    with pytest.raises(TargetError, match=match):
        plan_layout(meta(parts, ebrs), 128 * MiB, S, mode="grow")
    # Where they were, they are restored as today.
    assert all(p.ebr is None for p in plan_layout(meta(parts, ebrs),
                                                  64 * MiB, S))


def test_a_dos_era_lead_of_63_sectors_is_kept():
    """Logicals that sat 63 sectors after their EBR (fdisk before 2010)
    keep that lead when they move: their starts align to 1 MiB, each EBR
    63 sectors before."""
    m = meta([(1, 1, 8, "ext4"), (5, 10, 8, "ext4"), (6, 19, 8, "ext4")], [])
    m["areas"][1:1] = [dict(kind="ebr", start=s * MiB - 63 * S, size=63 * S)
                       for s in (10, 19)]
    got = [(p.number, p.new_start, p.ebr) for p in
           plan_layout(m, 64 * MiB, S, sizes={5: 12 * MiB})]
    assert got == [(1, MiB, None), (5, 10 * MiB, 10 * MiB - 63 * S),
                   (6, 23 * MiB, 23 * MiB - 63 * S)]


# -- protected partitions kept beside them ------------------------------------

def _plan(numbers, kept):
    """Image partitions (number, end MiB) and kept (number, start MiB)."""
    from types import SimpleNamespace as NS
    return NS(stream=NS(metadata=dict(table=dict(kind="mbr"))),
              placements=[NS(number=n, new_start=0, new_size=end * MiB)
                          for n, end in numbers], target="t.img",
              kept=[(NS(number=n, start=start * MiB), "OEM recovery")
                    for n, start in kept])


def test_kept_partitions_get_primary_slots_and_leave_one_for_the_extended():
    from diskimage.restoreplan import kept_numbers
    image = [(1, 20), (5, 40), (6, 60)]
    # a protected logical of the target gets a primary slot (a kept logical
    # would be left out of the table: only the image's are in the chain);
    # one after the image's partitions the last free slot, so that the
    # extended record (slot 2 here) comes before it, in disk order.
    assert kept_numbers(_plan(image, [(5, 100)])) == [4]
    assert kept_numbers(_plan(image, [(1, 100)])) == [4]
    assert kept_numbers(_plan([(1, 20)], [(7, 90), (5, 50), (6, 70)])) == \
        [4, 2, 3]
    assert kept_numbers(_plan([(1, 90), (5, 99)], [(3, 0)])) == [3]
    with pytest.raises(TargetError, match="extended partition"):
        kept_numbers(_plan([(1, 20), (5, 40)], [(2, 50), (3, 60), (4, 70)]))


def test_an_empty_extended_partition_a_primary_grew_over_is_dropped():
    old = sector0([(0, 0x83, 2048, 16384), (0, 0x05, 40960, 32768)])
    grown = [row(1, 2048, 260096)]
    assert records(mbr_writes(old, grown, S)[-1][1]) == \
        [(0, 0x83, 2048, 260096)] + [(0, 0, 0, 0)] * 3
    # not overlapped, or not empty (its logicals stay where they were and
    # keep their EBRs): kept
    kept = [row(1, 2048, 16384)]
    assert records(mbr_writes(old, kept, S)[-1][1]) == records(old)
    unmoved = row(5, 43008, 100)
    assert records(mbr_writes(old, grown + [unmoved], S)[-1][1])[1] == \
        records(old)[1]


def test_an_image_of_the_logicals_alone_stays_and_grows_in_place():
    """`capture --partitions=5,6`: the first placement is a logical whose
    EBR lies before it; nothing moves without options, and --grow keeps
    the EBRs where they were."""
    m = meta([(5, 10, 8, "ext4"), (6, 19, 8, "ntfs")], [(9, 1), (18, 1)])
    assert places(m, 64 * MiB) == {5: (10, 8, None), 6: (19, 8, None)}
    assert places(m, 64 * MiB, mode="grow") == {5: (10, 8, 9),
                                                6: (19, 45, 18)}
