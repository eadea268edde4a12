"""What the fleet rows restore, built from the benchmark's disk (a)
(bench/disks.py: GPT, FAT32 + ext4 + NTFS holding real files):

- the image: `rdeploy capture` of disk (a) (format 1.1, lz4), once;
- the changed disk: disk (a) restored from that image, then a few files
  of its ext4 partition changed through a mount of a loop device
  (`losetup -o --sizelimit`): CHANGED files overwritten with new random
  bytes of the same size, one file grown, NEW files added, one deleted;
  as a lab machine looks after a term of use.  Delta restore and full
  restore both lay the image back onto a copy of it.

`content_digest(path)` names a disk file's content whatever its holes:
SHA-256 over (offset, bytes) of every 1 MiB block that is not all zero,
and the size; two files with equal digests hold the same bytes.
"""

import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile

from diskimage.host.device import data_extents
from diskimage.host.tools import tool_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = 1 << 20
CHANGED, NEW = 6, 2
ZERO = bytes(BLOCK)


def sh(*argv, **kw):
    kw.setdefault("check", True)
    kw.setdefault("capture_output", True)
    return subprocess.run([str(a) for a in argv], env=tool_env(), **kw)


def rdeploy(*args):
    return subprocess.run([sys.executable, "-m", "rdeploy", *map(str, args)],
                          check=True, capture_output=True, text=True,
                          cwd=ROOT, env=tool_env())


def content_digest(path):
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        blocks = set()
        for start, stop in data_extents(fd, size):
            blocks.update(range(start // BLOCK, (stop + BLOCK - 1) // BLOCK))
        for number in sorted(blocks):
            data = os.pread(fd, BLOCK, number * BLOCK)
            if data != ZERO[:len(data)]:
                h.update(number.to_bytes(8, "little"))
                h.update(data)
    finally:
        os.close(fd)
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def copy_disk(src, dst):
    """A sparse copy of disk file `src` (not timed by the rows)."""
    if os.path.exists(dst):
        os.unlink(dst)
    sh("cp", "--sparse=always", src, dst)


def capture(disk, image):
    if not os.path.exists(image):
        rdeploy("capture", disk["path"], image + ".partial", "-q")
        os.replace(image + ".partial", image)
    return image


def _ext4(disk):
    return next(p for p in disk["partitions"] if p["fs"] == "ext4")


def change_files(path, disk, seed):
    """Change a few files of the ext4 partition of disk file `path` (a
    restore of disk (a)); returns what was changed: {"files": n, "bytes":
    bytes of file data written}."""
    part = _ext4(disk)
    rnd = random.Random(seed)
    dev = sh("losetup", "--find", "--show", "-o", part["start"],
             "--sizelimit", part["size"], path, text=True).stdout.strip()
    mnt = tempfile.mkdtemp(prefix="rdb-fleet-mnt-")
    written = 0
    try:
        sh("mount", "-t", "ext4", dev, mnt)    # a failure: nothing to umount
        try:
            files = sorted(
                os.path.join(d, n) for d, _, names in os.walk(mnt)
                for n in names if os.path.isfile(os.path.join(d, n)) and
                not os.path.islink(os.path.join(d, n)) and
                os.path.getsize(os.path.join(d, n)) >= 4096)
            picked = rnd.sample(files, CHANGED + 2)
            for name in picked[:CHANGED]:
                size = os.path.getsize(name)
                with open(name, "r+b") as f:
                    f.write(rnd.randbytes(size))
                written += size
            with open(picked[CHANGED], "ab") as f:
                f.write(rnd.randbytes(256 << 10))
            written += 256 << 10
            os.unlink(picked[CHANGED + 1])
            for i in range(NEW):
                with open(os.path.join(mnt, f"new-{i}.bin"), "wb") as f:
                    f.write(rnd.randbytes(1 << 20))
                written += 1 << 20
        finally:
            sh("umount", mnt)
    finally:
        os.rmdir(mnt)
        sh("losetup", "-d", dev, check=False)
    fsck(path, part)
    return {"files": CHANGED + 2 + NEW, "bytes": written}


def fsck(path, part):
    """e2fsck -fn of the ext4 partition of disk file `path` (a read-only
    loop device over it): the changed disk is a clean filesystem."""
    dev = sh("losetup", "--find", "--show", "--read-only", "-o",
             part["start"], "--sizelimit", part["size"], path,
             text=True).stdout.strip()
    try:
        sh("e2fsck", "-fn", dev)
    finally:
        sh("losetup", "-d", dev, check=False)


def prepare(disk, work, seed):
    """(image, changed disk, what changed); cached in `work`, remade when
    disk (a) or the seed changes."""
    image = os.path.join(work, "fleet.rdi")
    stamp = os.path.join(work, "fleet.stamp")
    recipe = f"{disk['path']} {os.path.getmtime(disk['path'])} {seed}\n"
    changed = os.path.join(work, "fleet-changed.img")
    if not (os.path.exists(stamp) and open(stamp).read() == recipe and
            os.path.exists(image) and os.path.exists(changed)):
        for old in (image, changed, stamp):
            if os.path.exists(old):
                os.unlink(old)
        capture(disk, image)
        rdeploy("restore", image, changed + ".partial", "--yes", "-q")
        what = change_files(changed + ".partial", disk, seed)
        os.replace(changed + ".partial", changed)
        with open(stamp + ".what", "w") as f:
            f.write(f"{what['files']} {what['bytes']}\n")
        with open(stamp, "w") as f:
            f.write(recipe)
    files, nbytes = map(int, open(stamp + ".what").read().split())
    return image, changed, {"files": files, "bytes": nbytes}


def clean(work):
    for name in ("fleet.rdi", "fleet-changed.img", "fleet.stamp",
                 "fleet.stamp.what"):
        path = os.path.join(work, name)
        if os.path.exists(path):
            os.unlink(path)
    shutil.rmtree(os.path.join(work, "fleet-root"), ignore_errors=True)
