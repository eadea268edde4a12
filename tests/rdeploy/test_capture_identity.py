"""An image is never written over its own source: `rdeploy capture` and
`imgx import` compare the identity of what they would write (stdout, IMAGE,
IMAGE.partial, a later volume) with SOURCE, following loop devices, and
refuse (exit 5, target refused) before reading a byte (issue 11 item 1)."""

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.imgx_helpers import imgx, one_line_error
from tests.smalldisk import build_disk, sha256
from tests.rdeploy_helpers import ROOT, check, command, env, leftovers, rdeploy

needs_root = pytest.mark.needs("losetup", root=True)


@pytest.fixture
def source(small_disk, tmp_path):
    disk = small_disk
    return disk, sha256(disk)


@contextlib.contextmanager
def loop(backing):
    dev = subprocess.run(["losetup", "--find", "--show", str(backing)],
                         check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def capture_to_stdout(source, stdout_path, *options):
    """rdeploy capture SOURCE - with stdout opened read-write onto
    `stdout_path` (the shell's `1<>PATH`: no truncation)."""
    fd = os.open(stdout_path, os.O_RDWR)
    try:
        return subprocess.run(command("capture", source, "-", *options),
                              env=env(), cwd=ROOT, stdin=subprocess.DEVNULL,
                              stdout=fd, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(fd)


def test_stdout_opened_onto_the_source(source):
    disk, before = source
    line = check(capture_to_stdout(disk, disk), 5, "stdout", "own source",
                 str(disk))
    assert "rdeploy: error:" in line
    assert sha256(disk) == before


def test_stdout_onto_a_hard_link_of_the_source(source, tmp_path):
    disk, before = source
    os.link(disk, tmp_path / "other-name.img")
    check(capture_to_stdout(disk, tmp_path / "other-name.img"), 5,
          "own source")
    assert sha256(disk) == before


def test_stdout_onto_another_file_is_written(source, tmp_path):
    disk, before = source
    out = tmp_path / "out.rdi"
    out.touch()
    result = capture_to_stdout(disk, out, "-q")
    assert result.returncode == 0, result.stderr.decode()
    assert out.read_bytes()[:4] == b"\x89RDI"
    assert sha256(disk) == before


@needs_root
def test_stdout_onto_a_loop_device_over_the_source(source):
    disk, before = source
    with loop(disk) as dev:
        check(capture_to_stdout(disk, dev), 5, "own source")
    assert sha256(disk) == before


@needs_root
def test_source_a_loop_device_stdout_its_backing_file(source):
    disk, before = source
    with loop(disk) as dev:
        check(capture_to_stdout(dev, disk), 5, "own source", dev)
    assert sha256(disk) == before


@needs_root
def test_image_is_the_backing_file_of_the_source(source):
    disk, before = source
    with loop(disk) as dev:
        check(rdeploy("capture", dev, disk, "--force"), 5, "own source")
    assert sha256(disk) == before
    assert leftovers(disk) == ["disk.img"]


@pytest.mark.parametrize("how", ["hard link", "symlink"])
def test_partial_is_the_source(source, tmp_path, how):
    disk, before = source
    image = tmp_path / "new.rdi"
    partial = Path(f"{image}.partial")
    if how == "hard link":
        os.link(disk, partial)
    else:
        partial.symlink_to(disk)
    check(rdeploy("capture", disk, image), 5, "own source", str(partial))
    assert sha256(disk) == before
    assert not image.exists() and os.path.lexists(partial)


@pytest.mark.parametrize("name", ["sp.r01", "sp.r07", "sp.r02.partial"])
def test_a_volume_of_the_split_image_is_the_source(tmp_path, name):
    """SOURCE named like a volume of IMAGE: a split capture would rename a
    volume over it, or drop it as a stale volume, at the end."""
    disk = build_disk(tmp_path / name)
    before = sha256(disk)
    check(rdeploy("capture", disk, tmp_path / "sp.rdi", "--split=1M",
                  "--force"), 5, "own source", name)
    assert sha256(disk) == before
    assert leftovers(tmp_path / "sp") == [name]


def test_split_capture_beside_other_volumes_still_works(source, tmp_path):
    """Files that only look like volumes of another image are no
    obstacle."""
    disk, _ = source
    (tmp_path / "other.r01").write_bytes(b"x")
    result = rdeploy("capture", disk, tmp_path / "sp.rdi", "--split=1M",
                     "-q")
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "sp.r01").exists()


def test_imgx_import_onto_its_raw_source(source):
    disk, before = source
    err = one_line_error(imgx("import", disk, disk), 5)
    assert "own source" in err
    assert sha256(disk) == before


@pytest.mark.needs("qemu-img")
def test_imgx_import_onto_its_qcow2_source(source, tmp_path):
    """A qcow2 is converted to a scratch raw file first: the check must
    compare OUT with the user's SOURCE, not with the scratch file."""
    disk, _ = source
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2",
                    str(disk), str(qcow)], check=True)
    before = sha256(qcow)
    err = one_line_error(imgx("import", qcow, qcow), 5)
    assert "own source" in err
    assert sha256(qcow) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["disk.img", "disk.qcow2"]


@needs_root
def test_image_a_loop_device_over_the_source(source):
    """IMAGE a loop device over SOURCE: an image goes to a regular file
    (a rename over a device node would replace it), so this is refused as
    bad input before anything is read (a guard; refused since round 1)."""
    disk, before = source
    with loop(disk) as dev:
        check(rdeploy("capture", disk, dev, "--force"), 3,
              "not a regular file")
    assert sha256(disk) == before
