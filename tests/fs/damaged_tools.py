"""What the damaged-filesystem tests share: a damaged filesystem image put
on an MBR disk, the filesystem's own checker's verdict on a partition
(exit code class and the problems it lists, normalised), and a round trip
through `rdeploy capture` / `rdeploy restore` onto garbage."""

import hashlib
import os
import re
import subprocess

from tests.fsmaps import partitioned_disk, round_trip

KiB, MiB = 1 << 10, 1 << 20


def run(*args, input=None, check=True, env=None):
    return subprocess.run([str(a) for a in args], text=True, check=check,
                          capture_output=True, input=input, env=env,
                          stdin=None if input is not None
                          else subprocess.DEVNULL)


def extract(disk, start, size, path):
    """Bytes [start, start+size) of `disk` as the file `path`."""
    with open(disk, "rb") as src, open(path, "wb") as dst:
        src.seek(start)
        while size:
            block = src.read(min(size, 4 * MiB))
            assert block, "short disk"
            dst.write(block)
            size -= len(block)
    return path


# Exit code classes: fsck's own (e2fsck: 0 clean, 1-3 fixed, 4 left, 8 up).
CHECKERS = {
    "ext": (["e2fsck", "-fn"], lambda rc: 0 if rc == 0 else
            1 if rc < 4 else 4 if rc < 8 else 8),
    "fat": (["fsck.fat", "-n"], lambda rc: rc),
    "ntfs": (["ntfsfix", "-n"], lambda rc: rc),
}


def verdict(disk, start, size, family, scratch):
    """(exit code class, the checker's output lines with the file's name
    and the version banner taken out) of the partition [start, start+size)
    of `disk`, checked read-only."""
    command, klass = CHECKERS[family]
    path = extract(disk, start, size, scratch)
    done = run(*command, path, check=False)
    lines = [line.replace(str(path), "FS").rstrip()
             for line in (done.stdout + done.stderr).splitlines()
             if line.strip() and not re.match(
                 r"^(e2fsck|fsck\.fat|ntfsfix) v?\d", line)]
    os.unlink(path)
    return klass(done.returncode), lines


def damaged_round_trip(image, fs, family, tmp_path):
    """Put the filesystem `image` on an MBR disk, take the checker's verdict
    on it, capture and restore it onto garbage, take the verdict on the
    copy.  Returns (verdict before, verdict after, capture's stderr, the
    .rdi image, (target, start, size))."""
    disk = tmp_path / "disk.img"
    (start, size), = partitioned_disk(disk, [(image, fs)], "dos")
    os.unlink(image)
    before = verdict(disk, start, size, family, tmp_path / "check.img")
    rdi, target, stderr = round_trip(disk, tmp_path)
    after = verdict(target, start, size, family, tmp_path / "check.img")
    os.unlink(disk)
    return before, after, stderr, rdi, (target, start, size)


def sha256(data):
    return hashlib.sha256(data).hexdigest()
