"""A small fuzz of the LVM2 map: a real PV's text metadata and binary
headers mutated (fixed seeds, the CRCs made right again so the parser and
the checks of meaning are reached).  Every mutant must end either in
MapError or in a map that covers every extent lvm2 itself considers
allocated (`pvs --segments` on the mutant, asked for the mutants whose
metadata lvm2 still reads differently from the original), each either
copied whole or through a filesystem map that is the unmutated one's
when the LV's places are the same.  Never another exception, never a
hang (a bounded input: every case runs the map once).
"""

import json
import os
import random
import struct

import pytest

from diskimage.fs.lvm import label as lvlabel
from diskimage.fs.lvm.used import open_volume
from diskimage.fs.usedmap import MapError
from tests import lvmbuild

pytestmark = pytest.mark.needs(*lvmbuild.LVM_TOOLS, "dumpe2fs", "debugfs",
                               root=True)

TEXT_CASES = 300
HEADER_CASES = 120
#: lvm2 is asked about at most this many surviving, changed mutants
LVM_CHECKS = 25


def reader(data):
    return lambda offset, length: bytes(data[offset:offset + length])


def open_bytes(data):
    return open_volume(reader(data), len(data))


@pytest.fixture(scope="module")
def pv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lvmfuzz")
    made = lvmbuild.make_pv(tmp, 32, [("root", 8, "ext4"), ("raw", 3, None),
                                      ("gap", 2, None)])
    with lvmbuild.attached(made.image) as (lvm_run, dev):
        lvm_run("lvextend", "-q", "-L", "+2m", "vgtest/raw")  # 2 segments
        lvm_run("lvremove", "-q", "-y", "vgtest/gap")
    with open(made.image, "rb") as f:
        return made, f.read(), tmp


def with_text(data, raw, offset=None, length=None, area=0):
    """The PV with its current text metadata (in metadata area `area`)
    replaced by the bytes `raw` (CRCs right); `offset`/`length`: what
    raw_locn says instead."""
    data = bytearray(data)
    lab = lvlabel.read_label(reader(data), len(data))
    start, size = lab.metadata_areas[area]
    meta = lvlabel.read_metadata(reader(data), (start, size))
    at = meta.where[0][0] - start
    raw = raw[:size - 512]
    first = min(len(raw), size - at)
    data[start + at:start + at + first] = raw[:first]
    rest = raw[first:]
    data[start + 512:start + 512 + len(rest)] = rest
    header = bytearray(data[start:start + 512])
    struct.pack_into("<QQI", header, 40,
                     at if offset is None else offset,
                     len(raw) if length is None else length,
                     lvlabel.calc_crc(raw))
    struct.pack_into("<I", header, 0, lvlabel.calc_crc(bytes(header[4:])))
    data[start:start + 512] = header
    return bytes(data)


def current_text(data):
    lab = lvlabel.read_label(reader(data), len(data))
    return lvlabel.read_metadata(reader(data),
                                 lab.metadata_areas[0]).text.encode()


HOSTILE = [b"{" * 5000, b"[" * 5000, b"9" * 5000, b"-" + b"9" * 400,
           b'"' + b"x" * 100000, b'"\\', b"\\", b"\0", b"\xff\xfe",
           b"1e999999", b"18446744073709551616", b"-1", b"0", b"[]",
           b'["pv0", 0]', b"}", b"= = =", b"#", b"\n", b"a=1 " * 3000,
           b'"', b"\xc3", b"1.5", b"99999999999999999999999"]


def mutate_text(text, rng):
    text = bytearray(text)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(text))
        how = rng.randrange(6)
        if how == 0:                        # a digit changed
            digits = [i for i, c in enumerate(text) if 48 <= c <= 57]
            at = rng.choice(digits)
            text[at] = rng.choice(b"0123456789")
        elif how == 1:                      # a byte changed
            text[at] = rng.randrange(256)
        elif how == 2:                      # a range cut out
            del text[at:at + rng.randint(1, 200)]
        elif how == 3:                      # a range repeated elsewhere
            piece = text[at:at + rng.randint(1, 400)]
            where = rng.randrange(len(text))
            text[where:where] = piece
        elif how == 4:                      # something hostile put in
            text[at:at] = rng.choice(HOSTILE)
        else:                               # a number made huge
            digits = [i for i, c in enumerate(text) if 48 <= c <= 57]
            at = rng.choice(digits)
            text[at:at] = rng.choice([b"9" * 30, b"9" * 5000, b"4294967"])
    return bytes(text)


def lvm2_allocated(tmp, data, name):
    """[(pv byte offset, bytes)] of every extent lvm2 counts as allocated
    on the mutant, or None when lvm2 refuses its metadata."""
    image = tmp / name
    with open(image, "wb") as f:
        f.write(data)
    try:
        with lvmbuild.attached(image) as (lvm_run, dev):
            got = lvm_run("pvs", "--segments", "--reportformat", "json",
                          "--units", "b", "--nosuffix", "-o",
                          "pe_start,vg_extent_size,pvseg_start,pvseg_size,"
                          "lv_name", check=False)
    finally:
        os.unlink(image)
    if got.returncode != 0:
        return None
    # lvm2 may say "Retrying metadata scan." among the JSON lines
    out = "\n".join(line for line in got.stdout.splitlines()
                    if line.strip()[:1] in ('{', '}', '[', ']', '"'))
    rows = next(iter(json.loads(out)["report"][0].values()))
    if not rows:                        # no VG seen on the PV
        return None
    found = []
    for row in rows:
        if row["lv_name"]:
            extent = int(row["vg_extent_size"])
            found.append((int(row["pe_start"]) +
                          int(row["pvseg_start"]) * extent,
                          int(row["pvseg_size"]) * extent))
    return found


def covered(runs, offset, size):
    for o, n in runs:
        if o <= offset and offset + size <= o + n:
            return True
    return False


def check(mutant, original, allocated=None):
    """MapError, or a map that keeps every allocated extent."""
    try:
        used = open_bytes(mutant)
    except MapError:
        return "refused"
    runs = list(used.runs)
    mapped = {}
    for lv in used.volumes:
        if lv["stored"] == "used-blocks":
            mapped[lv["name"]] = lv
        else:
            for _, offset, size in lv["extents"]:
                assert covered(runs, offset, size), lv
    before = {lv["name"]: lv for lv in original.volumes}
    old_runs = list(original.runs)
    for name, lv in mapped.items():
        old = before.get(name)
        if old and old["extents"] == lv["extents"] and \
                old["stored"] == "used-blocks":
            for _, offset, size in lv["extents"]:
                assert clip(runs, offset, size) == \
                    clip(old_runs, offset, size), name
    for offset, size in allocated or ():
        inside = any(p <= offset and offset + size <= p + n
                     for lv in mapped.values()
                     for _, p, n in lv["extents"])
        assert inside or covered(runs, offset, size), (offset, size)
    return "mapped"


def clip(runs, offset, size):
    return [(max(o, offset), min(o + n, offset + size) - max(o, offset))
            for o, n in runs if o < offset + size and o + n > offset]


def test_mutated_text_is_refused_or_keeps_every_extent(pv):
    made, data, tmp = pv
    original = open_bytes(data)
    text = current_text(data)
    outcome = {"refused": 0, "mapped": 0}
    asked = 0
    for seed in range(TEXT_CASES):
        rng = random.Random(seed)
        raw = mutate_text(text, rng)
        mutant = with_text(data, raw + b"\0")
        allocated = None
        try:
            changed = open_bytes(mutant).describe() != original.describe()
        except MapError:
            changed = False
        if changed and asked < LVM_CHECKS:
            asked += 1
            allocated = lvm2_allocated(tmp, mutant, f"m{seed}.img")
        outcome[check(mutant, original, allocated)] += 1
    # both ends are reached: the fuzz is not all refused nor all harmless
    assert outcome["refused"] > TEXT_CASES // 4, outcome
    assert outcome["mapped"] > 10, outcome


def test_unmutated_map_covers_what_lvm2_allocates(pv):
    made, data, tmp = pv
    allocated = lvm2_allocated(tmp, data, "orig.img")
    assert len(allocated) == 3              # root, raw in two segments
    assert check(data, open_bytes(data), allocated) == "mapped"


def test_mutated_headers_are_refused_or_keep_every_extent(pv):
    made, data, _ = pv
    original = open_bytes(data)
    text = current_text(data) + b"\0"
    lab = lvlabel.read_label(reader(data), len(data))
    start, size = lab.metadata_areas[0]
    big = [0, 1, 511, 512, size - 1, size, size + 1, 1 << 32, 1 << 63,
           (1 << 64) - 1, (1 << 64) - 512, len(text) - 1]
    for seed in range(HEADER_CASES):
        rng = random.Random(1000 + seed)
        how = rng.randrange(4)
        if how == 0:                        # raw_locn offset and size
            mutant = with_text(data, text, rng.choice(big + [None]),
                               rng.choice(big + [None]))
        elif how == 1:                      # mda_header start, size
            mutant = bytearray(data)
            header = bytearray(mutant[start:start + 512])
            struct.pack_into("<QQ", header, 24, rng.choice(big + [start]),
                             rng.choice(big + [size]))
            struct.pack_into("<I", header, 0,
                             lvlabel.calc_crc(bytes(header[4:])))
            mutant[start:start + 512] = header
        else:                               # label sector fields
            mutant = bytearray(data)
            sector = bytearray(mutant[512:1024])
            offset_xl, = struct.unpack_from("<I", sector, 20)
            at = rng.choice([20, offset_xl + 32] +
                            list(range(offset_xl + 40, offset_xl + 120, 8)))
            width = 4 if at == 20 else 8
            struct.pack_into("<Q" if width == 8 else "<I", sector, at,
                             rng.choice(big) % (1 << (8 * width)))
            struct.pack_into("<I", sector, 16,
                             lvlabel.calc_crc(bytes(sector[20:])))
            mutant[512:1024] = sector
        check(bytes(mutant), original)


def test_a_huge_number_is_a_map_error(pv):
    _, data, _ = pv
    text = current_text(data).replace(b"seqno = ", b"seqno = " + b"9" * 5000,
                                      1)
    with pytest.raises(MapError, match="number"):
        open_bytes(with_text(data, text + b"\0"))


def test_many_lvs_are_a_map_error_not_a_hang(pv):
    _, data, _ = pv
    text = current_text(data)
    at = text.index(b"logical_volumes {") + len(b"logical_volumes {")
    many = b"".join(b'l%d { id = "x" segment_count = 0 }\n' % n
                    for n in range(60000))
    with pytest.raises(MapError):
        open_bytes(with_text(data, text[:at] + many + text[at:] + b"\0"))


VG_HEAD = ('contents = "Text Format Volume Group"\nversion = 1\n'
           'vg { id = "v" seqno = 1 extent_size = 2048\n')
PVS = 'physical_volumes { pv0 { id = "P" pe_start = 2048 pe_count = 30 } }\n'


@pytest.mark.parametrize("body,why", [
    ("physical_volumes = 5", "physical_volumes is not a section"),
    (PVS + 'logical_volumes = "x"', "logical_volumes is not a section"),
    (PVS + "l = [" + "1, " * 200_000 + "]", "more than 100000 items"),
    (PVS + "n = 9223372036854775808", "past lvm2's 64 bits"),
    (PVS + "n = -9223372036854775809", "past lvm2's 64 bits"),
    (PVS + "logical_volumes {" + "".join(
        f'l{n} {{ id = "x" segment_count = 1 segment1 {{ start_extent = 0 '
        f'extent_count = 1 type = "thin" thin_pool = "l{n + 1}" }} }}\n'
        for n in range(20_000)) + "}", "more than 100000 items"),
])
def test_hostile_sections_are_map_errors(body, why):
    from diskimage.fs.lvm.volumes import volume_group
    with pytest.raises(MapError, match=why):
        volume_group(VG_HEAD + body + "}\n", "P", 64 << 20)


def test_many_thin_lvs_are_judged_in_one_pass():
    # 5,000 LVs, each part of the next: every one copied whole (the
    # judging once compared every LV with every other)
    from diskimage.fs.lvm.volumes import volume_group
    count = 5_000
    body = PVS + "logical_volumes {" + "".join(
        f'l{n} {{ id = "x" segment_count = 1 segment1 {{ start_extent = 0 '
        f'extent_count = 1 type = "thin" thin_pool = "l{(n + 1) % count}" '
        f'}} }}\n' for n in range(count)) + "}"
    group = volume_group(VG_HEAD + body + "}\n", "P", 64 << 20)
    assert len(group.lvs) == count
    assert all(lv.whole.startswith("part of thin LV") for lv in group.lvs)


def test_two_areas_of_one_seqno_must_agree(tmp_path):
    made = lvmbuild.make_pv(tmp_path, 24, [("root", 4, None),
                                           ("other", 4, None)],
                            pv_args=("--pvmetadatacopies", "2"))
    data = made.image.read_bytes()
    open_bytes(data)                    # lvm2's two copies agree
    text = current_text(data)
    at = text.index(b"other {")
    # the second copy, of the same seqno, names LV "other" otherwise
    forgot = text[:at] + b"x" + text[at:].replace(b"other {", b"x {", 1)
    with pytest.raises(MapError, match="same seqno"):
        open_bytes(with_text(data, forgot + b"\0", area=1))
