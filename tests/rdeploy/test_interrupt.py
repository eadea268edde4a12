"""rdeploy stopped by Ctrl-C (or TERM, HUP) and by a closed pipe: exit 128
+ the signal and one line (none for a broken pipe), and nothing left that
looks like a finished image or disk."""

import json
import random
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from tests.rdeploy_helpers import ROOT, check, command, env, leftovers
from tests.signals import (INTERRUPTIBLE, in_progress, interrupted_event,
                           progress_until, wait_for)
from tests.smalldisk import (DISK_SIZE, GPT_BACKUP, MiB, has_partitions,
                             marked, read_at)

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4")


# --- Ctrl-C ------------------------------------------------------------------
# The signal is sent when the work is known to be under way (a progress
# event, a target that exists, a wiped table) and the command cannot finish
# before it lands (the source is fed by the test and stops short); the
# child gets the signals back whatever the suite inherited (tests.signals).

#: Ctrl-C, and the signals a service manager or a closed terminal sends,
#: clean up alike (issue 11 item 13); the exit code is 128 + the signal.
SIGNALS = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM,
                                          signal.SIGHUP],
                                  ids=["INT", "TERM", "HUP"])


def interrupted(result_code, stderr, sig=signal.SIGINT):
    assert result_code == 128 + sig, stderr
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0], stderr


@SIGNALS
def test_ctrl_c_during_capture(tmp_path, sig):
    """lz4 level 12 on one thread over 48 MiB of text-like bytes takes
    seconds; the signal lands after the first progress event past 0 and
    before half the disk, so the capture is in the middle."""
    source = tmp_path / "big.img"
    letters = bytes(b"abcdefghijklmnop"[i % 16] for i in range(256))
    with open(source, "wb") as f:
        f.truncate(DISK_SIZE)
        f.seek(MiB)
        f.write(random.Random(3).randbytes(48 * MiB).translate(letters))
    image = tmp_path / "big.rdi"
    proc = subprocess.Popen(command("capture", source, image, "--level=12",
                                    "--threads=1", "--progress=json"),
                            env=env(), cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **INTERRUPTIBLE)
    seen = []
    try:
        progress_until(proc.stderr, in_progress("capture"), seen)
        assert Path(f"{image}.partial").exists()
        proc.send_signal(sig)
        rest = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    seen += [json.loads(line) for line in rest.splitlines()]
    interrupted_event(seen, proc.returncode, sig)
    assert leftovers(image) == []


def slow_restore(image, target, ready, sig=signal.SIGINT):
    """Feed the first half of `image` to `rdeploy restore - TARGET --yes`
    and keep the pipe open, so the restore can neither finish nor see the
    stream end; send `sig` once ready(); return (exit code, stderr).  A
    signal that is lost leaves the restore waiting on its stdin: the wait
    times out and the test fails."""
    proc = subprocess.Popen(command("restore", "-", target, "--yes"),
                            env=env(), cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **INTERRUPTIBLE)
    data = Path(image).read_bytes()

    def feed():
        try:
            proc.stdin.write(data[:len(data) // 2])
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        wait_for(lambda: ready() or proc.poll() is not None)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"restore still running 60 s after {sig.name}")
    finally:
        proc.kill()
        feeder.join()
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        stderr = proc.stderr.read()
        proc.wait()
    return proc.returncode, stderr


@SIGNALS
def test_ctrl_c_during_restore_into_new_file(disk, tmp_path, sig):
    target = tmp_path / "new.img"
    code, stderr = slow_restore(disk["image"], target, target.exists, sig)
    interrupted(code, stderr, sig)
    assert not target.exists()


@SIGNALS
def test_ctrl_c_during_restore_over_a_disk(disk, tmp_path, sig):
    target = tmp_path / "other.img"
    subprocess.run(["cp", "--sparse=always", disk["other"], target],
                   check=True)
    assert has_partitions(target)
    code, stderr = slow_restore(
        disk["image"], target, lambda: marked(target),
        sig)
    interrupted(code, stderr, sig)
    assert marked(target)
    assert read_at(target, DISK_SIZE - GPT_BACKUP, GPT_BACKUP) == \
        bytes(GPT_BACKUP)
    assert not has_partitions(target)


def test_failed_restore_into_a_new_file_someone_removed(disk, tmp_path):
    """A restore into a file it created, which another process removed,
    then fails (the stream ends early): the error is the cause (exit 4,
    truncated), not the clean-up's own "no such file"."""
    target = tmp_path / "new.img"
    proc = subprocess.Popen(command("restore", "-", target, "--yes"),
                            env=env(), cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        data = Path(disk["image"]).read_bytes()
        proc.stdin.write(data[:len(data) // 2])
        proc.stdin.flush()
        wait_for(lambda: target.exists() or proc.poll() is not None)
        target.unlink()
        proc.stdin.close()
        stderr = proc.stderr.read()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, b"",
                                         stderr)
    line = check(result, 4)
    assert re.search(r"truncated|ends early|incomplete", line, re.I), line


# --- broken pipe -------------------------------------------------------------
def test_broken_pipe_is_quiet(disk):
    capture = subprocess.Popen(command("capture", disk["source"], "-"),
                               env=env(), cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-c", "100"], stdin=capture.stdout,
                            stdout=subprocess.DEVNULL)
    capture.stdout.close()
    try:
        stderr = capture.stderr.read()
        capture.wait(timeout=30)
        head.wait(timeout=30)
    finally:
        capture.kill()
        head.kill()
    assert capture.returncode == 141
    assert stderr == b""
