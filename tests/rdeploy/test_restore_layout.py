"""Restores that plan a layout: other disk sizes, chosen slots, protected
partitions, new identities and sector sizes.  Every result is checked by the
field's tools: sgdisk -v for the GPT, sfdisk --json for where partitions
are, each filesystem's fsck and every file's SHA-256."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import demodisk

from tests.signals import (INTERRUPTIBLE, in_progress, interrupted_event,
                           progress_until, wait_for)
from tests.fsbuild import fat_bytes, make_ext, make_fat
from tests.fsmaps import check_fs, partitioned_disk, range_digest

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
TOOLS = ("sfdisk", "sgdisk", "mkfs.ext4", "resize2fs", "mkfs.fat", "mcopy",
         "mkntfs", "ntfs-3g", "ntfsresize", "losetup", "blkid")
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS),
    reason="needs fdisk, gdisk, e2fsprogs, dosfstools, mtools, ntfs-3g and "
           "util-linux (make deps installs them)")
WINRE = "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC"


def rdeploy(*args, code=0):
    result = subprocess.run([sys.executable, "-m", "rdeploy", *map(str, args)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == code, result.stderr
    return result


def run(*args, **kw):
    return subprocess.run(list(map(str, args)), check=True,
                          capture_output=True, text=True, **kw).stdout


def sha256(path, start=0, size=None):
    if size is None:
        size = os.path.getsize(path) - start
    return range_digest(path, start, size)


def blank(path, size, fill=None):
    with open(path, "wb") as f:
        if fill is None:
            f.truncate(size)
        else:
            for _ in range(size // MiB):
                f.write(fill(MiB))
    return path


def layout(path):
    """{number: {start, size, type, uuid}} in bytes, as sfdisk reads it."""
    table = json.loads(run("sfdisk", "--json", path))["partitiontable"]
    ss = table.get("sectorsize", 512)
    out = {}
    for p in table["partitions"]:
        number = int(re.search(r"(\d+)$", p["node"]).group(1))
        out[number] = dict(start=p["start"] * ss, size=p["size"] * ss,
                           type=p["type"].lower(), uuid=p.get("uuid", ""))
    return out, table


def gpt_valid(path):
    out = run("sgdisk", "-v", path)
    return "No problems found" in out, out


def checked(path, manifest):
    """check_disk with the partitions where the restored table puts them."""
    where, _ = layout(path)
    moved = {"partitions": {
        n: dict(p, start=where[int(n)]["start"], size=where[int(n)]["size"])
        for n, p in manifest["partitions"].items()}}
    return demodisk.check_disk(path, moved)


def fs_bytes(path, part, fs):
    """The filesystem's own idea of its size, from its own tools."""
    with demodisk.loop_device(path, part["start"], part["size"]) as dev:
        if fs == "ext4":
            out = run("dumpe2fs", "-h", dev)
            blocks = int(re.search(r"Block count:\s+(\d+)", out).group(1))
            size = int(re.search(r"Block size:\s+(\d+)", out).group(1))
            return blocks * size
        if fs.startswith("fat"):
            return fat_bytes(dev)
        out = run("ntfsresize", "--info", "--force", "--no-action", dev)
        return int(re.search(r"Current volume size: (\d+)", out).group(1))


def blkid(path, part, tag):
    with demodisk.loop_device(path, part["start"], part["size"]) as dev:
        return run("blkid", "-p", "-o", "value", "-s", tag, dev).strip()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The 256 MiB GPT demo (ext4, FAT32, NTFS) and its image."""
    tmp = tmp_path_factory.mktemp("layout")
    disk, image = tmp / "demo.img", tmp / "demo.rdi"
    manifest = demodisk.make_gpt_demo(disk, files=200)
    rdeploy("capture", disk, image, "-q")
    return disk, image, manifest


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


def test_mbr_logical_partitions_do_not_move(tmp_path):
    disk = tmp_path / "mbr.img"
    manifest = demodisk.make_mbr_extended(disk, files=30)
    image = tmp_path / "mbr.rdi"
    rdeploy("capture", disk, image, "-q")
    big = blank(tmp_path / "big.img", 2 * os.path.getsize(disk))
    rdeploy("restore", image, big, "--yes")           # same places: fine
    assert checked(big, manifest) == []
    # Refused before a byte is written: the target refused (5), not an
    # unsupported image (7, as it was before issue 12).
    err = rdeploy("restore", image, big, "--grow", "--yes", code=5).stderr
    assert "logical partition" in err


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


def test_tool_failure_after_the_first_write(demo, tmp_path):
    """A resizing tool that fails (here an ntfsresize on PATH that refuses)
    after the target was first written: exit 8, not 5 ("refused, nothing
    written"), with the tool's reason, and the disk has no valid table."""
    disk, image, _ = demo
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "ntfsresize").write_text(
        "#!/bin/sh\necho 'ERROR: disk full of bad sectors' >&2\nexit 1\n")
    (shim / "ntfsresize").chmod(0o755)
    target = blank(tmp_path / "t.img", 2 * 256 * MiB)
    rdeploy("restore", image, target, "--yes")          # a disk to overwrite
    assert gpt_valid(target)[0]
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}")
    result = subprocess.run(
        [sys.executable, "-m", "rdeploy", "restore", image, target, "--grow",
         "--yes"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 8, result.stderr
    line, = result.stderr.strip().splitlines()
    assert "ntfsresize failed: ERROR: disk full of bad sectors" in line, line
    assert "target was changed" in line, line
    assert subprocess.run(["sfdisk", "--json", target], capture_output=True
                          ).returncode != 0


def test_no_table_slot_left_for_a_protected_partition(tmp_path):
    """Four MBR primaries from the image and a protected partition kept on
    the target need five slots: refused in the plan (exit 5, target as it
    was), not found after the first write."""
    disk, image = tmp_path / "four.img", tmp_path / "four.rdi"
    blank(disk, 64 * MiB)
    run("sfdisk", disk, input="label: dos\n" + "".join(
        f"start={2048 + i * 16384}, size=16384, type=83\n" for i in range(4)))
    rdeploy("capture", disk, image, "-q")
    target = blank(tmp_path / "t.img", 128 * MiB, os.urandom)
    run("sfdisk", target, input="label: dos\n"
        "start=204800, size=40960, type=27\n")
    before = sha256(target)
    err = rdeploy("restore", image, target, "--yes", code=5).stderr
    assert "slot" in err and "protected partition 1" in err, err
    assert sha256(target) == before


def test_signal_while_a_loop_device_is_attached_leaves_none(demo, tmp_path):
    """SIGTERM while losetup attaches the loop device a grow works through
    (here a losetup that, once attached, waits for the test to let it
    return): the restore still learns the device's name and detaches it,
    and exits 143.  Python kills a tool it was waiting for when a signal
    comes, so without holding signals back for that moment the device
    would be left over the target (issue 11 sweep of item 13)."""
    import signal
    disk, image, _ = demo
    shim = tmp_path / "bin"
    shim.mkdir()
    gate = tmp_path / "gate"
    (shim / "losetup").write_text(
        "#!/bin/sh\n"
        f"case \" $* \" in *\" --find \"*) {shutil.which('losetup')} \"$@\"; "
        f"rc=$?; while [ ! -e {gate} ]; do sleep 0.01; done; exit $rc;; "
        "esac\n"
        f"exec {shutil.which('losetup')} \"$@\"\n")
    (shim / "losetup").chmod(0o755)
    target = blank(tmp_path / "t.img", 2 * 256 * MiB)
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}")

    def attached():
        return run("losetup", "-j", target).strip()

    proc = subprocess.Popen([sys.executable, "-m", "rdeploy", "restore",
                             image, target, "--grow", "--yes"], cwd=ROOT,
                            env=env, stderr=subprocess.PIPE, text=True,
                            **INTERRUPTIBLE)
    try:
        wait_for(lambda: attached() or proc.poll() is not None,
                 what="the loop device")
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)    # pending before losetup returns
        gate.touch()
        err = proc.communicate(timeout=60)[1]
        left = attached()
    finally:
        gate.touch()
        proc.kill()
        for line in attached().splitlines():
            subprocess.run(["losetup", "-d", line.split(":")[0]])
    assert proc.returncode == 143, err
    assert left == "", left
    assert subprocess.run(["sfdisk", "--json", target], capture_output=True
                          ).returncode != 0


def test_signal_during_verify_wipes_the_new_table(demo, tmp_path):
    """The table is written last, then --verify reads everything back: a
    SIGTERM then (or a difference found) must not leave a disk whose table
    looks fine; the table is wiped again, and the exit is 143.  The signal
    goes at the read-back's first progress event (its first range, the
    table's: 4 KiB of about 55 MiB)."""
    import signal
    disk, image, _ = demo
    target = blank(tmp_path / "t.img", os.path.getsize(disk))
    proc = subprocess.Popen([sys.executable, "-m", "rdeploy", "restore",
                             image, target, "--yes", "--verify",
                             "--progress=json"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True,
                            **INTERRUPTIBLE)

    def has_table():
        with open(target, "rb") as f:
            f.seek(512)
            return f.read(8) == b"EFI PART"

    seen = []
    try:
        progress_until(proc.stderr, in_progress("read-back"), seen)
        assert has_table()
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    seen += [json.loads(line) for line in rest.splitlines()]
    interrupted_event(seen, proc.returncode, signal.SIGTERM)
    assert not has_table()
    assert subprocess.run(["sfdisk", "--json", target], capture_output=True
                          ).returncode != 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a tmpfs")
def test_tmpdir_filling_up_while_shrinking(demo, tmp_path):
    """--tmpdir has room when the plan is made, then another process fills
    it while the shrinking partition is written there: exit 6 with the
    temporary file named (not a bare "No space left on device", exit 1),
    the new target removed and no temporary file left."""
    import threading
    import time
    disk, image, _ = demo
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    run("mount", "-t", "tmpfs", "-o", "size=48M", "tmpfs", tmp)
    target = tmp_path / "small.img"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rdeploy", "restore", "-", target,
             "--size=1=60M", f"--tmpdir={tmp}", "--yes"],
            cwd=ROOT, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        filled = threading.Event()

        def fill():
            while not any(p.startswith("rdeploy-shrink-")
                          for p in os.listdir(tmp)):
                if proc.poll() is not None:
                    return
                time.sleep(0.001)
            with open(tmp / "filler", "wb") as f:
                try:
                    while True:
                        os.posix_fallocate(f.fileno(), f.tell(), MiB)
                        f.seek(MiB, os.SEEK_CUR)
                except OSError:
                    filled.set()

        filler = threading.Thread(target=fill)
        filler.start()
        with open(image, "rb") as f:
            while block := f.read(256 << 10):
                try:
                    proc.stdin.write(block)
                    proc.stdin.flush()
                except BrokenPipeError:
                    break
                time.sleep(0.01)
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
        filler.join()
        left = sorted(os.listdir(tmp))
    finally:
        subprocess.run(["umount", tmp])
    assert filled.is_set()
    assert proc.returncode == 6, err
    line, = err.strip().splitlines()
    assert f"{tmp}/rdeploy-shrink-" in line and "No space left" in line, line
    assert not target.exists()
    assert left == ["filler"]
