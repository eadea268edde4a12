"""LVM2 through the commands: an MBR or GPT disk whose partition is a PV
(made by lvm2, started full of garbage) holding two ext4 LVs and free
extents; `rdeploy capture`, `rdeploy restore` onto garbage, then lvm2's
own `pvs`/`vgs`/`lvs` on the copy (with a private config), `e2fsck -fn`
through each LV's offset and every file's sha256; the image far smaller
than `--raw`; `rdeploy info` (text and --json) shows the volume group and
its volumes.  A PV holding an ext4 and an XFS LV round-trips with
e2fsck -fn and xfs_repair -n clean, the XFS map's used bytes those of
xfs_db's free-space btrees."""

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

import demodisk
from diskimage.fs import registry
from diskimage.host.loop import loop_device
from tests import lvmbuild
from tests.fs import xfs_tools
from tests.fsbuild import unmount
from tests.fsmaps import (ROOT, MiB, check_fs, partitioned_disk,
                          random_fill, rdeploy, round_trip, run, tool_facts,
                          tool_used_bytes)

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


def restore_onto(image, tmp_path, size, *args):
    target = random_fill(tmp_path / "bigger.img", size, 9)
    rdeploy("restore", image, target, "--yes", "--progress=none", *args)
    out = rdeploy("info", image).stdout   # the image is left as it was
    assert "volume group" in out
    return target


def new_place(target):
    """(start, size) of the target's one partition, by sfdisk."""
    table = json.loads(run("sfdisk", "--json", target).stdout)
    part, = table["partitiontable"]["partitions"]
    return part["start"] * 512, part["size"] * 512


def test_a_larger_target_keeps_the_pv(disk, tmp_path):
    path, start, size, pv = disk
    image, _, _ = round_trip(path, tmp_path)
    target = restore_onto(image, tmp_path, 2 * os.path.getsize(path))
    assert new_place(target) == (start, size)
    assert lvmbuild.report(target, start, size) == \
        lvmbuild.report(path, start, size)


def test_grow_grows_the_pv_the_last_lv_and_its_ext4(disk, tmp_path):
    path, start, size, pv = disk
    image, _, _ = round_trip(path, tmp_path)
    bigger = random_fill(tmp_path / "plan.img", 2 * os.path.getsize(path), 1)
    plan = rdeploy("restore", image, bigger, "--grow", "--dry-run").stdout
    assert re.search(r"PV grown by pvresize \(metadata only\), then its "
                     r"last LV \S+ by lvextend", " ".join(plan.split())), plan
    target = restore_onto(image, tmp_path, 2 * os.path.getsize(path),
                          "--grow")
    new_start, new_size = new_place(target)
    assert new_start == start and new_size > size + 40 * MiB
    before = lvmbuild.report(path, start, size)
    after = lvmbuild.report(target, new_start, new_size)
    extent = int(after["vg"]["vg_extent_size"])
    assert after["vg"]["vg_free_count"] == "0"
    assert int(after["pv"]["pv_pe_count"]) == \
        (new_size - int(after["pv"]["pe_start"])) // extent
    assert after["lv"]["root"] == before["lv"]["root"]
    assert int(after["lv"]["home"]["lv_size"]) > \
        int(before["lv"]["home"]["lv_size"]) + 40 * MiB
    assert after["lv"]["home"]["seg_count"] == "1"
    places = lvmbuild.places(target, new_start, new_size)
    for name, lv in pv.lvs.items():
        (offset, lv_size), = places[name]
        check_fs(target, new_start + offset, lv_size, "ext4", lv.digests)
    (offset, lv_size), = places["home"]
    lv_file = tmp_path / "home.img"
    with open(target, "rb") as src, open(lv_file, "wb") as dst:
        dst.write(os.pread(src.fileno(), lv_size, new_start + offset))
    assert tool_facts(lv_file, "ext4")["total_bytes"] == lv_size


def xfs_files(path, start, size):
    """{path: sha256} of an XFS at [start, start+size) of `path`, mounted
    read-only through a loop device."""
    mnt = os.path.join(os.path.dirname(path), "mnt-xfs-check")
    os.makedirs(mnt, exist_ok=True)
    with loop_device(path, start, size) as dev:
        run("mount", "-t", "xfs", "-o", "ro,norecovery", dev, mnt)
        try:
            return demodisk.digest_tree(mnt)
        finally:
            unmount(mnt)


@pytest.mark.needs("mkfs.xfs", "xfs_repair", "xfs_db", "partclone.extfs",
                   "partclone.xfs", "lz4")
def test_an_ext4_and_an_xfs_lv_round_trip(tmp_path):
    pv = lvmbuild.make_pv(tmp_path, 340, [("root", 16, "ext4"),
                                          ("var", 304, "xfs")], garbage=5)
    path = tmp_path / "disk.img"
    (start, size), = partitioned_disk(path, [(pv.image, "LVM2_member")])
    image, target, stderr = round_trip(path, tmp_path)
    assert "warning" not in stderr
    info = json.loads(rdeploy("info", image, "--json").stdout)
    area, = [a for a in info["areas"] if a["filesystem"] == "LVM2_member"]
    lvs = {lv["name"]: lv for lv in area["logical_volumes"]}
    assert lvs["var"]["filesystem"] == "xfs"
    assert lvs["var"]["stored"] == "used-blocks"
    assert lvs["var"]["used_bytes"] < 304 * MiB // 4      # the log, mostly
    (offset, lv_size), = pv.lvs["var"].places
    with loop_device(path, start + offset, lv_size) as dev:
        bs, blocks, agcount = xfs_tools.geometry(dev)
        free = sum(n for agno in range(agcount)
                   for _, n in xfs_tools.free_extents(dev, agno)[0])
    assert lvs["var"]["used_bytes"] == (blocks - free) * bs
    assert lvmbuild.report(target, start, size) == \
        lvmbuild.report(path, start, size)
    (offset, lv_size), = pv.lvs["root"].places
    check_fs(target, start + offset, lv_size, "ext4", pv.lvs["root"].digests)
    (offset, lv_size), = pv.lvs["var"].places
    clean, output = registry.fsck_region(target, start + offset, lv_size,
                                         "xfs")
    assert clean, output
    assert xfs_files(target, start + offset, lv_size) == \
        xfs_files(path, start + offset, lv_size) == \
        {k: v for k, v in pv.lvs["var"].digests.items()}
    theirs = partclone_lz4(path, start, pv)
    assert area["stored_bytes"] <= theirs, (area["stored_bytes"], theirs)
    # imgx reads inside the XFS LV too
    rel, digest = next(iter(pv.lvs["var"].digests.items()))
    data = subprocess.run([sys.executable, "-m", "imgx", "cat",
                           f"{image}:1/var/{rel}"], capture_output=True,
                          cwd=ROOT, check=True).stdout
    assert hashlib.sha256(data).hexdigest() == digest


def partclone_lz4(path, start, pv):
    """What partclone.extfs / partclone.xfs | lz4 -1 make of the PV's LVs,
    plus lz4 -1 of the PV's bytes before its first extent (its label and
    metadata area, which partclone has no notion of)."""
    total = 0
    for lv in pv.lvs.values():
        (offset, size), = lv.places
        tool = {"ext4": "partclone.extfs", "xfs": "partclone.xfs"}[lv.fs]
        with loop_device(path, start + offset, size) as dev:
            total += int(run("bash", "-o", "pipefail", "-c",
                             f"{tool} -c -s {dev} -o - 2>/dev/null | "
                             f"lz4 -1 -c | wc -c").stdout)
    head = min(offset for lv in pv.lvs.values() for offset, _ in lv.places)
    total += int(run("bash", "-o", "pipefail", "-c",
                     f"head -c {start + head} {path} | tail -c {head} | "
                     f"lz4 -1 -c | wc -c").stdout)
    return total


def test_new_ids_renew_the_pv_the_vg_the_lvs_and_each_filesystem(
        disk, tmp_path):
    path, start, size, pv = disk
    image, _, _ = round_trip(path, tmp_path)
    target = restore_onto(image, tmp_path, os.path.getsize(path),
                          "--new-ids")
    before = lvmbuild.report(path, start, size)
    after = lvmbuild.report(target, start, size)
    assert after["pv"]["pv_uuid"] != before["pv"]["pv_uuid"]
    assert after["vg"]["vg_uuid"] != before["vg"]["vg_uuid"]
    assert set(after["lv"]) == set(before["lv"])
    for name in before["lv"]:               # LV UUIDs too, sizes kept
        assert after["lv"][name]["lv_uuid"] != before["lv"][name]["lv_uuid"]
        assert after["lv"][name]["lv_size"] == before["lv"][name]["lv_size"]
    for name, lv in pv.lvs.items():
        (offset, lv_size), = lv.places
        with loop_device(path, start + offset, lv_size) as old, \
                loop_device(target, start + offset, lv_size) as new:
            uuids = [run("blkid", "-p", "-o", "value", "-s", "UUID",
                         dev).stdout.strip() for dev in (old, new)]
        assert uuids[0] and uuids[1] and uuids[0] != uuids[1]
        check_fs(target, start + offset, lv_size, "ext4", lv.digests)
