"""LVM2 physical volumes (diskimage.fs.lvm) against lvm2's own tools on
PVs made by pvcreate/vgcreate/lvcreate (tests/lvmbuild.py; no
device-mapper here, so LVs are never activated and their filesystems are
made through loop devices at their extents).

What lvm2 reports (`pvs`, `vgs`, `lvs`: names, UUIDs, sizes, extent
counts, pe_start) must be what the parser read; each LV's used bytes
what dumpe2fs says; a map-only restore into random bytes must leave lvm2
seeing the same PV, VG and LVs, and each LV's ext4 clean by e2fsck -fn
with every file's sha256.  Hostile metadata (rewritten with valid CRCs)
must raise MapError.
"""

import os
import struct

import pytest

import demodisk
from diskimage.fs import registry
from diskimage.fs.lvm import label as lvlabel
from diskimage.fs.lvm.metadata import parse
from diskimage.fs.lvm.used import open_volume
from diskimage.fs.usedmap import MapError
from tests import lvmbuild
from tests.fsmaps import (MiB, check_fs, map_only_restore, run,
                          tool_used_bytes)

pytestmark = pytest.mark.needs(*lvmbuild.LVM_TOOLS, "dumpe2fs", "e2fsck",
                               "debugfs", root=True)

LVS = [("root", 12, "ext4"), ("data", 8, "ext4"), ("raw", 4, None)]


def reader(data):
    return lambda offset, length: bytes(data[offset:offset + length])


def open_bytes(data):
    return open_volume(reader(data), len(data))


@pytest.fixture(scope="module")
def pv(tmp_path_factory):
    return lvmbuild.make_pv(tmp_path_factory.mktemp("lvm"), 48, LVS)


@pytest.fixture(scope="module")
def pv_bytes(pv):
    with open(pv.image, "rb") as f:
        return f.read()


def lv_file(image, places, path):
    """The bytes of an LV (its pieces in LV order) as a file."""
    with open(image, "rb") as src, open(path, "wb") as dst:
        for offset, size in places:
            dst.write(os.pread(src.fileno(), size, offset))
    return path


# --- against lvm2 ------------------------------------------------------------
def test_detected_and_named_as_blkid(pv):
    tags = lvmbuild.report(pv.image)["pv"]
    with open(pv.image, "rb") as f:
        kind = registry.detect(lambda o, n: os.pread(f.fileno(), n, o), 0,
                               os.path.getsize(pv.image))
    assert kind == "LVM2_member"
    assert run("blkid", "-p", "-o", "value", "-s", "UUID",
               pv.image).stdout.strip() == tags["pv_uuid"]


def test_what_is_parsed_is_what_lvm2_reports(pv, pv_bytes):
    said = lvmbuild.report(pv.image)
    used = open_bytes(pv_bytes)
    vg = used.volume_group
    assert used.uuid == said["pv"]["pv_uuid"]
    assert (vg["name"], vg["uuid"], vg["seqno"]) == (
        said["vg"]["vg_name"], said["vg"]["vg_uuid"],
        int(said["vg"]["vg_seqno"]))
    assert vg["extent_size"] == int(said["vg"]["vg_extent_size"])
    assert vg["pe_start"] == int(said["pv"]["pe_start"])
    assert vg["pe_count"] == int(said["pv"]["pv_pe_count"])
    assert vg["free_extents"] == int(said["vg"]["vg_free_count"])
    assert {lv["name"]: (lv["uuid"], lv["size"]) for lv in used.volumes} \
        == {name: (row["lv_uuid"], int(row["lv_size"]))
            for name, row in said["lv"].items()}
    places = lvmbuild.places(pv.image)
    assert {lv["name"]: [(p, n) for _, p, n in lv["extents"]]
            for lv in used.volumes} == places


def test_used_bytes_are_dumpe2fs_and_the_metadata(pv, pv_bytes, tmp_path):
    used = open_bytes(pv_bytes)
    by_name = {lv["name"]: lv for lv in used.volumes}
    expected = used.volume_group["pe_start"]
    for name, lv in pv.lvs.items():
        if lv.fs == "ext4":
            tool = tool_used_bytes(lv_file(pv.image, lv.places,
                                           tmp_path / name), "ext4")
            assert by_name[name]["used_bytes"] == tool
            assert by_name[name]["stored"] == "used-blocks"
            assert by_name[name]["filesystem"] == "ext4"
        else:
            tool = lv.size                 # no filesystem: copied whole
            assert by_name[name]["stored"] == "whole"
        expected += tool
    assert used.used_bytes == expected
    assert used.used_bytes < len(pv_bytes) // 3
    assert used.warnings == ["LV raw (no filesystem recognised): its "
                             "4194304 bytes on this PV copied whole"]


def test_map_only_restore_keeps_pv_vg_lvs_and_files(pv, pv_bytes, tmp_path):
    used = open_bytes(pv_bytes)
    target = map_only_restore(pv.image, tmp_path / "target.img",
                              list(used.runs), seed=3)
    assert lvmbuild.report(target) == lvmbuild.report(pv.image)
    for lv in pv.lvs.values():
        if lv.fs:
            (offset, size), = lv.places
            check_fs(target, offset, size, lv.fs, lv.digests)


def test_a_split_lv_is_mapped_through_its_segments(tmp_path):
    # root gets a second segment after data: lvextend with data in between
    made = lvmbuild.make_pv(tmp_path, 40, [("root", 6, None),
                                           ("data", 4, None)])
    with lvmbuild.attached(made.image) as (lvm_run, dev):
        lvm_run("lvextend", "-q", "-L", "+6m", "vgtest/root")
    places = lvmbuild.places(made.image)["root"]
    assert len(places) == 2
    size = sum(n for _, n in places)
    tree = tmp_path / "tree"
    digests = demodisk.make_tree(tree, 60, 9, max_size=32 * 1024)
    fs = tmp_path / "root.img"
    with open(fs, "wb") as f:
        f.truncate(size)
    run("mkfs.ext4", "-q", "-F", "-d", tree, fs)
    with open(fs, "rb") as src, open(made.image, "r+b") as dst:
        at = 0
        for offset, n in places:
            os.pwrite(dst.fileno(), os.pread(src.fileno(), n, at), offset)
            at += n
    with open(made.image, "rb") as f:
        data = f.read()
    used = open_bytes(data)
    root = next(lv for lv in used.volumes if lv["name"] == "root")
    assert root["stored"] == "used-blocks"
    assert root["used_bytes"] == tool_used_bytes(fs, "ext4")
    target = map_only_restore(made.image, tmp_path / "target.img",
                              list(used.runs), seed=4)
    back = lv_file(target, places, tmp_path / "back.img")
    check_fs(back, 0, size, "ext4", digests)


# --- hostile and damaged metadata -------------------------------------------
def rewritten(pv_bytes, edit, wrap=False):
    """The PV with its current text metadata replaced by edit(text), CRCs
    made right again (so only the checks of meaning can refuse it);
    `wrap`: the text placed so that it wraps round the circular buffer."""
    data = bytearray(pv_bytes)
    lab = lvlabel.read_label(reader(data), len(data))
    start, size = lab.metadata_areas[0]
    meta = lvlabel.read_metadata(reader(data), (start, size))
    raw = edit(meta.text).encode() + b"\0"
    offset = size - len(raw) // 2 if wrap else \
        meta.where[0][0] - start
    first = min(len(raw), size - offset)
    data[start + offset:start + offset + first] = raw[:first]
    rest = raw[first:]
    data[start + 512:start + 512 + len(rest)] = rest
    header = bytearray(data[start:start + 512])
    struct.pack_into("<QQI", header, 40, offset, len(raw),
                     lvlabel.calc_crc(raw))
    struct.pack_into("<I", header, 0, lvlabel.calc_crc(bytes(header[4:])))
    data[start:start + 512] = header
    return bytes(data)


def test_wrapped_metadata_is_read(pv_bytes):
    data = rewritten(pv_bytes, lambda text: text, wrap=True)
    assert open_bytes(data).describe() == open_bytes(pv_bytes).describe()


@pytest.mark.parametrize("old,new,why", [
    ("pe_count = 47", "pe_count = 4700", "run past the PV"),
    ('"pv0", 12', '"pv0", 0', "overlap"),
    ('"pv0", 12', '"pv0", 46', "outside the PV"),
    ('"pv0", 12', '"pv7", 12', "unknown PV"),
    ("segment_count = 1", "segment_count = 2", "segment2 missing"),
    ("stripe_count = 1", "stripe_count = 2", "stripe_count"),
    ("extent_size = 2048", "extent_size = 0", "extent_size 0"),
    ("extent_size = 2048", 'extent_size = "x"', "not a number"),
    ("seqno", "seqno = 1\nseqno", "given twice"),
    ("version = 1", "version = 2", "version 1"),
    ("logical_volumes {", "logical_volumes { {", "expected"),
])
def test_hostile_metadata_is_refused(pv_bytes, old, new, why):
    def edit(text):
        assert old in text
        return text.replace(old, new, 1)
    with pytest.raises(MapError, match=why):
        open_bytes(rewritten(pv_bytes, edit))


@pytest.mark.parametrize("where,why", [
    (512 + 100, "label: CRC"),                 # inside the label sector
    (4096 + 100, "header CRC"),                # inside the mda_header
    ("text", "text metadata CRC"),
])
def test_flipped_bits_are_refused(pv_bytes, where, why):
    data = bytearray(pv_bytes)
    if where == "text":
        lab = lvlabel.read_label(reader(data), len(data))
        meta = lvlabel.read_metadata(reader(data), lab.metadata_areas[0])
        where = meta.where[0][0] + 10
    data[where] ^= 0x20
    with pytest.raises(MapError, match=why):
        open_bytes(bytes(data))


def test_a_map_that_cannot_be_trusted_copies_its_lv_whole(pv, pv_bytes):
    data = bytearray(pv_bytes)
    (offset, _), = pv.lvs["data"].places
    data[offset + 1024 + 0x38:offset + 1024 + 0x3a] = b"\0\0"   # s_magic
    used = open_bytes(bytes(data))
    lv = next(v for v in used.volumes if v["name"] == "data")
    assert lv["stored"] == "whole" and lv["used_bytes"] == 8 * MiB
    assert any(w.startswith("LV data (") for w in used.warnings)


# --- the text grammar --------------------------------------------------------
def test_the_grammar():
    tree = parse('# comment\nvg {\n  id = "a\\"b\\\\c"  # tail\n'
                 '  n = -3 f = 0.5\n  l = ["pv0", 0, "pv1", 12,]\n'
                 '  e = []\n  lv-1.x+ { a = 1 }\n}\n')
    assert tree == {"vg": {"id": 'a"b\\c', "n": -3, "f": 0.5,
                           "l": ["pv0", 0, "pv1", 12], "e": [],
                           "lv-1.x+": {"a": 1}}}


@pytest.mark.parametrize("text", [
    "a = ", "a = [1, 2", "a { b = 1", "a = 1 }", 'a = "open', "a = {",
    "a = [[1]]", "= 1", "a == 1", "a" + " { x" * 40,
])
def test_the_grammar_refuses(text):
    with pytest.raises(MapError):
        parse(text)


# --- what is copied whole ----------------------------------------------------
THIN = '''
pool {
id = "Tp0olA-aaaa-bbbb-cccc-dddd-eeee-ffffff"
status = ["READ", "WRITE", "VISIBLE"]
flags = []
segment_count = 1
segment1 {
start_extent = 0
extent_count = 8
type = "thin-pool"
metadata = "pool_tmeta"
pool = "pool_tdata"
transaction_id = 1
chunk_size = 128
discards = "passdown"
zero_new_blocks = 1
}
}
thin {
id = "Th1nLV-aaaa-bbbb-cccc-dddd-eeee-ffffff"
status = ["READ", "WRITE", "VISIBLE"]
flags = []
segment_count = 1
segment1 {
start_extent = 0
extent_count = 16
type = "thin"
thin_pool = "pool"
transaction_id = 0
device_id = 1
}
}
'''


def thin_pool(text):
    """lvm2's metadata of a thin pool made of the LVs pdata and pmeta,
    with one thin LV (what lvcreate --type thin-pool writes)."""
    text = text.replace("pdata {", "pool_tdata {").replace(
        "pmeta {", "pool_tmeta {")
    visible = 'status = ["READ", "WRITE", "VISIBLE"]'
    for name in ("pool_tdata", "pool_tmeta"):
        at = text.index(visible, text.index(name + " {"))
        text = text[:at] + 'status = ["READ", "WRITE"]' + \
            text[at + len(visible):]
    at = text.index("logical_volumes {") + len("logical_volumes {")
    return text[:at] + THIN + text[at:]


def test_a_thin_pool_is_copied_whole(tmp_path):
    # pdata holds an ext4: inside a pool it must not be mapped as one
    made = lvmbuild.make_pv(tmp_path, 40, [("root", 8, "ext4"),
                                           ("pdata", 8, "ext4"),
                                           ("pmeta", 2, None)])
    lvmbuild.rewrite_metadata(made.image, thin_pool)
    said = lvmbuild.report(made.image)["lv"]
    assert said["pool"]["segtype"] == "thin-pool"
    assert said["thin"]["segtype"] == "thin"
    with open(made.image, "rb") as f:
        used = open_bytes(f.read())
    by_name = {lv["name"]: lv for lv in used.volumes}
    assert set(by_name) == {"root", "pool", "thin", "pool_tdata",
                            "pool_tmeta"}
    assert by_name["root"]["stored"] == "used-blocks"
    for name, size in (("pool_tdata", 8 * MiB), ("pool_tmeta", 2 * MiB)):
        assert by_name[name]["stored"] == "whole"
        assert by_name[name]["used_bytes"] == size
        assert by_name[name]["reason"] == "part of thin-pool LV pool"
        assert f"LV {name} (part of thin-pool LV pool): its {size} bytes " \
               f"on this PV copied whole" in used.warnings
    assert by_name["thin"]["extents"] == []
    runs = list(used.runs)
    for lv in ("pool_tdata", "pool_tmeta"):
        (_, offset, size), = by_name[lv]["extents"]
        assert any(o <= offset and offset + size <= o + n for o, n in runs)


def test_a_group_over_two_pvs_is_copied_whole(tmp_path):
    images = []
    for name in ("a.img", "b.img"):
        images.append(tmp_path / name)
        with open(images[-1], "wb") as f:
            f.truncate(24 * MiB)
    with lvmbuild.attached_all(*images) as (lvm_run, devs):
        for dev in devs:
            lvm_run("pvcreate", "-q", dev)
        lvm_run("vgcreate", "-q", "-s", "1m", "vgtwo", *devs)
        lvm_run("lvcreate", "-q", "-an", "-Zn", "-L", "8m", "-n", "small",
                "vgtwo", devs[0])
        lvm_run("lvcreate", "-q", "-an", "-Zn", "-L", "30m", "-n", "wide",
                "vgtwo")
    for image in images:
        with open(image, "rb") as f:
            used = open_bytes(f.read())
        assert used.volume_group["pv_count"] == 2
        on_pv = 0
        for lv in used.volumes:
            assert lv["stored"] == "whole"
            assert lv["reason"] == "volume group vgtwo spans 2 PVs"
            on_pv += sum(n for _, _, n in lv["extents"])
        assert on_pv > 0
        assert used.used_bytes == used.volume_group["pe_start"] + on_pv


# --- the label and metadata areas --------------------------------------------
def relabelled(pv_bytes, edit):
    """The PV with its label sector changed by edit(bytearray sector) and
    its CRC made right again."""
    data = bytearray(pv_bytes)
    sector = bytearray(data[512:1024])
    edit(sector)
    struct.pack_into("<I", sector, 16, lvlabel.calc_crc(bytes(sector[20:])))
    data[512:1024] = sector
    return bytes(data)


def test_a_label_in_the_wrong_sector_is_refused(pv_bytes):
    data = bytearray(pv_bytes)
    data[0:512], data[512:1024] = data[512:1024], bytes(512)
    with pytest.raises(MapError, match="says it is in sector 1"):
        open_bytes(bytes(data))
    with pytest.raises(MapError, match="no LABELONE"):
        open_bytes(bytes(1024) + pv_bytes[1024:])


def test_areas_outside_the_pv_are_refused(pv_bytes):
    def far(sector):                    # the metadata area's offset
        offset_xl, = struct.unpack_from("<I", sector, 20)
        struct.pack_into("<Q", sector, offset_xl + 40 + 32, 1 << 40)
    with pytest.raises(MapError, match="outside the PV"):
        open_bytes(relabelled(pv_bytes, far))

    def endless(sector):                # no zero entry ends the lists
        offset_xl, = struct.unpack_from("<I", sector, 20)
        for at in range(offset_xl + 40, 512 - 15, 16):
            struct.pack_into("<QQ", sector, at, 4096, 4096)
    with pytest.raises(MapError, match="no end|data areas"):
        open_bytes(relabelled(pv_bytes, endless))


def test_a_second_metadata_area_is_kept(tmp_path):
    made = lvmbuild.make_pv(tmp_path, 40, [("root", 8, "ext4")],
                            pv_args=("--pvmetadatacopies", "2"))
    with open(made.image, "rb") as f:
        data = f.read()
    lab = lvlabel.read_label(reader(data), len(data))
    assert len(lab.metadata_areas) == 2
    used = open_bytes(data)
    runs = list(used.runs)
    for offset, size in lab.metadata_areas:
        assert any(o <= offset and offset + size <= o + n for o, n in runs)
    target = map_only_restore(made.image, tmp_path / "target.img", runs,
                              seed=6)
    assert lvmbuild.report(target) == lvmbuild.report(made.image)
    (offset, size), = made.lvs["root"].places
    check_fs(target, offset, size, "ext4", made.lvs["root"].digests)
