"""restore --delta (issue 17): onto a disk restored from the image and then
changed in a few files, a delta writes a small fraction of what a full
restore writes (the summary's count, the bytes that changed on the disk,
and the process's own write count, /proc/PID/io) and leaves the disk byte
for byte as a full restore of a copy of the same changed disk does (fsck
clean, file digests equal, verify-target equal); from a pipe too (with
--verify); a whole disk and --partitions; an encrypted image; after an
interrupted restore (with and without --resume); a target that differs
almost everywhere (written mostly without reading it); another layout
refused (exit 16) with the target unchanged; a 1.0 image refused (exit 7).

The disk: 160 MiB GPT, ext4 (partition 1, 96 MiB, files from mkfs.ext4 -d)
and FAT32 (partition 2, 48 MiB, files from mcopy)."""

import json
import random
import subprocess
from pathlib import Path

import pytest

from tests.rdeploy_helpers import ROOT, check, command, env, rdeploy, run
from tests.shared import copy
from tests.smalldisk import MiB, SECTOR, sfdisk, sha256

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4", "e2fsck", "mkfs.fat",
                               "fsck.fat", "mcopy", "losetup", root=True)

DISK = 160 * MiB
P1, P1_SIZE = 2048 * SECTOR, 96 * MiB
P2, P2_SIZE = P1 + P1_SIZE, 48 * MiB
EXT_FILES = {f"d{i // 8}/f{i}.bin": random.Random(i).randbytes(
    MiB + 4096 * i) for i in range(40)}
FAT_FILES = {f"G{i}.BIN": random.Random(100 + i).randbytes(2 * MiB)
             for i in range(8)}
TABLE = (f"label: gpt\nstart=2048, size={P1_SIZE // SECTOR}, name=sys\n"
         f"start={P2 // SECTOR}, size={P2_SIZE // SECTOR}, "
         f"type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=data\n")


def _mtools(disk, *args):
    run(*args[:1], "-i", f"{disk}@@{P2}", *args[1:])


def _build(path, tmp):
    with open(path, "wb") as f:
        f.truncate(DISK)
    sfdisk(path, TABLE)
    tree = tmp / "tree"
    for name, data in EXT_FILES.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    run("mkfs.ext4", "-q", "-F", "-E", f"offset={P1}", "-d", tree, path,
        f"{P1_SIZE // 1024}k")
    run("mkfs.fat", "-F", "32", "--offset", str(P2 // SECTOR), path,
        str(P2_SIZE // 1024))
    for name, data in FAT_FILES.items():
        (tmp / name).write_bytes(data)
        _mtools(path, "mcopy", tmp / name, f"::{name}")
    return path


@pytest.fixture(scope="module")
def golden(tmp_path_factory, shared_dir):
    """The disk, its image (plain and encrypted), the disk as restored
    from the image and then changed in a few files, and the SHA-256 of a
    full restore onto it (and the bytes that restore wrote): read-only."""
    d = tmp_path_factory.mktemp("delta")
    disk = _build(d / "disk.img", d)
    image = d / "disk.rdi"
    pw = d / "pw"
    pw.write_text("delta passphrase\n")
    sealed = d / "sealed.rdi"
    for out, *options in ((image,), (sealed, "--encrypt",
                                     f"--passphrase-file={pw}")):
        result = rdeploy("capture", disk, out, "-q", *options)
        assert result.returncode == 0, result.stderr
    changed = d / "changed.img"
    result = rdeploy("restore", image, changed, "--yes", "-q")
    assert result.returncode == 0, result.stderr
    _change(changed, d)
    # the reference: a full restore onto a copy of the changed disk
    full = copy(changed, d / "full.img")
    summary, wchar = _restore(image, full)
    assert "delta" not in summary
    shared_dir.seal(disk, image, sealed, changed, full)
    return {"image": image, "sealed": sealed, "pw": pw, "changed": changed,
            "full": sha256(full), "full_wchar": wchar}


def _change(disk, tmp):
    """A few files changed: in ext4 (mounted through a loop device) two
    rewritten, one removed, one added; in FAT one replaced."""
    mnt = tmp / "mnt"
    mnt.mkdir()
    dev = run("losetup", "--find", "--show", "-o", str(P1), "--sizelimit",
              str(P1_SIZE), disk)
    try:
        run("mount", dev, mnt)
        try:
            (mnt / "d0/f3.bin").write_bytes(b"changed " * 5000)
            (mnt / "d2/f17.bin").write_bytes(random.Random(7).randbytes(
                300000))
            (mnt / "d4/f33.bin").unlink()
            (mnt / "hostname").write_text("lab-pc-17\n")
        finally:
            run("umount", mnt)
    finally:
        run("losetup", "-d", dev)
    new = tmp / "G5.BIN"
    new.write_bytes(random.Random(55).randbytes(64 * 1024))
    _mtools(disk, "mcopy", "-o", new, "::G5.BIN")


def _restore(image, target, *options, stdin=None, count_writes=True):
    """rdeploy restore ... --progress=json, the library summary of its end
    event and the bytes the process handed to write calls (wchar of
    /proc/self/io, read as it exits: every thread's, stderr's lines too)."""
    wrapper = ("import atexit, runpy, sys\n"
               "atexit.register(lambda: sys.stdout.write(\n"
               "    open('/proc/self/io').read()))\n"
               "sys.argv = ['rdeploy'] + sys.argv[1:]\n"
               "runpy.run_module('rdeploy', run_name='__main__')\n")
    argv = command("restore", image, target, *options, "--yes",
                   "--progress=json")
    if count_writes:
        argv = [argv[0], "-c", wrapper, *argv[3:]]
    with open(stdin, "rb") if stdin else open("/dev/null", "rb") as feed:
        result = subprocess.run(argv, env=env(), cwd=ROOT, stdin=feed,
                                capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    events = [json.loads(line) for line in result.stderr.decode().split("\n")
              if line.startswith("{")]
    end = [e for e in events if e.get("event") == "end"]
    assert end, result.stderr.decode()
    io = dict(line.split(": ") for line in result.stdout.decode().split("\n")
              if ": " in line)
    return end[-1]["result"], int(io.get("wchar", -1))


def _changed_bytes(before, after):
    """How many bytes differ between two files of one size (4 KiB blocks
    compared; each differing block counted whole)."""
    n = 0
    with open(before, "rb") as a, open(after, "rb") as b:
        while True:
            x, y = a.read(4 << 20), b.read(4 << 20)
            if not x:
                return n
            for i in range(0, len(x), 4096):
                if x[i:i + 4096] != y[i:i + 4096]:
                    n += 4096


def _loop(disk, offset, size):
    return run("losetup", "--find", "--show", "-r", "-o", str(offset),
               "--sizelimit", str(size), disk)


def _checked(disk, ext_files=True):
    """fsck of both filesystems (read-only) and the digests of their
    files, as the source disk had them (not ext4's: *ext_files* False)."""
    out = Path(disk).parent / (Path(disk).name + ".files")
    out.mkdir()
    dev = _loop(disk, P1, P1_SIZE)
    try:
        run("e2fsck", "-fn", dev)
        run("debugfs", "-R", f"rdump / {out}", dev)
    finally:
        run("losetup", "-d", dev)
    for name, data in EXT_FILES.items() if ext_files else ():
        assert (out / name).read_bytes() == data, name
    dev = _loop(disk, P2, P2_SIZE)
    try:
        run("fsck.fat", "-n", dev)
    finally:
        run("losetup", "-d", dev)
    for name, data in FAT_FILES.items():
        got = subprocess.run(["mtype", "-i", f"{disk}@@{P2}", f"::{name}"],
                             capture_output=True, check=True).stdout
        assert got == data, name


def test_delta_writes_little_and_equals_a_full_restore(golden, tmp_path):
    delta = copy(golden["changed"], tmp_path / "delta.img")
    d_summary, d_wchar = _restore(golden["image"], delta, "--delta")
    assert sha256(delta) == golden["full"]
    _checked(delta)
    result = rdeploy("verify-target", delta, golden["image"])
    assert result.returncode == 0, result.stderr
    counts = d_summary["delta"]
    total = counts["full"]          # what a full restore writes
    # one count of the bytes written, in the summary and under delta
    assert d_summary["written_bytes"] == counts["written"]
    assert d_summary["restored_bytes"] >= total
    assert counts["read"] == counts["compared"] > 0.9 * total
    assert counts["chunks_same"] > 3 * counts["chunks_written"] > 0
    assert counts["written"] < 0.2 * total
    changed = _changed_bytes(golden["changed"], delta)
    assert 0 < changed <= counts["written"]
    # the process's own count: the table's MiB, the written chunks, the
    # marker and the progress lines; a full restore wrote them all
    assert d_wchar < counts["written"] + MiB
    assert d_wchar < 0.2 * golden["full_wchar"]


def test_delta_from_a_pipe_and_of_chosen_partitions(golden, tmp_path):
    """From stdin: the same bytes as a full restore; --partitions=2: only
    the FAT partition compared and mended, as a full --partitions=2
    restore."""
    full, delta = tmp_path / "full.img", tmp_path / "delta.img"
    copy(golden["changed"], delta)
    summary, _ = _restore("-", delta, "--delta", "--verify",
                          stdin=golden["image"])
    assert sha256(delta) == golden["full"] and summary["verified"]
    assert summary["delta"]["written"] < 0.1 * summary["delta"]["full"]
    for path in (full, delta):
        copy(golden["changed"], path)
    _restore(golden["image"], full, "--partitions=2", count_writes=False)
    summary, _ = _restore(golden["image"], delta, "--partitions=2",
                          "--delta")
    assert sha256(delta) == sha256(full)
    counts = summary["delta"]
    # FAT's tables and root directory lie in the partition's first MiB,
    # the guard zone a --partitions restore always writes; the new file's
    # clusters in free space: no chunk of the image differs
    assert 0 < counts["compared"] <= P2_SIZE - MiB
    assert counts["written"] == MiB
    _checked(delta, ext_files=False)    # ext4 still changed, fsck-clean


def test_an_encrypted_image(golden, tmp_path):
    """The same bytes as the plain image's full restore."""
    delta = copy(golden["changed"], tmp_path / "delta.img")
    pw = f"--passphrase-file={golden['pw']}"
    summary, _ = _restore(golden["sealed"], delta, pw, "--delta",
                          count_writes=False)
    assert sha256(delta) == golden["full"]
    assert summary["delta"]["written"] < 0.1 * summary["delta"]["full"]
    _checked(delta)


def _moved(path):
    """The changed disk with partition 2 one MiB further on."""
    sfdisk(path, TABLE.replace(f"start={P2 // SECTOR},",
                               f"start={P2 // SECTOR + 2048},"))
    return path


def _mbr(path):
    sfdisk(path, f"label: dos\nstart=2048, size={P1_SIZE // SECTOR}\n")
    return path


def _smaller(path):
    """A 64 MiB disk with a smaller partition 1: refused as another layout
    (not as too small)."""
    with open(path, "r+b") as f:
        f.truncate(64 * MiB)
    sfdisk(path, "label: gpt\nstart=2048, size=100000\n")
    return path


@pytest.mark.parametrize("make, words", [
    (_moved, ["partition 2 starts at sector 200704 on", "198656 in"]),
    (_mbr, ["has an MBR table", "a GPT table"]),
    (_smaller, ["partition 1 has a size of 100000 sectors on",
                "196608 sectors in"]),
])
def test_another_layout_is_refused_before_any_write(golden, tmp_path, make,
                                                    words):
    target = make(copy(golden["changed"], tmp_path / "target.img"))
    before = sha256(target)
    check(rdeploy("restore", golden["image"], target, "--delta", "--yes"),
          16, *words, "without --delta")
    assert sha256(target) == before


def test_what_else_is_refused(golden, tmp_path):
    missing = tmp_path / "new.img"
    check(rdeploy("restore", golden["image"], missing, "--delta", "--yes"),
          16, "does not exist", "nothing to compare")
    assert not missing.exists()
    target = copy(golden["changed"], tmp_path / "target.img")
    check(rdeploy("restore", golden["image"], target, "--delta", "--grow",
                  "--yes"), 2, "--delta", "--grow")
    # format 1.0: its chunks carry a CRC-32 only
    import gzip
    with gzip.open(ROOT / "tests/image/data/v10-ext4.rdi.gz") as f:
        (tmp_path / "v10.rdi").write_bytes(f.read())
    small = tmp_path / "small.img"
    result = rdeploy("restore", tmp_path / "v10.rdi", small, "--yes", "-q")
    assert result.returncode == 0, result.stderr
    before = sha256(small)
    check(rdeploy("restore", tmp_path / "v10.rdi", small, "--delta",
                  "--yes"), 7, "format 1.0", "imgx recompress")
    assert sha256(small) == before


@pytest.mark.parametrize("options", [(), ("--resume",)])
def test_after_an_interrupted_restore(golden, tmp_path, options):
    """A restore killed half way wiped the table: a delta (starting over,
    or with --resume from its checkpoint) accepts the target by its
    restore marker (the same plan: the image's layout) and leaves what a
    full restore leaves."""
    from diskimage import restoremark
    from tests.rdeploy.test_resume import killed_restore
    target = copy(golden["changed"], tmp_path / "target.img")

    def marker():
        with open(target, "rb") as f:
            return restoremark.unpack(f.read(512), 0)

    killed_restore(golden["image"], target,
                   golden["image"].stat().st_size // 2,
                   lambda: (marker() or restoremark.Marker(0, b"", b""))
                   .checkpoint >= 4)
    assert marker() is not None
    summary, _ = _restore(golden["image"], target, "--delta", *options,
                          count_writes=False)
    assert sha256(target) == golden["full"]
    assert marker() is None
    counts = summary["delta"]
    assert counts["written"] < 0.1 * summary["delta"]["full"]
    if options:
        assert summary["resumed_at"] >= 4
        assert counts["chunks_same"] + counts["chunks_written"] < 35


def test_a_target_that_differs_almost_everywhere(golden, tmp_path):
    """Another disk's bytes under the same table: after a few chunks that
    differ, most are written without reading the target (every 8th still
    compared); the result is still a full restore's."""
    full, delta = tmp_path / "full.img", tmp_path / "delta.img"
    copy(golden["changed"], full)
    with open(full, "r+b") as f:
        f.seek(P1)
        f.write(random.Random(3).randbytes(P1_SIZE + P2_SIZE))
    copy(full, delta)
    _restore(golden["image"], full, count_writes=False)
    summary, _ = _restore(golden["image"], delta, "--delta", "--threads=1",
                          count_writes=False)
    assert sha256(delta) == sha256(full)
    counts = summary["delta"]
    chunks = counts["chunks_written"] + counts["chunks_same"]
    assert counts["chunks_same"] == 0
    assert chunks // 2 < counts["chunks_unread"] < chunks
    assert counts["read"] < counts["full"] // 2


def test_with_new_identities(golden, tmp_path):
    """--new-ids after the delta, as after a full restore: new GUIDs and
    filesystem UUIDs, fsck clean, the image's files."""
    delta = copy(golden["changed"], tmp_path / "delta.img")
    summary, _ = _restore(golden["image"], delta, "--delta", "--new-ids",
                          count_writes=False)
    assert summary["delta"]["written"] < 0.1 * summary["delta"]["full"]
    assert "disk GUID" in summary["actions"]["ids"]
    _checked(delta)
