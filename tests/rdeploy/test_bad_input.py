"""What rdeploy does with bad input and refused targets: the exit code and
the one line on stderr a user sees, and that nothing is left behind that
looks like a finished image or disk.  A full disk is in test_no_space.py,
a failure after the target was changed in test_changed_target.py, Ctrl-C
and a closed pipe in test_interrupt.py.

rdeploy runs as a subprocess.  Loop devices and mounts need root; those
tests are skipped otherwise and always undo what they set up
(tests/rdeploy/conftest.py).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.rdeploy_helpers import check, leftovers, rdeploy, run
from tests.smalldisk import DISK_SIZE, MiB, has_partitions, sha256

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4")
needs_root = pytest.mark.needs("losetup", root=True)


# --- capture ----------------------------------------------------------------
@pytest.mark.parametrize("source, words", [
    ("/nonexistent/disk.img", ["no such file"]),
    ("{dir}", ["directory"]),
    ("/dev/null", ["character device", "not a disk"]),
])
def test_capture_unusable_source(tmp_path, source, words):
    image = tmp_path / "out.rdi"
    result = rdeploy("capture", source.format(dir=tmp_path), image)
    check(result, 3, *words)
    assert leftovers(image) == []


def test_capture_to_stdout_on_a_terminal(disk):
    master, slave = os.openpty()
    try:
        result = rdeploy("capture", disk["source"], "-", stdout=slave)
    finally:
        os.close(slave)
        os.close(master)
    check(result, 3, "terminal")


def test_capture_unknown_partition(disk, tmp_path):
    image = tmp_path / "out.rdi"
    line = check(rdeploy("capture", disk["source"], image, "--partitions=5"),
                 3, "no partition 5")
    assert "1, 2" in line       # it says which partitions there are
    assert leftovers(image) == []


def test_capture_onto_a_device_or_fifo(disk, tmp_path):
    """An IMAGE that exists and is not a regular file (a FIFO here; the
    same holds for /dev/null) is refused, and left as it was: the image is
    written as NAME.partial and renamed, which would replace it."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    check(rdeploy("capture", disk["source"], fifo), 3, "not a regular file")
    assert fifo.is_fifo()
    assert leftovers(fifo) == ["fifo"]     # no fifo.partial either


@pytest.mark.parametrize("option, word", [("--compress=bogus", "bogus"),
                                          ("--split=abc", "abc")])
def test_capture_bad_option_value(disk, tmp_path, option, word):
    image = tmp_path / "out.rdi"
    check(rdeploy("capture", disk["source"], image, option), 2, word)
    assert leftovers(image) == []


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
def test_capture_onto_its_own_source(small_disk, tmp_path, how):
    source = small_disk
    before = sha256(source)
    image = {"same path": source, "symlink": tmp_path / "link.rdi",
             "hard link": tmp_path / "hard.rdi"}[how]
    if how == "symlink":
        image.symlink_to(source)
    elif how == "hard link":
        os.link(source, image)
    check(rdeploy("capture", source, image), 5, "own source")
    assert sha256(source) == before
    assert not Path(f"{image}.partial").exists()


# --- restore, verify, info: not an image -------------------------------------
BAD_IMAGES = {
    "not an image": ("{source}", ["not an rdeploy image"]),
    "empty file": ("{dir}/empty.rdi", ["empty"]),
    "directory": ("{dir}", ["directory"]),
    "missing": ("{dir}/missing.rdi", ["no such file"]),
    "later volume": ("{dir}/split.r01", ["later volume", "{dir}/split.rdi"]),
}


@pytest.mark.parametrize("cmd", ["restore", "verify", "info"])
@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_bad_image(disk, tmp_path, cmd, kind):
    (disk["dir"] / "empty.rdi").touch()
    path, words = BAD_IMAGES[kind]
    values = {"dir": disk["dir"], "source": disk["source"]}
    image = path.format(**values)
    target = tmp_path / "target.img"
    args = (cmd, image, target, "--yes") if cmd == "restore" else (cmd, image)
    result = rdeploy(*args)
    check(result, 3, *(w.format(**values) for w in words))
    assert result.stdout == b""
    assert not target.exists()


# --- restore: target refused -------------------------------------------------
def test_restore_onto_a_directory(disk, tmp_path):
    """A directory is not a target: bad input, exit 3 (issue 11 item 19),
    one line, and nothing made in it."""
    check(rdeploy("restore", disk["image"], tmp_path, "--yes"), 3,
          str(tmp_path), "is a directory")
    with open(disk["image"], "rb") as stdin:
        check(rdeploy("restore", "-", tmp_path, "--yes", stdin=stdin), 3,
              "is a directory")
    assert os.listdir(tmp_path) == []


def test_restore_target_too_small(disk, tmp_path):
    target = tmp_path / "small.img"
    target.write_bytes(b"\xa5" * MiB)
    before = sha256(target)
    line = check(rdeploy("restore", disk["image"], target, "--yes"), 5,
                 "too small", f"{MiB} bytes")
    needed = int(re.search(r"needs (\d+) \((\d+) more", line).group(1))
    assert MiB < needed <= DISK_SIZE
    assert sha256(target) == before


def test_restore_size_of_a_partition_the_image_lacks(disk, tmp_path):
    """--size naming a partition the image does not hold is bad input (3,
    'a partition that does not exist'), not a refused target (5, as it was
    before issue 12); nothing is written."""
    target = tmp_path / "t.img"
    target.write_bytes(b"\xa5" * MiB)
    before = sha256(target)
    check(rdeploy("restore", disk["image"], target, "--size=9=10M",
                  "--yes"), 3, "--size", "no partition 9")
    assert sha256(target) == before


def test_restore_onto_the_image_itself(disk, tmp_path):
    image = tmp_path / "copy.rdi"
    shutil.copyfile(disk["image"], image)
    before = sha256(image)
    check(rdeploy("restore", image, image, "--yes"), 5, "image being restored")
    assert sha256(image) == before


def padded_copy(image, path):
    """A copy of `image` with zeros after it up to twice the disk's size:
    large enough as a target, so only the identity check can stop a
    restore onto it."""
    shutil.copyfile(image, path)
    os.truncate(path, 2 * DISK_SIZE)
    return path


def test_restore_from_stdin_onto_the_image_itself(disk, tmp_path):
    """`restore - TARGET < TARGET` (issue 11 item 7): stdin is the target,
    by its inode, as a path would be."""
    image = padded_copy(disk["image"], tmp_path / "copy.rdi")
    before = sha256(image)
    with open(image, "rb") as stdin:
        check(rdeploy("restore", "-", image, "--yes", stdin=stdin), 5,
              "image being restored", "stdin")
    assert sha256(image) == before


@needs_root
@pytest.mark.parametrize("which", ["target is a loop device over stdin",
                                   "stdin is a loop device over the target"])
def test_restore_from_stdin_onto_a_loop_device_of_it(disk, tmp_path, kernel,
                                                     which):
    image = padded_copy(disk["image"], tmp_path / "copy.rdi")
    dev = kernel.loop(image)
    stdin_path, target = (image, dev) if which.startswith("target") else \
        (dev, image)
    before = sha256(image)
    with open(stdin_path, "rb") as stdin:
        check(rdeploy("restore", "-", target, "--yes", stdin=stdin), 5,
              "image being restored", "stdin")
    assert sha256(image) == before


@needs_root
def test_restore_onto_mounted_loop_device(tmp_path, disk, kernel):
    backing = tmp_path / "fs.img"
    with open(backing, "wb") as f:
        f.truncate(DISK_SIZE)
    run("mkfs.ext4", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0",
        backing)
    dev = kernel.loop(backing)
    kernel.freeze(kernel.mount(dev, tmp_path / "mnt"))
    before = sha256(dev)
    check(rdeploy("restore", disk["image"], dev, "--yes"), 5, "mounted")
    assert sha256(dev) == before


@needs_root
@pytest.mark.parametrize("target", ["whole-file loop device", "backing file"])
def test_restore_onto_disk_whose_partition_is_mounted(tmp_path, disk, kernel,
                                                      target):
    """A second loop device over partition 1 of the same file is mounted:
    neither the whole-file loop device nor the file may be written."""
    backing = tmp_path / "disk.img"
    subprocess.run(["cp", "--sparse=always", disk["source"], backing],
                   check=True)
    whole = kernel.loop(backing)
    part = kernel.loop(backing, "-o", MiB, "--sizelimit", 32 * MiB)
    kernel.freeze(kernel.mount(part, tmp_path / "mnt"))
    path = whole if target == "whole-file loop device" else backing
    before = sha256(path)
    check(rdeploy("restore", disk["image"], path, "--yes"), 5, part,
          "mounted")
    assert sha256(path) == before


def test_restore_without_yes_and_no_terminal(disk, tmp_path):
    target = tmp_path / "other.img"
    shutil.copyfile(disk["other"], target)
    before = sha256(target)
    check(rdeploy("restore", disk["image"], target), 5, "--yes")
    assert sha256(target) == before
    new = tmp_path / "new.img"
    check(rdeploy("restore", disk["image"], new), 5, "--yes")
    assert not new.exists()
    with open(disk["image"], "rb") as stdin:   # an image on stdin: no asking
        check(rdeploy("restore", "-", target, stdin=stdin), 5, "--yes")
    assert sha256(target) == before


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
def test_restore_onto_a_dangling_symlink(disk, tmp_path, extra):
    """A TARGET that is a symlink to a missing file is refused (exit 5) with
    a line that says so, and nothing is created where it points (issue 11
    round 3, volmsg item 3)."""
    (tmp_path / "victim").mkdir()
    link = tmp_path / "dang.img"
    link.symlink_to(tmp_path / "victim" / "created.img")
    line = check(rdeploy("restore", disk["image"], link, "--yes", *extra), 5,
                 f"{link}: is a symlink to {tmp_path}/victim/created.img, "
                 f"which does not exist",
                 "restore does not create files through links")
    assert "File exists" not in line
    assert os.listdir(tmp_path / "victim") == []
    assert link.is_symlink()


def test_restore_through_a_symlink_to_an_existing_file(disk, tmp_path):
    """A link to an existing file (as /dev/disk/by-id links are) is still
    followed: the file is the target."""
    target = tmp_path / "real.img"
    shutil.copyfile(disk["other"], target)
    link = tmp_path / "link.img"
    link.symlink_to(target)
    result = rdeploy("restore", disk["image"], link, "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    assert link.is_symlink()
    assert has_partitions(target)
