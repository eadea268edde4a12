"""Interrupted restores (issue 16): a restore killed with SIGKILL leaves a
target with no valid table and a restore marker; `rdeploy verify-target`
says so (exit 13) and names the image; `restore --resume` finishes it, and
the result equals a clean restore (the same bytes, fsck, file digests);
another image or plan is refused; verify-target with IMAGE compares.

The kill lands at a known point: the image is fed through a pipe by the
test and stops short, so the restore waits on its stdin with the marker on
the target saying how far it got (RDEPLOY_CHECKPOINT_BYTES makes it
checkpoint every chunk of this small disk)."""

import hashlib
import json
import random
import re
import signal
import subprocess
import threading
import zlib
from pathlib import Path

import pytest

from diskimage import restoremark
from tests.rdeploy_helpers import ROOT, check, command, env, rdeploy, run
from tests.signals import wait_for
from tests.smalldisk import (MiB, SECTOR, has_partitions, read_at, sfdisk,
                             sha256)

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4", "e2fsck", "debugfs",
                               "losetup", root=True)

FILES = {f"f{i}.bin": random.Random(i).randbytes(MiB + 4096 * i)
         for i in range(8)}
PART2 = 67584 * SECTOR


def _build(path, seed):
    """64 MiB GPT disk: ext4 with FILES in partition 1 (1-33 MiB), 8 MiB of
    random bytes at the start of partition 2."""
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    sfdisk(path, "label: gpt\nstart=2048, size=65536, name=sys\n"
                 "start=67584, size=59392, name=data\n")
    tree = Path(str(path) + ".files")
    tree.mkdir()
    for name, data in FILES.items():
        (tree / name).write_bytes(data)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={MiB}", "-d",
                    str(tree), str(path), "32M"], check=True,
                   capture_output=True)
    with open(path, "r+b") as f:
        f.seek(PART2)
        f.write(random.Random(seed).randbytes(8 * MiB))
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The disk, its image, a clean restore of it (the reference), and an
    image of another disk."""
    d = tmp_path_factory.mktemp("resume")
    disk, image = _build(d / "disk.img", 1), d / "disk.rdi"
    other_disk, other = _build(d / "other.img", 2), d / "other.rdi"
    for source, out in ((disk, image), (other_disk, other)):
        result = rdeploy("capture", source, out, "-q")
        assert result.returncode == 0, result.stderr
    clean = d / "clean.img"
    result = rdeploy("restore", image, clean, "--yes", "-q")
    assert result.returncode == 0, result.stderr
    return {"disk": disk, "image": image, "other": other, "clean": clean,
            "clean_sha": sha256(clean)}


def _checkpoint_env():
    return dict(env(), RDEPLOY_CHECKPOINT_BYTES=str(MiB))


def _marker(path, offset=0):
    with open(path, "rb") as f:
        f.seek(offset)
        return restoremark.unpack(f.read(512), offset)


def killed_restore(image, target, stop_at, ready, *options):
    """`rdeploy restore - TARGET --yes` fed the first *stop_at* bytes of
    *image*, killed with SIGKILL once ready() (the marker on the target says
    how far it got); the pipe stays open, so it cannot finish first."""
    data = Path(image).read_bytes()
    proc = subprocess.Popen(command("restore", "-", target, "--yes", "-q",
                                    *options),
                            env=_checkpoint_env(), cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)

    def feed():
        try:
            proc.stdin.write(data[:stop_at])
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        wait_for(lambda: ready() or proc.poll() is not None,
                 what="the restore's marker")
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        feeder.join()
        proc.stdin.close()
    return proc


def _meta_end(image):
    """Where the META record ends: its header is 48 bytes in format 1.0
    (version_minor, byte 10 of the file header, 0) and 68 in 1.1; its
    stored_size is at byte 24 of it."""
    data = Path(image).read_bytes()
    header = 48 if data[10] == 0 else 68
    return 64 + header + int.from_bytes(data[64 + 24:64 + 28], "little")


def _front_hex(image):
    """SHA-256 of the file header and the META record, from the bytes."""
    return hashlib.sha256(Path(image).read_bytes()[:_meta_end(image)]) \
        .hexdigest()


def _other_copy(images, tmp_path):
    """A copy of the other disk, to restore over (it has a valid table)."""
    target = tmp_path / "target.img"
    subprocess.run(["cp", "--sparse=always", images["other"].with_suffix(
        ".img"), target], check=True)
    assert has_partitions(target)
    return target


def _equal_to_clean(images, target, kernel):
    """The finished target: the clean restore's bytes, its ext4 clean, its
    files the source's."""
    assert sha256(target) == images["clean_sha"]
    part = kernel.loop(target, "-r", "-o", str(MiB), "--sizelimit",
                       str(32 * MiB))
    run("e2fsck", "-fn", part)
    for name, data in FILES.items():
        out = subprocess.run(["debugfs", "-R", f"cat /{name}", part],
                             capture_output=True, check=True).stdout
        assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()


POINTS = {
    # right after the marker is written: no record on the target yet
    "start": (lambda image: _meta_end(image), lambda m: m is not None),
    # in the middle: several chunks written and checkpointed
    "middle": (lambda image: Path(image).stat().st_size // 2,
               lambda m: m is not None and m.checkpoint >= 2),
}


@pytest.mark.parametrize("point, source", [("start", "pipe"),
                                           ("middle", "file")])
def test_killed_restore_resumes(images, tmp_path, kernel, point, source):
    image = images["image"]
    backing = _other_copy(images, tmp_path)
    target = kernel.loop(backing)
    stop_at, ready = POINTS[point]
    killed_restore(image, target, stop_at(image),
                   lambda: ready(_marker(target)))
    assert not has_partitions(target)
    marker = _marker(target)
    result = rdeploy("verify-target", target)
    line = check(result, 13, "interrupted restore", _front_hex(image),
                 f"{marker.checkpoint} chunks done", "--resume")
    assert marker.checkpoint == 0 if point == "start" else \
        marker.checkpoint >= 2, line
    # the restored chunks compare equal; still incomplete
    check(rdeploy("verify-target", target, image), 13, "equal the image")
    if source == "file":    # --verify reads back the skipped chunks too
        result = rdeploy("restore", image, target, "--resume", "--yes", "-q",
                         "--verify")
    else:
        with open(image, "rb") as stdin:
            result = rdeploy("restore", "-", target, "--resume", "--yes",
                             "-q", stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    result = rdeploy("verify-target", target)
    assert result.returncode == 0, result.stderr
    assert b"no interrupted restore" in result.stdout
    result = rdeploy("verify-target", target, image)
    assert result.returncode == 0, result.stderr
    _equal_to_clean(images, backing, kernel)


@pytest.fixture
def marked_target(images, tmp_path):
    """A disk file left by a restore killed in the middle (the first half of
    the stream holds records 0-5 whole: chunks of partition 1's data)."""
    target = _other_copy(images, tmp_path)
    killed_restore(images["image"], target,
                   images["image"].stat().st_size // 2,
                   lambda: (_marker(target) or
                            restoremark.Marker(0, b"", b"")).checkpoint >= 5)
    return target


def test_resume_refused_for_another_image_or_plan(images, marked_target):
    """Refused before a byte is written: the target stays as it was."""
    before = sha256(marked_target)
    check(rdeploy("restore", images["other"], marked_target, "--resume",
                  "--yes"), 5, "another image", "without --resume")
    with open(images["other"], "rb") as stdin:
        check(rdeploy("restore", "-", marked_target, "--resume", "--yes",
                      stdin=stdin), 5, "another image")
    check(rdeploy("restore", images["image"], marked_target, "--resume",
                  "--yes", "--new-ids"), 5, "another plan", "same options")
    assert sha256(marked_target) == before


def test_resume_refused_without_marker(images, tmp_path):
    target = _other_copy(images, tmp_path)
    before = sha256(target)
    check(rdeploy("restore", images["image"], target, "--resume", "--yes"),
          5, "no interrupted restore")
    assert sha256(target) == before


def test_restore_over_a_marked_target_starts_over(images, marked_target,
                                                  kernel):
    result = rdeploy("restore", images["image"], marked_target, "--yes")
    assert result.returncode == 0, result.stderr
    said = result.stderr.decode()
    assert "interrupted restore" in said and "starts over" in said, said
    _equal_to_clean(images, marked_target, kernel)


def test_dry_run_names_the_interrupted_restore(images, marked_target):
    result = rdeploy("restore", images["image"], marked_target, "--dry-run",
                     "--resume")
    assert result.returncode == 0, result.stderr
    assert b"resumes the interrupted restore at chunk" in result.stdout


def test_verify_target_equal_and_changed(images, tmp_path):
    target = tmp_path / "t.img"
    subprocess.run(["cp", "--sparse=always", images["clean"], target],
                   check=True)
    result = rdeploy("verify-target", target, images["image"])
    assert result.returncode == 0, result.stderr
    assert re.search(rb"equal to .* \(\d+ chunks", result.stdout)
    # a byte in partition 2's data, then one in a hole (a ZERO chunk)
    for offset in (PART2 + 3 * MiB + 5, 60 * MiB + 7):
        changed = tmp_path / f"c{offset}.img"
        subprocess.run(["cp", "--sparse=always", target, changed],
                       check=True)
        with open(changed, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0xFF]))
        check(rdeploy("verify-target", changed, images["image"]), 14,
              f"disk offset {offset}")
        assert rdeploy("verify-target", changed).returncode == 0


def test_partition_restore_killed_resumes(images, tmp_path):
    """--partitions=2 over a disk with the same table: the marker sits at
    the partition's start (its guard zone), the table is kept; a resume
    needs the same options."""
    target = tmp_path / "t.img"
    subprocess.run(["cp", "--sparse=always", images["disk"].parent /
                    "other.img", target], check=True)
    table = read_at(target, 0, MiB)
    killed_restore(images["image"], target,
                   images["image"].stat().st_size * 3 // 4,
                   lambda: (_marker(target, PART2) or restoremark.Marker(
                       0, b"", b"")).checkpoint >= 1, "--partitions=2")
    assert read_at(target, 0, MiB) == table
    assert _marker(target) is None and _marker(target, PART2) is not None
    check(rdeploy("verify-target", target), 13, "interrupted restore")
    check(rdeploy("restore", images["image"], target, "--resume", "--yes"),
          5, "another plan")
    result = rdeploy("restore", images["image"], target, "--resume",
                     "--yes", "--partitions=2", "-q")
    assert result.returncode == 0, result.stderr
    assert read_at(target, PART2, 8 * MiB) == \
        read_at(images["disk"], PART2, 8 * MiB)
    assert read_at(target, 0, MiB) == table
    assert rdeploy("verify-target", target).returncode == 0


def _first_record(image):
    """(offset, header size) of the first record after the META record."""
    data = Path(image).read_bytes()
    return _meta_end(image), 48 if data[10] == 0 else 68


def test_chunks_before_the_checkpoint_are_not_written(images, marked_target,
                                                      tmp_path):
    """A byte changed after the kill inside a checkpointed chunk stays as
    it is after the resume (the chunk is read, not written again);
    verify-target finds it before and after, and --verify's read-back
    finds it (exit 8)."""
    from diskimage.image.reader import ImageReader
    marker = _marker(marked_target)
    with ImageReader(str(images["image"])) as reader:
        entry = [e for e in reader.entries[:marker.checkpoint]
                 if not e.is_zero and e.disk_offset >= MiB][-1]
    offset = entry.disk_offset + entry.length // 2
    with open(marked_target, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    check(rdeploy("verify-target", marked_target, images["image"]), 14,
          f"disk offset {offset}")
    copy = tmp_path / "again.img"
    subprocess.run(["cp", "--sparse=always", marked_target, copy],
                   check=True)
    result = rdeploy("restore", images["image"], marked_target, "--resume",
                     "--yes", "-q")
    assert result.returncode == 0, result.stderr
    assert read_at(marked_target, offset, 1) != byte
    check(rdeploy("verify-target", marked_target, images["image"]), 14,
          f"disk offset {offset}")
    check(rdeploy("restore", images["image"], copy, "--resume", "--yes",
                  "--verify"), 8, "read-back differs",
          f"disk offset {entry.disk_offset}")


def test_resume_checks_the_records_before_the_checkpoint(images,
                                                         marked_target,
                                                         tmp_path):
    """The same header and metadata, but the first record's header
    changed (moved to the start of the next area, a place the metadata
    allows; its CRC made good again): a pipe resume finds that the records
    are not those the interrupted restore wrote before it writes anything;
    a damaged payload there is found as damage."""
    from diskimage.image.reader import ImageReader
    before = sha256(marked_target)
    data = bytearray(images["image"].read_bytes())
    at, size = _first_record(images["image"])
    with ImageReader(str(images["image"])) as reader:
        areas = reader.metadata["areas"]
    area = int.from_bytes(data[at + 6:at + 8], "little")
    offset = int.from_bytes(data[at + 8:at + 16], "little")
    assert offset == areas[area]["start"] and area + 1 < len(areas)
    doctored = bytearray(data)
    doctored[at + 6:at + 8] = (area + 1).to_bytes(2, "little")     # area
    doctored[at + 8:at + 16] = areas[area + 1]["start"].to_bytes(8, "little")
    crc = zlib.crc32(bytes(doctored[at:at + size - 4]))
    doctored[at + size - 4:at + size] = crc.to_bytes(4, "little")
    path = tmp_path / "doctored.rdi"
    path.write_bytes(bytes(doctored))
    with open(path, "rb") as stdin:
        check(rdeploy("restore", "-", marked_target, "--resume", "--yes",
                      stdin=stdin), 5, "differs from the one whose restore "
              "was interrupted", "nothing written")
    damaged = bytearray(data)
    damaged[at + size + 100] ^= 0xFF                   # its payload
    path.write_bytes(bytes(damaged))
    check(rdeploy("restore", path, marked_target, "--resume", "--yes"), 4,
          "chunk 0")
    assert sha256(marked_target) == before
    check(rdeploy("verify-target", marked_target), 13, "interrupted")


def test_killed_restore_into_a_new_file_resumes(images, tmp_path):
    """A target file the restore created is removed on a failure it sees;
    after SIGKILL it stays, marked: --resume finishes it."""
    target = tmp_path / "new.img"
    killed_restore(images["image"], target,
                   images["image"].stat().st_size // 2,
                   lambda: target.exists() and (_marker(target) or
                                                restoremark.Marker(
                                                    0, b"", b"")
                                                ).checkpoint >= 2)
    assert not has_partitions(target)
    check(rdeploy("verify-target", target), 13, "interrupted restore")
    result = rdeploy("restore", images["image"], target, "--resume", "--yes",
                     "-q")
    assert result.returncode == 0, result.stderr
    assert sha256(target) == images["clean_sha"]


def test_damaged_marker(images, tmp_path):
    """A marker that fails its CRC is an interrupted restore too (13), and
    a restore without --resume starts over."""
    target = tmp_path / "t.img"
    subprocess.run(["cp", "--sparse=always", images["clean"], target],
                   check=True)
    raw = bytearray(restoremark.Marker(0, bytes(32), bytes(32)).pack())
    raw[100] ^= 1
    with open(target, "r+b") as f:
        f.write(raw)
    check(rdeploy("verify-target", target), 13, "damaged restore marker")
    result = rdeploy("restore", images["image"], target, "--yes")
    assert result.returncode == 0, result.stderr
    assert b"damaged restore marker" in result.stderr
    assert sha256(target) == images["clean_sha"]


def test_resume_refused_once_filesystems_were_being_changed(images,
                                                            marked_target):
    """A marker of phase 2 (the records all written, grow or new ids under
    way: what was written is no longer the image's) is refused."""
    marker = _marker(marked_target)
    marker.phase = restoremark.PHASE_FINISHING
    with open(marked_target, "r+b") as f:
        f.write(marker.pack())
    before = sha256(marked_target)
    check(rdeploy("restore", images["image"], marked_target, "--resume",
                  "--yes"), 5, "begun changing filesystems")
    assert sha256(marked_target) == before


RECOVERY = "de94bba4-06d1-4d40-a16a-bfd50179d6ac"    # Windows recovery


def test_protected_partition_kept_across_the_interruption(images,
                                                          tmp_path):
    """A whole-disk restore that keeps a protected partition of the target
    zeroes the target's table first: the marker's KEPT block holds that
    partition's entry, so --resume (and a restore that starts over) keep
    it: its bytes and its entry in the new table."""
    target = tmp_path / "t.img"
    with open(target, "wb") as f:
        f.truncate(96 * MiB)
    sfdisk(target, f"label: gpt\nstart=2048, size=40000, name=os\n"
                   f"start={80 * 2048}, size={15 * 2048}, type={RECOVERY}, "
                   f"name=recovery\n")
    recovery = random.Random(9).randbytes(15 * MiB)
    with open(target, "r+b") as f:
        f.seek(80 * MiB)
        f.write(recovery)
    killed_restore(images["image"], target,
                   images["image"].stat().st_size // 2,
                   lambda: (_marker(target) or restoremark.Marker(
                       0, b"", b"")).checkpoint >= 5)
    assert not has_partitions(target)
    assert _marker(target).kept
    again = tmp_path / "again.img"
    subprocess.run(["cp", "--sparse=always", target, again], check=True)
    result = rdeploy("restore", images["image"], target, "--resume", "--yes",
                     "-q")
    assert result.returncode == 0, result.stderr
    result = rdeploy("restore", images["image"], again, "--yes")
    assert result.returncode == 0, result.stderr
    assert b"starts over" in result.stderr
    for disk in (target, again):
        assert read_at(disk, 80 * MiB, 15 * MiB) == recovery
        table = json.loads(run("sfdisk", "--json", disk))["partitiontable"]
        kept = [p for p in table["partitions"]
                if p["type"].lower() == RECOVERY]
        assert [(p["start"], p["size"]) for p in kept] == \
            [(80 * 2048, 15 * 2048)], table
        assert read_at(disk, PART2, 8 * MiB) == \
            read_at(images["disk"], PART2, 8 * MiB)
        assert rdeploy("verify-target", disk).returncode == 0
        assert b"RDI-KEPT" not in read_at(disk, 0, MiB)
