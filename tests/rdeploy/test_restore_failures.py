"""Layout restores that fail or are stopped: a resizing tool that fails
after the first write, no table slot for a protected partition, a signal
while a loop device is attached or during --verify, a --tmpdir that fills
up: the exit code, one line, and a disk that does not pass for a good copy,
with no loop device left."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.signals import (INTERRUPTIBLE, in_progress, interrupted_event,
                           progress_until, wait_for)
from tests.layout_helpers import (MiB, ROOT, TOOLS, blank, gpt_valid, rdeploy,
                                  run, sha256)

pytestmark = pytest.mark.needs(*TOOLS)


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


@pytest.mark.needs(root=True)
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
