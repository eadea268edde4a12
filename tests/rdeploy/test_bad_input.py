"""What rdeploy does with bad input, refused targets, a full disk, Ctrl-C and
a closed pipe: the exit code and the one line on stderr a user sees, and
that nothing is left behind that looks like a finished image or disk.

rdeploy runs as a subprocess.  Loop devices, mounts and tmpfs need root;
those tests are skipped otherwise and always undo what they set up.
"""

import json
import os
import re
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.signals import (INTERRUPTIBLE, in_progress, interrupted_event,
                           progress_until, wait_for)
from tests.smalldisk import (DISK_SIZE, GPT_BACKUP, KiB, MiB, build_disk,
                             has_partitions, read_at, sfdisk, sha256)

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (shutil.which("sfdisk") and shutil.which("mkfs.ext4")),
    reason="needs sfdisk and mkfs.ext4")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("losetup"),
    reason="needs root and losetup")


# --- helpers -----------------------------------------------------------------
def env():
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.pop("RDEPLOY_DEBUG", None)
    return e


def command(*args):
    return [sys.executable, "-m", "rdeploy", *map(str, args)]


def rdeploy(*args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE):
    return subprocess.run(command(*args), env=env(), cwd=ROOT, stdin=stdin,
                          stdout=stdout, stderr=subprocess.PIPE, timeout=60)


def error_line(result):
    """The single line rdeploy printed on stderr."""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, result.stderr.decode()
    return lines[0]


def check(result, code, *words):
    """Exit `code` and one error line holding every word (any case)."""
    assert result.returncode == code, result.stderr.decode()
    line = error_line(result)
    assert line.startswith("rdeploy: error: "), line
    for word in words:
        assert word.lower() in line.lower(), line
    return line


def run(*cmd):
    return subprocess.run(list(map(str, cmd)), check=True, capture_output=True,
                          text=True).stdout.strip()


def leftovers(image):
    """Files next to `image` that could pass for it or its partial."""
    image = Path(image)
    return sorted(p.name for p in image.parent.iterdir()
                  if p.name.startswith(image.name))


def build_other_disk(path):
    """Another 64 MiB disk with another table and bytes in its first MiB."""
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)
    sfdisk(path, "label: gpt\nstart=4096, size=20000, name=one\n"
                 "start=30000, size=40000, name=two\n")
    with open(path, "r+b") as f:
        f.seek(600 * KiB)
        f.write(b"OTHER DISK " * 4000)
    return path


# --- fixtures ----------------------------------------------------------------
@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    """The source disk, its image, and the same image split in volumes."""
    d = tmp_path_factory.mktemp("disk")
    source = build_disk(d / "disk.img")
    image = d / "disk.rdi"
    assert rdeploy("capture", source, image, "-q").returncode == 0
    split = d / "split.rdi"
    assert rdeploy("capture", source, split, "--split=1M", "-q"
                   ).returncode == 0
    assert (d / "split.r01").exists()
    return {"dir": d, "source": source, "image": image, "split": split,
            "other": build_other_disk(d / "other.img")}


@pytest.fixture
def kernel():
    """Make loop devices and mounts; every one is undone afterwards."""
    made = []

    class Kernel:
        def loop(self, backing, *options):
            dev = run("losetup", "--find", "--show", *options, backing)
            made.append(("losetup", "-d", dev))
            return dev

        def mount(self, source, where, *options):
            os.makedirs(where, exist_ok=True)
            run("mount", *options, source, where)
            made.append(("umount", str(where)))
            return Path(where)

        def freeze(self, where):
            """No more writes of the kernel's own (journal commits, the
            superblock after mount): the device's bytes change only if
            something else writes them."""
            run("fsfreeze", "-f", where)
            made.append(("fsfreeze", "-u", str(where)))

    try:
        yield Kernel()
    finally:
        for undo in reversed(made):
            subprocess.run(undo, capture_output=True)


@pytest.fixture
def tmpfs(tmp_path, kernel):
    """A 2 MiB tmpfs, unmounted afterwards."""
    return kernel.mount("tmpfs", tmp_path / "small-fs", "-t", "tmpfs",
                        "-o", "size=2M")


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
def test_capture_onto_its_own_source(tmp_path, how):
    source = build_disk(tmp_path / "disk.img")
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


# --- no space ----------------------------------------------------------------
@needs_root
def test_capture_onto_a_full_filesystem(disk, tmpfs):
    image = tmpfs / "disk.rdi"
    check(rdeploy("capture", disk["source"], image), 6, "no space")
    assert os.listdir(tmpfs) == []


@needs_root
def test_restore_onto_a_full_filesystem(disk, tmpfs):
    target = tmpfs / "disk.img"
    check(rdeploy("restore", disk["image"], target, "--yes"), 6, "no space")
    assert os.listdir(tmpfs) == []


@needs_root
def test_restore_over_an_existing_file_on_a_full_filesystem(disk, tmpfs):
    """No space after the first write to a target that existed: exit 8,
    the cause and that the target was changed in the one line, and the
    target left with no table (issue 11 item 9)."""
    target = tmpfs / "other.img"
    subprocess.run(["cp", "--sparse=always", disk["other"], target],
                   check=True)
    assert has_partitions(target)
    check(rdeploy("restore", disk["image"], target, "--yes"), 8,
          "no space", "target was changed", "no valid partition table")
    assert target.stat().st_size == DISK_SIZE
    assert read_at(target, 0, MiB) == bytes(MiB)
    assert not has_partitions(target)


def test_damaged_stream_into_one_partition_of_a_disk(disk, tmp_path):
    """--partitions=2 over a disk with the same table, from a stream that
    ends early: exit 8, and the line says the table is kept and which
    bytes lost their filesystem start; the table and partition 1 are as
    they were."""
    target = tmp_path / "disk.img"
    subprocess.run(["cp", "--sparse=always", disk["source"], target],
                   check=True)
    table, part1 = read_at(target, 0, MiB), read_at(target, MiB, 32 * MiB)
    data = Path(disk["image"]).read_bytes()
    result = subprocess.run(command("restore", "-", target, "--yes",
                                    "--partitions=2"), env=env(), cwd=ROOT,
                            input=data[:len(data) * 3 // 4],
                            capture_output=True, timeout=60)
    line = check(result, 8, "the target was changed", "table is kept",
                 "no valid filesystem start")
    start = int(re.search(r"at bytes (\d+)-", line).group(1))
    assert read_at(target, start, MiB) == bytes(MiB)
    assert read_at(target, 0, MiB) == table
    assert read_at(target, MiB, 32 * MiB) == part1


def test_verify_difference_over_an_existing_disk(disk, tmp_path):
    """Another writer changes the target behind the restore's back (bytes
    of partition 2, again and again): --verify's read-back finds the
    difference after the table was written.  Exit 8, not 5 ("refused,
    nothing written"), and the table is wiped again, so the disk does not
    look like a good copy."""
    target = tmp_path / "other.img"
    subprocess.run(["cp", "--sparse=always", disk["other"], target],
                   check=True)
    stop = threading.Event()

    def meddle():
        with open(target, "r+b", buffering=0) as f:
            while not stop.is_set():
                os.pwrite(f.fileno(), b"\xff" * 4096, 34 * MiB)
                time.sleep(0.001)

    meddler = threading.Thread(target=meddle)
    meddler.start()
    try:
        result = rdeploy("restore", disk["image"], target, "--yes",
                         "--verify")
    finally:
        stop.set()
        meddler.join()
    check(result, 8, "read-back differs", "the target was changed",
          "no valid partition table")
    assert read_at(target, 0, MiB) == bytes(MiB)
    assert not has_partitions(target)


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
        disk["image"], target, lambda: read_at(target, 0, MiB) == bytes(MiB),
        sig)
    interrupted(code, stderr, sig)
    assert read_at(target, 0, MiB) == bytes(MiB)
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


@needs_root
def test_split_capture_onto_a_full_filesystem_counts_the_volume(disk,
                                                                 tmpfs):
    """The no-space line of a split capture gives the bytes written to that
    volume, and the image's total beside them, not the total as the
    volume's (issue 11 round 3, volmsg item 2)."""
    split = 512 * 1024
    line = check(rdeploy("capture", disk["source"], tmpfs / "x.rdi",
                         f"--split={split}"), 6, "no space")
    match = re.search(r": (\S+)\.partial: no space left after (\d+) bytes "
                      r"written to it \((\d+) bytes of the image in all\)$",
                      line)
    assert match, line
    name, in_volume, total = match[1], int(match[2]), int(match[3])
    number = int(name.rsplit(".r", 1)[1])
    assert name == f"{tmpfs}/x.r{number:02d}"
    assert 0 <= in_volume < split
    assert total == number * split + in_volume
    assert os.listdir(tmpfs) == []


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
