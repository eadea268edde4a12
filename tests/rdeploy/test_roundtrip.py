"""Round trips of real disks through files, pipes and split volumes,
checked by each filesystem's fsck and every file's SHA-256."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import demodisk

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4", "mkfs.fat", "mcopy",
                               "mkntfs", "ntfs-3g")


def rdeploy(*args, stdin=None, check=True):
    result = subprocess.run([sys.executable, "-m", "rdeploy", *map(str, args)],
                            cwd=ROOT, capture_output=True, stdin=stdin)
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result


def pipe(capture_args, restore_args):
    """rdeploy capture ... - | rdeploy restore - ... as two processes."""
    producer = subprocess.Popen([sys.executable, "-m", "rdeploy", "capture",
                                 *map(str, capture_args), "-", "-q"],
                                cwd=ROOT, stdout=subprocess.PIPE)
    consumer = rdeploy("restore", "-", *restore_args, "--yes", "-q",
                       stdin=producer.stdout, check=False)
    producer.stdout.close()
    assert producer.wait() == 0
    assert consumer.returncode == 0, consumer.stderr.decode()


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="session")
def gpt_disk(gpt_demo_ro):
    return gpt_demo_ro


@pytest.fixture(scope="session")
def mbr_disk(tmp_path_factory):
    path = tmp_path_factory.mktemp("mbr") / "mbr.img"
    manifest = demodisk.make_mbr_extended(path, files=120)
    os.chmod(path, 0o444)
    return path, manifest


@pytest.fixture(params=["gpt", "mbr"])
def disk(request, gpt_disk, mbr_disk):
    return gpt_disk if request.param == "gpt" else mbr_disk


def test_file_round_trip_is_clean_and_files_match(disk, tmp_path):
    source, manifest = disk
    image, copy = tmp_path / "d.rdi", tmp_path / "copy.img"
    rdeploy("capture", source, image)
    rdeploy("verify", image)
    rdeploy("restore", image, copy, "--yes", "--verify")
    assert demodisk.check_disk(copy, manifest) == []
    assert os.path.getsize(copy) == os.path.getsize(source)


def test_pipe_round_trip_is_clean_and_files_match(disk, tmp_path):
    source, manifest = disk
    copy = tmp_path / "copy.img"
    pipe([source], [copy])
    assert demodisk.check_disk(copy, manifest) == []


def test_raw_round_trips_are_byte_identical(disk, tmp_path):
    source, _ = disk
    image, copy, piped = (tmp_path / "r.rdi", tmp_path / "copy.img",
                          tmp_path / "piped.img")
    rdeploy("capture", "--raw", source, image)
    rdeploy("restore", image, copy, "--yes")
    assert digest(copy) == digest(source)
    pipe(["--raw", source], [piped])
    assert digest(piped) == digest(source)


def test_restore_over_a_dirty_disk_zeroes_what_was_zero(gpt_disk, tmp_path):
    """Holes must read as zeros on a target that held other data."""
    source, manifest = gpt_disk
    image, target = tmp_path / "d.rdi", tmp_path / "dirty.img"
    rdeploy("capture", source, image)
    with open(target, "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(os.path.getsize(source) >> 20):
            f.write(block)
    rdeploy("restore", image, target, "--yes")
    assert demodisk.check_disk(target, manifest) == []


def test_split_image_restores_from_first_volume_and_from_cat(gpt_disk,
                                                             tmp_path):
    source, manifest = gpt_disk
    image = tmp_path / "s.rdi"
    rdeploy("capture", source, image, "--split=3M", "--compress=zstd")
    volumes = sorted(tmp_path.glob("s.r*"))
    assert len(volumes) > 2
    assert volumes[0].name == "s.r01" and (tmp_path / "s.rdi").exists()
    assert all(v.stat().st_size <= 3 << 20 for v in volumes)
    assert not list(tmp_path.glob("*.partial"))
    first = tmp_path / "from-first.img"
    rdeploy("restore", image, first, "--yes")
    assert demodisk.check_disk(first, manifest) == []
    cat = subprocess.Popen(["cat", image] + [v for v in volumes
                                             if v.name != "s.rdi"],
                           stdout=subprocess.PIPE)
    from_cat = tmp_path / "from-cat.img"
    result = rdeploy("restore", "-", from_cat, "--yes", stdin=cat.stdout)
    cat.stdout.close()
    cat.wait()
    assert result.returncode == 0
    assert digest(from_cat) == digest(first)


def test_info_reports_partitions_and_filesystems(gpt_disk, tmp_path):
    source, manifest = gpt_disk
    image = tmp_path / "d.rdi"
    rdeploy("capture", source, image, "--description=lab golden 2026")
    info = json.loads(rdeploy("info", image, "--json").stdout)
    assert info["description"] == "lab golden 2026"
    assert info["table"]["kind"] == "gpt"
    found = {a["partition"]: a["filesystem"] for a in info["areas"]
             if a["kind"] == "partition"}
    assert found == {int(n): p["fs"] for n, p in
                     manifest["partitions"].items()}
    assert {a["kind"] for a in info["areas"]} >= {"head", "gpt-backup"}
    assert 0 < info["stored_bytes"] < info["data_bytes"]
    text = rdeploy("info", image).stdout.decode()
    assert "lab golden 2026" in text and "ntfs" in text


def test_chosen_partitions_capture_and_restore(gpt_disk, tmp_path):
    source, manifest = gpt_disk
    image, copy = tmp_path / "p.rdi", tmp_path / "copy.img"
    rdeploy("capture", source, image, "--partitions=1,3")
    info = json.loads(rdeploy("info", image, "--json").stdout)
    assert sorted(a["partition"] for a in info["areas"]
                  if a["kind"] == "partition") == [1, 3]
    rdeploy("restore", image, copy, "--yes")
    chosen = {k: v for k, v in manifest["partitions"].items()
              if int(k) in (1, 3)}
    assert demodisk.check_disk(copy, {"partitions": chosen}) == []


def test_restore_one_partition_leaves_the_others_alone(gpt_disk, tmp_path):
    source, manifest = gpt_disk
    image, target = tmp_path / "d.rdi", tmp_path / "target.img"
    rdeploy("capture", source, image)
    shutil.copyfile(source, target)
    os.chmod(target, 0o644)
    parts = manifest["partitions"]
    p2 = parts[2]
    with open(target, "r+b") as f:        # spoil partition 2 only
        f.seek(p2["start"])
        f.write(os.urandom(1 << 20))
    before = {n: _range_digest(target, p) for n, p in parts.items()}
    rdeploy("restore", image, target, "--partitions=2", "--yes")
    after = {n: _range_digest(target, p) for n, p in parts.items()}
    assert after[1] == before[1] and after[3] == before[3]
    assert after[2] != before[2]
    assert demodisk.check_disk(target, manifest) == []


def _range_digest(path, part):
    with open(path, "rb") as f:
        f.seek(part["start"])
        return hashlib.sha256(f.read(part["size"])).hexdigest()


def test_restore_onto_a_loop_device(gpt_disk, tmp_path):
    source, manifest = gpt_disk
    image, backing = tmp_path / "d.rdi", tmp_path / "backing.img"
    rdeploy("capture", source, image)
    with open(backing, "wb") as f:
        f.truncate(os.path.getsize(source))
    device = subprocess.run(["losetup", "--find", "--show", backing],
                            capture_output=True, text=True,
                            check=True).stdout.strip()
    try:
        rdeploy("restore", image, device, "--yes", "--verify")
    finally:
        subprocess.run(["losetup", "-d", device], check=True)
    assert demodisk.check_disk(backing, manifest) == []


def test_capture_from_a_loop_device(gpt_disk, tmp_path):
    source, manifest = gpt_disk
    device = subprocess.run(["losetup", "--find", "--show", "--read-only",
                             source], capture_output=True, text=True,
                            check=True).stdout.strip()
    try:
        rdeploy("capture", device, tmp_path / "d.rdi")
    finally:
        subprocess.run(["losetup", "-d", device], check=True)
    copy = tmp_path / "copy.img"
    rdeploy("restore", tmp_path / "d.rdi", copy, "--yes")
    assert demodisk.check_disk(copy, manifest) == []
