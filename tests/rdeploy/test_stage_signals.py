"""Signals after a commit, when more work follows, and at the creation of
a partial file (issue 11 review round 5, items 1 and 3); a restore whose
target appears between its plan and its start (item 2).

Each signalled run is a real process of the real command, given its
signals back (tests/signals.py), signalled at a moment it has reached
(an output line, a file that appeared, a link done), so the moment holds
on a loaded machine."""

import os
import signal
import subprocess
import sys

import pytest

from diskimage.errors import TargetError
from diskimage.image.reader import RecordStream
from diskimage.restore import plan_restore, run_restore
from diskimage.host.tools import tool_env
from diskimage.image.volumes import VolumeInput

from tests.imgx_helpers import ROOT, capture_disk
from tests.signals import AT_COMMIT, INTERRUPTIBLE, wait_for

SIGNALS = pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
    ids=["SIGINT", "SIGTERM", "SIGHUP"])


def interrupted(result_code, stderr, sig):
    assert result_code == 128 + sig, (result_code, stderr)
    assert "interrupted" in stderr, stderr
    assert "is whole" not in stderr and "already whole" not in stderr, \
        stderr
    assert "Traceback" not in stderr, stderr


def demo_signalled(tmp_path, sig, moment):
    """`rdeploy demo` in a new directory, signalled once moment(proc, run)
    is true (the capture has committed by then)."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdeploy", "demo", f"--dir={run_dir}"],
        cwd=ROOT, env=tool_env(None), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, **INTERRUPTIBLE)
    try:
        moment(proc, run_dir)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err, run_dir


def after_capture_line(proc, run_dir):
    """The demo printed its capture step: the image is whole (committed)
    and the verify has begun."""
    for line in proc.stdout:
        if line.strip().startswith("capture"):
            return
    raise AssertionError("the demo ended before its capture step")


def restore_target_made(proc, run_dir):
    """The restore stage has created its target: the capture committed
    long before."""
    wait_for(lambda: (run_dir / "restored-disk.img").exists() or
             proc.poll() is not None, what="the restore's target")
    assert proc.poll() is None, "the demo ended before its restore"


@SIGNALS
def test_demo_signalled_in_its_verify_after_the_capture_stops(tmp_path,
                                                             sig):
    """Item 1: once the capture committed, Ctrl-C, SIGTERM and SIGHUP were
    only noted for the rest of the process: the demo ran on to exit 0 and
    said "demo.rdi is whole".  Now the verify is new work: interrupted,
    128+N, and the demo removes what it made."""
    code, out, err, run_dir = demo_signalled(tmp_path, sig,
                                             after_capture_line)
    interrupted(code, err, sig)
    assert "OK:" not in out
    assert not run_dir.exists(), os.listdir(run_dir)


def test_demo_signalled_in_its_restore_stops(tmp_path):
    code, out, err, run_dir = demo_signalled(tmp_path, signal.SIGTERM,
                                             restore_target_made)
    interrupted(code, err, signal.SIGTERM)
    assert not run_dir.exists(), os.listdir(run_dir)


def test_a_commit_in_one_main_call_does_not_carry_into_the_next(
        small_disk, tmp_path, capsys):
    """Item 1: main(argv) called twice in one process: the first run's
    commit (a real capture) made the second (a restore, which makes no
    partial file) ignore its Ctrl-C and finish, and its message named the
    first run's image as whole."""
    from rdeploy.cli import main
    disk = small_disk
    image = tmp_path / "a.rdi"
    assert main(["capture", str(disk), str(image), "--quiet"]) == 0
    target = tmp_path / "target.img"
    real_pwrite = os.pwrite
    sent = []

    def pwrite(fd, data, offset):     # Ctrl-C once the restore writes
        done = real_pwrite(fd, data, offset)
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return done

    capsys.readouterr()
    # As a Ctrl-C finds an interactive process, however the suite runs.
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    os.pwrite = pwrite
    try:
        code = main(["restore", str(image), str(target), "--yes",
                     "--quiet"])
    finally:
        os.pwrite = real_pwrite
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, old)
    err = capsys.readouterr().err
    assert sent
    interrupted(code, err, signal.SIGINT)
    assert not target.exists()


def test_restore_refuses_a_target_that_appeared_after_its_plan(
        small_disk, tmp_path):
    """Item 2: the plan saw no target (so: create it); a file appears
    before the restore starts (the --yes prompt is a long window).  The
    restore must not write into it, skip its zeroing, or delete it."""
    disk = small_disk
    image = tmp_path / "cap.rdi"
    capture_disk(disk, image)
    target = tmp_path / "target.img"
    content = os.urandom(4096) * (os.path.getsize(disk) // 4096)
    with VolumeInput(str(image)) as source:
        plan = plan_restore(RecordStream(source), str(target))
        assert plan.create
        target.write_bytes(content)     # another process made it
        with pytest.raises(TargetError) as caught:
            run_restore(plan)
    assert caught.value.exit_code == 5
    assert str(target) in str(caught.value)
    assert target.read_bytes() == content


def at_partial(sig, nth, module, *args):
    return subprocess.run(
        [sys.executable, "-c", AT_COMMIT, str(int(sig)), "partial",
         str(nth), module, *map(os.fspath, args)],
        capture_output=True, text=True, cwd=ROOT, env=tool_env(None),
        timeout=300, **INTERRUPTIBLE)


def no_partials(directory):
    left = [n for n in os.listdir(directory) if ".partial" in n]
    assert not left, left


@SIGNALS
def test_capture_signalled_as_its_partial_is_linked(small_disk, tmp_path, sig):
    """Item 3: a signal just after os.link(private, NAME.partial), before
    create_partial returned its fd: the .partial stayed behind."""
    disk = small_disk
    result = at_partial(sig, 1, "rdeploy", "capture", disk,
                        tmp_path / "cap.rdi")
    interrupted(result.returncode, result.stderr, sig)
    no_partials(tmp_path)
    assert not (tmp_path / "cap.rdi").exists()


def test_split_capture_signalled_as_a_later_volume_is_linked(
        small_disk, tmp_path):
    """Item 3: the second volume's partial linked, then SIGTERM before
    _next_volume kept its fd: abort() never removed it."""
    disk = small_disk
    result = at_partial(signal.SIGTERM, 2, "rdeploy", "capture", disk,
                        tmp_path / "sp.rdi", "--split=1M",
                        "--compress=none")
    interrupted(result.returncode, result.stderr, signal.SIGTERM)
    no_partials(tmp_path)


def test_sfx_signalled_as_its_partial_is_linked(small_disk, tmp_path):
    """Item 3, partial.partial_file (imgx sfx, bootdisk's outputs)."""
    disk = small_disk
    image = tmp_path / "cap.rdi"
    capture_disk(disk, image)
    binary = tmp_path / "bin"
    binary.write_bytes(open("/bin/true", "rb").read())
    result = at_partial(signal.SIGINT, 1, "imgx", "sfx", image, "-o",
                        tmp_path / "self.run", f"--binary={binary}")
    interrupted(result.returncode, result.stderr, signal.SIGINT)
    no_partials(tmp_path)
    assert not (tmp_path / "self.run").exists()


def test_demo_interrupted_removes_only_the_files_it_made(tmp_path):
    """Sweep of items 2/3: the demo's clean-up removed its three names
    whoever had made them; a file another process put under one of them
    while the demo built its disk was deleted on the interrupt."""
    theirs = b"another process's file\n"

    def building(proc, run_dir):
        wait_for(lambda: (run_dir / "demo-disk.img").exists() or
                 proc.poll() is not None, what="the demo's disk")
        assert proc.poll() is None, "the demo ended before its build"
        (run_dir / "restored-disk.img").write_bytes(theirs)

    code, out, err, run_dir = demo_signalled(tmp_path, signal.SIGTERM,
                                             building)
    interrupted(code, err, signal.SIGTERM)
    assert os.listdir(run_dir) == ["restored-disk.img"]
    assert (run_dir / "restored-disk.img").read_bytes() == theirs
