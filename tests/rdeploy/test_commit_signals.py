"""A signal at the moment of commit (issue 11 round 4, items 1 and 2): the
outcome a command reports is true in every window.  Before the commit an
interrupt cleans up (tests elsewhere); the commit step itself holds the
signals; once the output is whole under its final name an interrupt does
not turn the finished job into a failure, and a signal after main returned
never kills the process with the default action.

Each run is a real process of the real command, given its signals back
(tests/signals.py), that sends itself a real signal just after a given
rename of the commit (tests.signals.AT_COMMIT), so the moment holds on a
loaded machine."""

import os
import signal
import subprocess
import sys

import pytest

from diskimage.host.tools import tool_env
from diskimage.image.volumes import find_volumes

from tests.imgx_helpers import ROOT, capture_disk, edit_disk, ok
from tests.signals import AT_COMMIT, INTERRUPTIBLE
from tests.smalldisk import sha256

SIGNALS = pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
    ids=["SIGINT", "SIGTERM", "SIGHUP"])


def at_commit(sig, moment, nth, module, *args):
    return subprocess.run(
        [sys.executable, "-c", AT_COMMIT, str(int(sig)), moment, str(nth),
         module, *map(os.fspath, args)],
        capture_output=True, text=True, cwd=ROOT, env=tool_env(None),
        timeout=300, **INTERRUPTIBLE)


def verifies(image):
    result = subprocess.run(
        [sys.executable, "-m", "rdeploy", "verify", os.fspath(image),
         "--quiet"], capture_output=True, text=True, cwd=ROOT,
        env=tool_env(None))
    return result.returncode == 0, result.stderr


def whole_after_signal(result, image):
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert "nothing was left" not in result.stderr, result.stderr
    assert f"came after the work was complete; not undone: {image} is " \
           f"whole" in result.stderr, result.stderr
    assert verifies(image) == (True, "")
    assert not [n for n in os.listdir(os.path.dirname(image))
                if ".partial" in n]


@SIGNALS
def test_put_interrupted_just_after_its_rename_is_done_and_says_so(
        tmp_path, sig):
    """The new image has replaced the old (the commit) and the signal
    lands then: the edit is whole, so exit 0 and a line that says the
    signal came too late to undo it, never "interrupted ... nothing was
    left that looks complete" (exit 143) over an image that holds the
    edit."""
    image, _ = edit_disk(tmp_path)
    src = tmp_path / "new.txt"
    src.write_text("new file\n")
    result = at_commit(sig, "step", 1, "imgx", "put", src,
                       f"{image}:1/new.txt")
    whole_after_signal(result, os.fspath(image))
    assert ok("cat", f"{image}:1/new.txt") == b"new file\n"
    assert b" put " in ok("info", image)


@SIGNALS
def test_capture_interrupted_just_after_partial_became_image(
        small_disk, tmp_path, sig):
    disk = small_disk
    image = tmp_path / "cap.rdi"
    result = at_commit(sig, "step", 1, "rdeploy", "capture", disk, image)
    whole_after_signal(result, os.fspath(image))


@SIGNALS
def test_restore_signalled_as_it_exits_is_not_killed(
        small_disk, tmp_path, sig):
    """The summary has printed and main has returned; a signal then (the
    terminal closing) must not kill the process with the default action
    (status -1 for SIGHUP) nor raise a traceback: exit 0, the disk whole."""
    disk = small_disk
    image = tmp_path / "cap.rdi"
    capture_disk(disk, image)
    target = tmp_path / "target.img"
    result = at_commit(sig, "exit", 0, "rdeploy", "restore", image, target,
                       "--yes")
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert "rdeploy: restored" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert sha256(target) == sha256(disk)


@pytest.mark.parametrize("step", [1, 2])
def test_split_replace_interrupted_between_volumes_leaves_one_image_whole(
        small_disk, tmp_path, step):
    """Item 2: the new split image replaces an old one of more volumes;
    SIGTERM lands after the first or second step of the sequence (on the
    old order: the removal of an old extra volume, or the rename of a
    later volume before the first).  Afterwards the name holds one whole
    image, here the new one, and no stale volume of the old."""
    disk = small_disk
    image = tmp_path / "sp.rdi"
    capture_disk(disk, image, codec="zstd", split=1 << 20)
    old = find_volumes(os.fspath(image))
    assert len(old) >= 3
    result = at_commit(signal.SIGTERM, "step", step, "rdeploy", "capture",
                       disk, image, "--split=2M", "--force")
    assert verifies(image) == (True, ""), find_volumes(os.fspath(image))
    whole_after_signal(result, os.fspath(image))
    new = find_volumes(os.fspath(image))
    assert 1 < len(new) < len(old)


@SIGNALS
def test_convert_interrupted_just_after_its_link_is_done(
        small_disk, tmp_path, sig):
    disk = small_disk
    image = tmp_path / "cap.rdi"
    capture_disk(disk, image)
    out = tmp_path / "out.raw"
    result = at_commit(sig, "step", 1, "imgx", "convert", image, out,
                       "--to=raw")
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert f"not undone: {out} is whole" in result.stderr, result.stderr
    assert sha256(out) == sha256(disk)


def test_main_called_in_a_process_that_goes_on_puts_the_handlers_back():
    """main(argv) in-process (a test, a caller): the runner's handlers are
    put back when it returns; only a process's last run() keeps them."""
    from imgx.cli import main
    before = {s: signal.getsignal(s) for s in
              (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    assert main(["info", "/nonexistent/x.rdi"]) == 3
    assert {s: signal.getsignal(s) for s in before} == before


@SIGNALS
def test_sfx_interrupted_just_after_its_publish(small_disk, tmp_path, sig):
    """diskimage.host.partial.publish, the commit step of imgx sfx and of every
    bootdisk output: a signal just after the rename is not a failure."""
    disk = small_disk
    image = tmp_path / "cap.rdi"
    capture_disk(disk, image)
    binary = tmp_path / "bin"
    binary.write_bytes(open("/bin/true", "rb").read())
    out = tmp_path / "self.run"
    result = at_commit(sig, "step", 1, "imgx", "sfx", image, "-o", out,
                       f"--binary={binary}")
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert f"not undone: {out} is whole" in result.stderr, result.stderr
    assert out.stat().st_size > image.stat().st_size
    assert not [n for n in os.listdir(tmp_path) if ".partial" in n]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGTERM", "SIGHUP"])
def test_recompress_in_place_interrupted_just_after_its_rename(
        small_disk, tmp_path, sig):
    """A rewrite (imgx recompress over the image itself) is committed by
    the same rename: a signal then leaves the new image, exit 0."""
    disk = small_disk
    image = tmp_path / "cap.rdi"
    capture_disk(disk, image)
    result = at_commit(sig, "step", 1, "imgx", "recompress", image,
                       "--compress=zstd")
    whole_after_signal(result, os.fspath(image))
    assert b"zstd" in ok("info", image)
