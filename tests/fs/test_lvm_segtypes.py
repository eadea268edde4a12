"""LVs that are not plain linear LVs of a known filesystem are copied
whole, whatever they hold: RAID, mirror, snapshot, cache, writecache,
integrity, pvmove and the hidden sub-LVs they are made of (VDO and thin
external origins at the metadata level: lvm2 wants a VDO pool's every
field).  lvcreate refuses these without device-mapper, so the metadata
is written the way lvm2 would (the LV "img", an ext4, becomes the data
sub-LV, "meta" the metadata sub-LV) and put in by lvm2's own `vgcfgrestore --force`
(tests/lvmbuild.rewrite_metadata); lvm2's `lvs` must then report the
segment type, and the map must keep the sub-LV's every extent although
its ext4 would map to a few blocks.
"""

import pytest

from diskimage.fs.lvm.used import open_volume
from diskimage.fs.usedmap import MapError
from tests import lvmbuild
from tests.fsmaps import MiB

pytestmark = pytest.mark.needs(*lvmbuild.LVM_TOOLS, "vgcfgbackup",
                               "vgcfgrestore", "dumpe2fs", root=True)

VISIBLE = 'status = ["READ", "WRITE", "VISIBLE"]'


def lv_text(name, extents, kind, fields, status=VISIBLE):
    return (f'{name} {{\nid = "{(name + "x" * 32)[:6]}-aaaa-bbbb-cccc-'
            f'dddd-eeee-ffffff"\n{status}\nflags = []\nsegment_count = 1\n'
            f'segment1 {{\nstart_extent = 0\nextent_count = {extents}\n'
            f'type = "{kind}"\n{fields}\n}}\n}}\n')


#: name: ({old LV: (new name, status)}, LVs added, {LV: reason}, lvs says)
CASES = {
    "raid1": (
        {"img": ("lv_rimage_0", '["READ", "WRITE"]'),
         "meta": ("lv_rmeta_0", '["READ", "WRITE"]')},
        [lv_text("lv", 8, "raid1", 'device_count = 1\nregion_size = 1024\n'
                 'raids = ["lv_rmeta_0", "lv_rimage_0"]')],
        {"lv_rimage_0": "part of raid1 LV lv",
         "lv_rmeta_0": "part of raid1 LV lv"}, {"lv": "raid1"}),
    "mirror": (
        {"img": ("lv_mimage_0", '["READ", "WRITE"]'),
         "meta": ("lv_mlog", '["READ", "WRITE"]')},
        [lv_text("lv", 8, "mirror", 'mirror_count = 1\nmirror_log = '
                 '"lv_mlog"\nregion_size = 1024\nmirrors = ["lv_mimage_0", '
                 '0]')],
        {"lv_mimage_0": "part of mirror LV lv",
         "lv_mlog": "part of mirror LV lv"}, {"lv": "mirror"}),
    "snapshot": (
        {"img": ("snap", '["READ", "WRITE", "VISIBLE"]')},
        [lv_text("snapshot0", 8, "snapshot", 'chunk_size = 8\norigin = '
                 '"root"\ncow_store = "snap"', 'status = ["READ"]')],
        {"snap": "part of snapshot LV snapshot0",
         "root": "part of snapshot LV snapshot0"}, {"snap": "linear"}),
    "cache": (
        {"img": ("cpool_cdata", '["READ", "WRITE"]'),
         "meta": ("cpool_cmeta", '["READ", "WRITE"]'),
         "root": ("lv_corig", '["READ", "WRITE"]')},
        [lv_text("cpool", 8, "cache-pool", 'data = "cpool_cdata"\n'
                 'metadata = "cpool_cmeta"\nchunk_size = 128\n'
                 'cache_mode = "writethrough"\npolicy = "smq"',
                 'status = ["READ", "WRITE"]'),
         lv_text("lv", 8, "cache", 'cache_pool = "cpool"\n'
                 'origin = "lv_corig"')],
        {"cpool_cdata": "part of cache-pool LV cpool",
         "lv_corig": "part of cache LV lv"}, {"lv": "cache"}),
    "writecache": (
        {"img": ("fast_cvol", '["READ", "WRITE"]'),
         "root": ("lv_wcorig", '["READ", "WRITE"]')},
        [lv_text("lv", 8, "writecache", 'origin = "lv_wcorig"\n'
                 'writecache = "fast_cvol"\nwritecache_block_size = 4096')],
        {"fast_cvol": "part of writecache LV lv",
         "lv_wcorig": "part of writecache LV lv"}, {"lv": "writecache"}),
    "integrity": (
        {"img": ("lv_iorig", '["READ", "WRITE"]'),
         "meta": ("lv_imeta", '["READ", "WRITE"]')},
        [lv_text("lv", 8, "integrity", 'origin = "lv_iorig"\n'
                 'meta_dev = "lv_imeta"\nrecalculate = 0\n'
                 'data_sectors = 16384\nmode = "J"\ntag_size = 4\n'
                 'block_size = 512\ninternal_hash = "crc32c"')],
        {"lv_iorig": "part of integrity LV lv",
         "lv_imeta": "part of integrity LV lv"}, {"lv": "integrity"}),
    "hidden": (
        {"img": ("img", '["READ", "WRITE"]')}, [],
        {"img": "a hidden LV"}, {"root": "linear"}),
}


def edited(text, case):
    renames, added, _, _ = CASES[case]
    for old, (new, status) in renames.items():
        at = text.index(f"\t\t{old} {{")
        text = text[:at] + f"\t\t{new} {{" + text[at + len(old) + 4:]
        at = text.index(VISIBLE, at)
        text = text[:at] + f"status = {status}" + text[at + len(VISIBLE):]
    at = text.index("logical_volumes {") + len("logical_volumes {")
    return text[:at] + "\n" + "".join(added) + text[at:]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return lvmbuild.make_pv(tmp_path_factory.mktemp("lvmseg"), 32,
                            [("root", 8, "ext4"), ("img", 8, "ext4"),
                             ("meta", 1, None)])


def opened(image):
    with open(image, "rb") as f:
        data = f.read()
    return open_volume(lambda o, n: data[o:o + n], len(data))


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_volume_of_another_type_is_copied_whole(base, case, tmp_path):
    image = tmp_path / "pv.img"
    image.write_bytes(base.image.read_bytes())
    lvmbuild.rewrite_metadata(image, lambda text: edited(text, case))
    said = lvmbuild.report(image)["lv"]
    _, _, whole, segtypes = CASES[case]
    for name, segtype in segtypes.items():
        assert said[name]["segtype"] == segtype, said
    used = opened(image)
    runs = list(used.runs)
    by_name = {lv["name"]: lv for lv in used.volumes}
    assert set(by_name) == set(said) | set(
        n for n in by_name if n not in said)      # lvs hides sub-LVs
    for name, reason in whole.items():
        lv = by_name[name]
        assert lv["stored"] == "whole" and lv["reason"].startswith(reason)
        for _, offset, size in lv["extents"]:
            assert any(o <= offset and offset + size <= o + n
                       for o, n in runs), (name, offset, size)
    plain = [lv for lv in by_name.values() if lv["stored"] == "used-blocks"]
    assert all(lv["name"] == "root" for lv in plain)
    assert bool(plain) == (case not in ("cache", "snapshot", "writecache"))
    assert used.used_bytes >= 8 * MiB


def test_pvmove_areas_are_kept_or_refused(base, tmp_path):
    # pvmove's mirror names PV areas itself; the LV being moved names
    # the pvmove LV in its stripes
    image = tmp_path / "pv.img"
    image.write_bytes(base.image.read_bytes())

    def edit(text):
        text = text.replace('"pv0", 8\n', '"pvmove0", 0\n', 1)
        at = text.index("logical_volumes {") + len("logical_volumes {")
        return text[:at] + "\n" + lv_text(
            "pvmove0", 8, "mirror", 'mirror_count = 2\nregion_size = 1024\n'
            'mirrors = ["pv0", 8, "pv0", 20]',
            'status = ["READ", "WRITE", "PVMOVE", "LOCKED"]') + text[at:]
    lvmbuild.rewrite_metadata(image, edit)
    try:
        used = opened(image)
    except MapError as exc:
        assert "pvmove0" in str(exc)
        return
    runs = list(used.runs)
    for first in (8, 20):
        offset = used.volume_group["pe_start"] + first * MiB
        assert any(o <= offset and offset + 8 * MiB <= o + n
                   for o, n in runs)


@pytest.mark.parametrize("key", ["cache_pool", "metadata", "cow_store"])
def test_a_pv_named_outside_the_areas_is_refused(key):
    from diskimage.fs.lvm.volumes import volume_group
    text = ('contents = "Text Format Volume Group"\nversion = 1\n'
            'vg { id = "v" seqno = 1 extent_size = 2048\n'
            'physical_volumes { pv0 { id = "P" pe_start = 2048 '
            'pe_count = 30 } }\nlogical_volumes {\n' +
            lv_text("lv", 8, "cache", f'{key} = "pv0"') + '} }\n')
    with pytest.raises(MapError, match="names PV 'pv0' outside"):
        volume_group(text, "P", 32 * MiB)


def test_a_mirror_of_pv_areas_keeps_both():
    from diskimage.fs.lvm.volumes import volume_group
    text = ('contents = "Text Format Volume Group"\nversion = 1\n'
            'vg { id = "v" seqno = 1 extent_size = 2048\n'
            'physical_volumes { pv0 { id = "P" pe_start = 2048 '
            'pe_count = 30 } }\nlogical_volumes {\n' +
            lv_text("lv", 8, "mirror", 'mirror_count = 2\n'
                    'mirrors = ["pv0", 2, "pv0", 12]') + '} }\n')
    group = volume_group(text, "P", 32 * MiB)
    lv, = group.lvs
    assert lv.whole == "a mirror LV"
    assert [(p, n) for _, p, n in lv.places] == [
        (MiB + 2 * MiB, 8 * MiB), (MiB + 12 * MiB, 8 * MiB)]


@pytest.mark.parametrize("kind,key", [
    ("cache", "origin"), ("writecache", "origin"), ("integrity", "origin"),
    ("snapshot", "origin"), ("thin", "external_origin"),
    ("vdo", "vdo_pool"), ("vdo-pool", "data")])
def test_an_origin_is_copied_whole(kind, key):
    # a cache's origin may be stale (writeback) and must not be mapped
    # by its own filesystem even when the metadata calls it visible; a
    # snapshot reads the origin's blocks that the origin's filesystem
    # may have freed since (only the changed ones are in the COW store)
    from diskimage.fs.lvm.volumes import volume_group
    text = ('contents = "Text Format Volume Group"\nversion = 1\n'
            'vg { id = "v" seqno = 1 extent_size = 2048\n'
            'physical_volumes { pv0 { id = "P" pe_start = 2048 '
            'pe_count = 30 } }\nlogical_volumes {\n' +
            lv_text("root", 8, "striped", 'stripe_count = 1\n'
                    'stripes = ["pv0", 0]') +
            lv_text("lv", 8, kind, f'{key} = "root"') + '} }\n')
    root = volume_group(text, "P", 32 * MiB).lvs[0]
    assert root.whole == f"part of {kind} LV lv"


def test_the_plan_says_what_grows(tmp_path):
    # the last LV in two segments: only the PV grows, and the plan says so
    from diskimage.fs.lvm.grow import plan_note
    made = lvmbuild.make_pv(tmp_path, 40, [("root", 6, "ext4"),
                                           ("data", 4, "ext4")])
    area = opened(made.image).describe()
    assert plan_note(area) == ("PV grown by pvresize (metadata only), then "
                               "its last LV data by lvextend and its ext4")
    with lvmbuild.attached(made.image) as (lvm_run, dev):
        lvm_run("lvextend", "-q", "-L", "+6m", "vgtest/root")
    note = plan_note(opened(made.image).describe())
    assert note.startswith("PV grown by pvresize (metadata only); the new "
                           "extents stay free: its last LV root is 2 "
                           "segments, so it and its ext4 keep their size")
    area["volume_group"]["pv_count"] = 2
    assert plan_note(area).startswith("left as it is")


def test_the_plan_names_a_grow_floor_of_the_last_lv():
    # a btrfs in the last LV grows only into 256 MiB or more (the kernel
    # refuses less): the plan says so, as grow() keeps the LV then
    from diskimage.fs.lvm.grow import plan_note
    area = {"volume_group": {"name": "vg", "pv_count": 1},
            "logical_volumes": [{"name": "home", "filesystem": "btrfs",
                                 "stored": "used-blocks",
                                 "extents": [(0, MiB, 120 * MiB)]}]}
    assert plan_note(area) == (
        "PV grown by pvresize (metadata only), then its last LV home by "
        "lvextend and its btrfs, if the LV reaches 256 MiB (the kernel "
        "refuses to resize a btrfs to less); else the new extents stay free")
