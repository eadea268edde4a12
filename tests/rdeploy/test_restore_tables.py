"""Restores between sector sizes (512 to 4096) and of MBR disks: logicals
stay or grow, hybrid MBR records follow their GPT partitions.  Checked
by sfdisk, sgdisk -v and each filesystem's fsck."""

import os
import re
import shutil

import pytest

import demodisk

from tests.fsbuild import make_ext, make_fat
from tests.fsmaps import check_fs, partitioned_disk
from tests.layout_helpers import (MiB, TOOLS, blank, checked, gpt_valid,
                                  layout, rdeploy, run, sha256)

pytestmark = pytest.mark.needs(*TOOLS)


def _ext4_gpt(path):
    """A GPT disk with one ext4 partition, its files, and its manifest."""
    blank(path, 96 * MiB)
    run("sfdisk", "-q", path, input="label: gpt\nstart=2048, size=163840\n")
    tree = path.parent / "tree"
    demodisk.make_tree(tree, 40, seed=3)
    part = layout(path)[0][1]
    fsimg = path.parent / "fs.img"
    run("mkfs.ext4", "-q", "-b", "4096", "-d", tree, fsimg,
        f"{part['size'] // 1024}K")
    with open(path, "r+b") as out, open(fsimg, "rb") as src:
        out.seek(part["start"])
        shutil.copyfileobj(src, out)
    files = demodisk.read_files(path, part["start"], part["size"], "ext4")
    return {"partitions": {"1": dict(part, fs="ext4", files=files)}}


def test_sector_size_conversion_512_to_4096(tmp_path):
    source = tmp_path / "src.img"
    manifest = _ext4_gpt(source)
    image = tmp_path / "src.rdi"
    rdeploy("capture", source, image, "-q")
    backing = blank(tmp_path / "4k.img", 128 * MiB)
    dev = run("losetup", "--find", "--show", "-b", "4096", backing).strip()
    try:
        out = rdeploy("restore", image, dev, "--dry-run").stdout
        assert "4096-byte sectors" in out
        rdeploy("restore", image, dev, "--yes", "--verify")
        ok, text = gpt_valid(dev)
        assert ok, text
        where, table = layout(dev)
        assert table["sectorsize"] == 4096
    finally:
        run("losetup", "-d", dev)
    part = dict(manifest["partitions"]["1"], **where[1])
    assert demodisk.check_disk(backing, {"partitions": {"1": part}}) == []


def test_sector_size_conversion_refused_for_fat_and_ntfs(demo, tmp_path):
    _, image, _ = demo
    backing = blank(tmp_path / "4k.img", 300 * MiB)
    dev = run("losetup", "--find", "--show", "-b", "4096", backing).strip()
    try:
        err = rdeploy("restore", image, dev, "--yes", code=5).stderr
    finally:
        run("losetup", "-d", dev)
    assert "4096-byte sectors" in err and "records its sector size" in err
    assert sha256(backing) == sha256(blank(tmp_path / "z.img", 300 * MiB))


def test_mbr_logical_partitions_stay_or_grow(tmp_path):
    """Onto a disk twice the size: in place without options (the image's
    EBRs as they were), and with --grow the last logical takes the disk,
    its extended partition with it (tests/tables/test_mbr_logical_restore.py
    has the moves and resizes)."""
    disk = tmp_path / "mbr.img"
    manifest = demodisk.make_mbr_extended(disk, files=30)
    image = tmp_path / "mbr.rdi"
    rdeploy("capture", disk, image, "-q")
    big = blank(tmp_path / "big.img", 2 * os.path.getsize(disk))
    rdeploy("restore", image, big, "--yes")           # same places
    assert checked(big, manifest) == []
    assert layout(big)[0] == layout(disk)[0]
    rdeploy("restore", image, big, "--grow", "--yes")
    where, _ = layout(big)
    assert where[7]["start"] + where[7]["size"] == os.path.getsize(big)
    extended = [p for n, p in where.items() if p["type"] == "5"]
    assert [(p["start"], p["start"] + p["size"]) for p in extended] == \
        [(where[5]["start"] - MiB, os.path.getsize(big))]
    assert checked(big, manifest) == []


def mbr_records(path):
    """[(start, sectors, type)] of the MBR's records, as fdisk reads them
    when told to read the MBR of a GPT disk."""
    out = run("fdisk", "-t", "dos", "-l", path)
    rows = re.findall(r"^\S+\s+\*?\s*(\d+)\s+\d+\s+(\d+)\s+\S+\s+([0-9a-f]+) ",
                      out, re.M)
    return [(int(s), int(n), t) for s, n, t in rows]


def test_hybrid_mbr_records_follow_their_partitions(tmp_path):
    """A GPT with a hybrid MBR (sgdisk -h) naming both partitions, restored
    with every partition doubled: the MBR's records name the partitions'
    new places, its 0xEE record still covers the sectors before them."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ext_image, ext_files = make_ext(tmp_path / "a", ["mkfs.ext4"], 32)
    fat_image, fat_files = make_fat(tmp_path / "b", 32, 40 * 1024, "-s", "1")
    disk, image = tmp_path / "disk.img", tmp_path / "disk.rdi"
    partitioned_disk(disk, [(ext_image, "ext4"), (fat_image, "fat32")],
                     "gpt")
    run("sgdisk", "-h", "1:2", disk)
    before = mbr_records(disk)
    types = [t for _, _, t in before]
    assert len(types) == 3 and types[0] == "ee", before
    rdeploy("capture", disk, image, "-q")
    target = blank(tmp_path / "big.img", 2 * os.path.getsize(disk))
    rdeploy("restore", image, target, "--resize=proportional", "--yes")
    ok, out = gpt_valid(target)
    assert ok, out
    where, _ = layout(target)
    assert where[2]["size"] > 2 * 40 * MiB - 2 * MiB
    assert mbr_records(target) == [
        (1, where[1]["start"] // 512 - 1, "ee"),
        (where[1]["start"] // 512, where[1]["size"] // 512, types[1]),
        (where[2]["start"] // 512, where[2]["size"] // 512, types[2])]
    check_fs(target, where[1]["start"], where[1]["size"], "ext4", ext_files)
    check_fs(target, where[2]["start"], where[2]["size"], "fat32", fat_files)
