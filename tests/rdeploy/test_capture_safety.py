"""rdeploy capture against other writers and existing files: a second
capture to the same image is refused while the first runs, a partial file
left by a dead run is taken over, an existing image is replaced only with
--force (issue 11 items 4 and 19).

rdeploy runs as real subprocesses, two at once where it matters.
"""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.smalldisk import MiB, sha256
from tests.rdeploy_helpers import check, leftovers, rdeploy, slow_capture
from tests.signals import wait_for

pytestmark = pytest.mark.needs("sfdisk")


@pytest.mark.parametrize("split", [[], ["--split=4M"]])
def test_second_capture_to_the_same_image_is_refused(slow_source, tmp_path,
                                                     split):
    """The second capture does not truncate the first's .partial: it exits
    9 naming the file, and the first one's image is whole.  The first is
    stopped (SIGSTOP) while the second runs."""
    image = tmp_path / "same.rdi"
    first = slow_capture(slow_source, image, *split)
    try:
        wait_for(lambda: Path(f"{image}.partial").exists()
                 or first.poll() is not None)
        # Stopped, the first holds its locked .partial for as long as the
        # second needs, however loaded the machine (the lock is taken
        # before the file has its name, so there is no earlier moment).
        first.send_signal(signal.SIGSTOP)
        assert first.poll() is None, "first capture finished too soon"
        try:
            second = rdeploy("capture", slow_source, image, "--force",
                             *split)
        finally:
            first.send_signal(signal.SIGCONT)
        check(second, 9, f"{image}.partial", "another process")
        _, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, stderr
    assert rdeploy("verify", image).returncode == 0
    assert not list(tmp_path.glob("*.partial*"))


def test_partial_left_by_a_dead_capture_is_taken_over(
        small_disk, slow_source, tmp_path):
    """A capture killed with SIGKILL leaves its .partial; the next capture
    replaces it (nobody holds it) and says so."""
    image = tmp_path / "dead.rdi"
    victim = slow_capture(slow_source, image)
    try:
        wait_for(lambda: Path(f"{image}.partial").exists()
                 or victim.poll() is not None)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
    finally:
        victim.kill()
    assert Path(f"{image}.partial").exists()
    source = small_disk
    result = rdeploy("capture", source, image)
    assert result.returncode == 0, result.stderr.decode()
    assert "left by an earlier run" in result.stderr.decode()
    assert f"{image}.partial" in result.stderr.decode()
    assert leftovers(image) == ["dead.rdi"]
    assert rdeploy("verify", image).returncode == 0


def test_capture_onto_an_existing_image_needs_force(small_disk, tmp_path):
    source = small_disk
    image = tmp_path / "out.rdi"
    image.write_bytes(b"someone's image")
    check(rdeploy("capture", source, image), 3, str(image), "--force")
    assert image.read_bytes() == b"someone's image"
    assert leftovers(image) == ["out.rdi"]
    result = rdeploy("capture", source, image, "--force", "-q")
    assert result.returncode == 0, result.stderr.decode()
    assert rdeploy("verify", image).returncode == 0


def test_capture_onto_a_dangling_symlink_says_so(small_disk, tmp_path):
    """IMAGE a symlink to a missing file: refused with a line that says
    so, not 'exists' (issue 11 round 3, volmsg item 3 sweep); with --force
    too, as every output (issue 11 review item 5): nothing is made where it
    points, the link stays."""
    source = small_disk
    (tmp_path / "victim").mkdir()
    image = tmp_path / "dang.rdi"
    image.symlink_to(tmp_path / "victim" / "made.rdi")
    check(rdeploy("capture", source, image), 3,
          f"{image}: is a symlink to {tmp_path}/victim/made.rdi, which does "
          f"not exist", "--force")
    assert image.is_symlink()
    check(rdeploy("capture", source, image, "--force", "-q"), 3,
          f"{image}: is a symlink to {tmp_path}/victim/made.rdi, which does "
          f"not exist", "never created through a link")
    assert image.is_symlink() and os.listdir(tmp_path / "victim") == []


def test_capture_split_refuses_an_existing_later_volume(small_disk, tmp_path):
    """A split capture would rename over IMAGE.r01 of another image."""
    source = small_disk
    image = tmp_path / "out.rdi"
    other = tmp_path / "out.r01"
    other.write_bytes(b"another image's volume")
    check(rdeploy("capture", source, image, "--split=1M"), 3,
          str(other), "--force")
    assert other.read_bytes() == b"another image's volume"
    assert not image.exists() and not list(tmp_path.glob("*.partial*"))


def test_force_keeps_the_old_image_when_the_capture_fails(
        small_disk, tmp_path):
    """--force replaces only with a whole new image: a failed capture
    (a source that does not exist) leaves the old one as it was."""
    source = small_disk
    image = tmp_path / "out.rdi"
    assert rdeploy("capture", source, image, "-q").returncode == 0
    before = sha256(image)
    check(rdeploy("capture", tmp_path / "missing.img", image, "--force"), 3)
    assert sha256(image) == before and leftovers(image) == ["out.rdi"]


@pytest.mark.parametrize("what", ["symlink", "directory", "fifo"])
def test_partial_name_taken_by_something_else(small_disk, tmp_path, what):
    """IMAGE.partial that is a symlink (to a file of someone else's), a
    directory or a FIFO: refused, never followed, the file it points at
    untouched."""
    source = small_disk
    image = tmp_path / "out.rdi"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    partial = Path(f"{image}.partial")
    if what == "symlink":
        partial.symlink_to(victim)
    elif what == "directory":
        partial.mkdir()
    else:
        os.mkfifo(partial)
    check(rdeploy("capture", source, image), 3, str(partial), "remove it")
    assert victim.read_text() == "keep me\n"
    assert os.path.lexists(partial) and not image.exists()
    assert not list(tmp_path.glob("out.rdi.partial.*"))


@pytest.mark.needs("mkfs.exfat", "mount.exfat-fuse", root=True)
def test_capture_onto_a_filesystem_without_hard_links(small_disk, tmp_path):
    """exFAT (as on a USB stick) has no hard links: the exclusive creation
    and the no-replace rename still work there."""
    from tests.fsbuild import exfat_mounted
    fs = tmp_path / "stick.img"
    with open(fs, "wb") as f:
        f.truncate(64 * MiB)
    subprocess.run(["mkfs.exfat", fs], check=True, capture_output=True)
    source = small_disk
    with exfat_mounted(fs, tmp_path / "stick") as stick:
        image = Path(stick) / "out.rdi"
        result = rdeploy("capture", source, image, "--split=4M", "-q")
        assert result.returncode == 0, result.stderr.decode()
        assert rdeploy("verify", image).returncode == 0
        check(rdeploy("capture", source, image), 3, "--force")
        result = rdeploy("capture", source, image, "--force", "-q")
        assert result.returncode == 0, result.stderr.decode()
        # one volume now: the old image's out.r01 went with it
        assert sorted(p.name for p in Path(stick).iterdir()) == ["out.rdi"]
        assert rdeploy("verify", image).returncode == 0


@pytest.mark.needs(root=True)
def test_no_space_for_the_metadata_leaves_nothing(small_disk, tmp_path):
    """A 4 KiB tmpfs holds the header but not 8 KiB of metadata: the
    write fails in the writer's first records, exit 6, no .partial."""
    source = small_disk
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", small],
                   check=True)
    try:
        image = small / "out.rdi"
        check(rdeploy("capture", source, image, "--description=" +
                      "x" * 8192), 6, "no space")
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", small], check=True)
