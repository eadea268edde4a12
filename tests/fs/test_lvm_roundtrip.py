"""LVM2 through the commands: an MBR or GPT disk whose partition is a PV
(made by lvm2, started full of garbage) holding two ext4 LVs and free
extents; `rdeploy capture`, `rdeploy restore` onto garbage, then lvm2's
own `pvs`/`vgs`/`lvs` on the copy (with a private config), `e2fsck -fn`
through each LV's offset and every file's sha256; the image far smaller
than `--raw`; `rdeploy info` (text and --json) shows the volume group and
its volumes."""

import json
import os

import pytest

from tests import lvmbuild
from tests.fsmaps import (MiB, check_fs, partitioned_disk, random_fill,
                          rdeploy, round_trip, tool_used_bytes)

pytestmark = pytest.mark.needs(*lvmbuild.LVM_TOOLS, "sfdisk", "e2fsck",
                               "debugfs", "dumpe2fs", root=True)

LVS = [("root", 16, "ext4"), ("home", 10, "ext4")]


@pytest.fixture(scope="module", params=["dos", "gpt"])
def disk(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"lvm-{request.param}")
    pv = lvmbuild.make_pv(tmp, 56, LVS, garbage=7)
    path = tmp / "disk.img"
    (start, size), = partitioned_disk(path, [(pv.image, "LVM2_member")],
                                      table=request.param)
    return path, start, size, pv


def test_round_trip(disk, tmp_path):
    path, start, size, pv = disk
    image, target, stderr = round_trip(disk[0], tmp_path)
    assert "warning" not in stderr
    assert lvmbuild.report(target, start, size) == \
        lvmbuild.report(path, start, size)
    for lv in pv.lvs.values():
        (offset, lv_size), = lv.places
        check_fs(target, start + offset, lv_size, "ext4", lv.digests)
    raw = tmp_path / "raw.rdi"
    rdeploy("capture", path, raw, "--raw", "--progress=none")
    assert os.path.getsize(image) * 4 < os.path.getsize(raw)


def test_info_shows_the_volume_group(disk, tmp_path):
    path, start, size, pv = disk
    image = tmp_path / "disk.rdi"
    rdeploy("capture", path, image, "--progress=none")
    said = lvmbuild.report(path, start, size)
    info = json.loads(rdeploy("info", image, "--json").stdout)
    area, = [a for a in info["areas"] if a["filesystem"] == "LVM2_member"]
    assert area["volume_group"]["name"] == said["vg"]["vg_name"]
    assert area["volume_group"]["uuid"] == said["vg"]["vg_uuid"]
    lvs = {lv["name"]: lv for lv in area["logical_volumes"]}
    assert set(lvs) == set(said["lv"])
    for name, lv in lvs.items():
        assert lv["size"] == int(said["lv"][name]["lv_size"])
        assert lv["uuid"] == said["lv"][name]["lv_uuid"]
        assert lv["filesystem"] == "ext4" and lv["label"] == name
        lv_file = tmp_path / f"{name}.img"
        (offset, lv_size), = pv.lvs[name].places
        with open(path, "rb") as src, open(lv_file, "wb") as dst:
            dst.write(os.pread(src.fileno(), lv_size, start + offset))
        assert lv["used_bytes"] == tool_used_bytes(lv_file, "ext4")
    text = rdeploy("info", image).stdout
    assert f"volume group {said['vg']['vg_name']}" in text
    for name in lvs:
        assert f"LV {name} " in text
