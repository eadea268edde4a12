"""Restores that plan a layout: other disk sizes, chosen slots, protected
partitions and new identities.  Sector sizes and MBR records are in
test_restore_tables.py, tool failures, signals and a full --tmpdir in
test_restore_failures.py.  Every result is checked by the field's tools:
sgdisk -v for the GPT, sfdisk --json for where partitions are, each
filesystem's fsck and every file's SHA-256.  The demo disk is built once
per session (tests/conftest.py)."""

import os
import re
import shutil

import pytest

import demodisk

from tests.fsbuild import make_fat
from tests.fsmaps import check_fs, partitioned_disk
from tests.layout_helpers import (MiB, TOOLS, WINRE, blank, blkid, checked,
                                  fs_bytes, gpt_valid, layout, rdeploy, run,
                                  sha256)

pytestmark = pytest.mark.needs(*TOOLS)


def test_grow_fills_a_disk_twice_the_size(demo, tmp_path):
    disk, image, manifest = demo
    target = blank(tmp_path / "big.img", 2 * os.path.getsize(disk))
    rdeploy("restore", image, target, "--grow", "--yes", "--verify")
    ok, out = gpt_valid(target)
    assert ok, out
    where, table = layout(target)
    last = where[3]
    # The last partition reaches the last usable LBA (33 sectors of backup
    # array and header after it), its NTFS fills it.
    assert table["lastlba"] * 512 + 512 == last["start"] + last["size"]
    assert fs_bytes(target, last, "ntfs") >= last["size"] - MiB
    assert checked(target, manifest) == []


def test_proportional_doubles_every_partition(demo, tmp_path):
    disk, image, manifest = demo
    target = blank(tmp_path / "big.img", 2 * os.path.getsize(disk))
    rdeploy("restore", image, target, "--resize=proportional", "--yes")
    assert gpt_valid(target)[0]
    where, _ = layout(target)
    for number, part in manifest["partitions"].items():
        new = where[int(number)]["size"]
        assert 2 * part["size"] - 2 * MiB <= new <= 2 * part["size"], number
    assert fs_bytes(target, where[1], "ext4") == where[1]["size"]
    assert fs_bytes(target, where[2], "fat32") == where[2]["size"]
    assert checked(target, manifest) == []


def test_grow_stops_fat16_at_its_cluster_limit(tmp_path):
    """FAT16 with 512-byte clusters holds at most 65524 of them (32 MiB):
    --grow onto a 256 MiB disk grows the filesystem that far, says so, and
    the partition takes the disk."""
    fs_image, digests = make_fat(tmp_path, 16, 20 * 1024, "-s", "1")
    disk, image = tmp_path / "fat16.img", tmp_path / "fat16.rdi"
    partitioned_disk(disk, [(fs_image, "fat16")], "dos")
    rdeploy("capture", disk, image, "-q")
    target = blank(tmp_path / "big.img", 256 * MiB, os.urandom)
    said = rdeploy("restore", image, target, "--grow", "--yes").stderr
    assert "the most fat16 holds" in said, said
    part = layout(target)[0][1]
    assert part["start"] + part["size"] == 256 * MiB
    reached = fs_bytes(target, part, "fat16")
    assert 32 * MiB < reached < 33 * MiB
    check_fs(target, part["start"], part["size"], "fat16", digests)


def test_smaller_disk_that_holds_the_data(demo, tmp_path):
    disk, image, manifest = demo
    size = 150 * MiB
    target = blank(tmp_path / "small.img", size)
    plan = rdeploy("restore", image, target, "--dry-run").stdout
    assert "shrink" in plan and os.path.getsize(target) == size
    assert sha256(target) == sha256(blank(tmp_path / "z.img", size))
    rdeploy("restore", image, target, "--yes", "--verify")
    assert os.path.getsize(target) == size
    assert gpt_valid(target)[0]
    assert checked(target, manifest) == []


def test_too_small_is_refused_by_how_much_and_untouched(demo, tmp_path):
    disk, image, manifest = demo
    target = blank(tmp_path / "tiny.img", 64 * MiB, os.urandom)
    before = sha256(target)
    err = rdeploy("restore", image, target, "--yes", code=5).stderr
    assert len(err.strip().splitlines()) == 1, err
    needed = int(re.search(r"needs (\d+) \((\d+) more", err).group(1))
    assert sha256(target) == before
    # What it says is enough is enough.
    exact = blank(tmp_path / "exact.img", needed)
    rdeploy("restore", image, exact, "--yes")
    assert checked(exact, manifest) == []


def test_partitions_into_a_disk_with_other_data(demo, tmp_path):
    disk, image, manifest = demo
    target = tmp_path / "target.img"
    shutil.copyfile(disk, target)
    parts = manifest["partitions"]
    with open(target, "r+b") as f:        # other data in 1 and 3, 2 spoilt
        for p in parts.values():
            f.seek(p["start"])
            f.write(os.urandom(p["size"]))
    before = {n: sha256(target, p["start"], p["size"])
              for n, p in parts.items()}
    rdeploy("restore", image, target, "--partitions=2", "--yes")
    assert sha256(target, parts[1]["start"], parts[1]["size"]) == before[1]
    assert sha256(target, parts[3]["start"], parts[3]["size"]) == before[3]
    two = {"partitions": {"2": parts[2]}}
    assert demodisk.check_disk(target, two) == []


def _two_slot_disk(path, size, second):
    blank(path, size, os.urandom)
    run("sfdisk", "-q", path, input=f"label: gpt\n,{32 * MiB // 512}\n"
                                    f",{second // 512}\n")
    return layout(path)[0]


def test_into_a_larger_slot_grows_the_filesystem(demo, tmp_path):
    disk, image, manifest = demo
    target = tmp_path / "slots.img"
    where = _two_slot_disk(target, 320 * MiB, 200 * MiB)
    first = sha256(target, where[1]["start"], where[1]["size"])
    rdeploy("restore", image, target, "--partitions=1", "--into=2", "--yes",
            "--verify")
    assert sha256(target, where[1]["start"], where[1]["size"]) == first
    assert layout(target)[0] == where              # the table is the target's
    assert fs_bytes(target, where[2], "ext4") == where[2]["size"]
    part = dict(manifest["partitions"][1], **where[2])
    assert demodisk.check_disk(target, {"partitions": {"2": part}}) == []


def test_into_a_slot_too_small_is_refused(demo, tmp_path):
    disk, image, _ = demo
    target = tmp_path / "slots.img"
    _two_slot_disk(target, 128 * MiB, 20 * MiB)
    before = sha256(target)
    err = rdeploy("restore", image, target, "--partitions=1", "--into=2",
                  "--yes", code=5).stderr
    assert "too small" in err
    assert sha256(target) == before


def test_protected_partition_is_kept(demo, tmp_path):
    disk, image, manifest = demo
    target = blank(tmp_path / "oem.img", 400 * MiB, os.urandom)
    # A vendor recovery partition at the end of the target.
    run("sfdisk", "-q", target, input=f"label: gpt\nstart={350 * MiB // 512},"
                                      f" size={40 * MiB // 512}, type={WINRE}\n")
    oem = layout(target)[0][1]
    before = sha256(target, oem["start"], oem["size"])
    plan = rdeploy("restore", image, target, "--grow", "--dry-run").stdout
    assert "kept: Windows recovery" in plan
    rdeploy("restore", image, target, "--grow", "--yes")
    assert gpt_valid(target)[0]
    where, _ = layout(target)
    kept = [p for p in where.values() if p["type"] == WINRE.lower()]
    assert [(p["start"], p["size"]) for p in kept] == \
        [(oem["start"], oem["size"])]
    assert sha256(target, oem["start"], oem["size"]) == before
    assert where[3]["start"] + where[3]["size"] <= oem["start"]
    assert checked(target, manifest) == []
    rdeploy("restore", image, target, "--overwrite-protected", "--yes")
    assert WINRE.lower() not in {p["type"] for p in layout(target)[0].values()}


def test_new_ids_give_two_disks_different_identities(demo, tmp_path):
    disk, image, manifest = demo
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    for target in (a, b):
        out = rdeploy("restore", image, target, "--new-ids", "--yes").stderr
        assert "new disk GUID" in out
        assert checked(target, manifest) == []
        assert gpt_valid(target)[0]
    source_ids = layout(disk)[1]["id"], layout(a)[1]["id"], layout(b)[1]["id"]
    assert len(set(source_ids)) == 3
    where = {p: layout(p)[0] for p in (disk, a, b)}
    for n in (1, 2, 3):
        assert len({where[p][n]["uuid"] for p in where}) == 3
        uuids = {blkid(p, where[p][n], "UUID") for p in where}
        assert len(uuids) == 3, (n, uuids)


def test_dry_run_writes_nothing(demo, tmp_path):
    disk, image, _ = demo
    target = blank(tmp_path / "t.img", 300 * MiB, os.urandom)
    before = sha256(target)
    out = rdeploy("restore", image, target, "--resize=proportional",
                  "--dry-run").stdout
    assert "nothing was written" in out and "NEW START" in out
    assert sha256(target) == before


@pytest.mark.parametrize("how, size", [
    (["--grow"], 2 * 256 * MiB),
    ([], 150 * MiB),                           # a shrink
    (["--resize=proportional"], 2 * 256 * MiB),
])
def test_resize_with_new_ids(demo, tmp_path, how, size):
    """Resizing and --new-ids together (issue 11 item 9): ntfsresize leaves
    its NTFS marked for a check, which ntfslabel refused; the NTFS is marked
    clean first, so every filesystem is resized, re-identified, clean and
    holds its files."""
    disk, image, manifest = demo
    target = blank(tmp_path / "t.img", size)
    out = rdeploy("restore", image, target, *how, "--new-ids", "--yes",
                  "--verify").stderr
    assert "new disk GUID" in out
    assert gpt_valid(target)[0]
    assert checked(target, manifest) == []
    where, _ = layout(target)
    for n in (1, 2, 3):
        assert blkid(target, where[n], "UUID") != \
            blkid(disk, layout(disk)[0][n], "UUID"), n
    # ntfsresize's request that Windows check the volume once is kept.
    with demodisk.loop_device(target, where[3]["start"],
                              where[3]["size"]) as dev:
        assert "DIRTY" in run("ntfsinfo", "-f", "-m", dev)
