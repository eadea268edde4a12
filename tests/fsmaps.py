"""What the filesystem-map tests share: random-filled targets, map-only
restores, disks built around a filesystem image, rdeploy round trips, and
files laid out so that one large file is fragmented.

The map tests (test_ext, test_fat, test_exfat, test_ntfs) copy only a map's
runs into random bytes; the round-trip tests (test_fsroundtrip) run the real
`rdeploy capture` / `rdeploy restore` commands.  Either way the result is
checked by the filesystem's own fsck and every file's sha256
(diskimage.demodisk.fsck / read_files).
"""

import errno
import hashlib
import os
import random
import subprocess
import struct
import sys
from pathlib import Path

from diskimage import demodisk

KiB, MiB = 1 << 10, 1 << 20
ROOT = Path(__file__).resolve().parent.parent
MTOOLS_ENV = {"LC_ALL": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1",
              "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
# Partition type of each family in a GPT and an MBR (content decides what
# capture does; the types are what an installer would write).
GPT_TYPES = {"ext": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
             "other": "EBD0A0A2-B9E5-4433-87C0-68B99B26B9C7"}
COMPRESSED = 0x800                       # FILE_ATTRIBUTE_COMPRESSED
MBR_TYPES = {"ext": "83", "fat12": "1", "fat16": "e", "fat32": "c",
             "exfat": "7", "ntfs": "7"}


def run(*args, check=True, env=None, input=None):
    """A tool's CompletedProcess (text), its stdin closed or `input`."""
    return subprocess.run([str(a) for a in args], check=check, text=True,
                          capture_output=True, env=env, input=input,
                          stdin=None if input is not None
                          else subprocess.DEVNULL)


def blkid(path):
    """blkid -p's tags of a device or file."""
    out = run("blkid", "-p", "-o", "export", path, check=False).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def range_digest(path, start, size):
    """sha256 of bytes [start, start+size) of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        while size > 0:
            block = f.read(min(size, 4 * MiB))
            if not block:
                break
            digest.update(block)
            size -= len(block)
    return digest.hexdigest()


def random_fill(path, size, seed):
    """A file of `size` bytes of garbage: one random MiB, rotated by a
    different amount for each MiB, so no two MiB are the same."""
    chunk = random.Random(seed).randbytes(MiB)
    with open(path, "wb") as f:
        for i in range(size // MiB):
            shift = i * 4099 % MiB
            f.write(chunk[shift:] + chunk[:shift])
        f.write(chunk[:size % MiB])
    return path


def copy_runs(source, target, runs):
    """A map-only restore: `target` gets only the (offset, length) runs of
    `source`, nothing else is written."""
    with open(source, "rb") as src, open(target, "r+b") as dst:
        for offset, length in runs:
            os.pwrite(dst.fileno(), os.pread(src.fileno(), length, offset),
                      offset)


def map_only_restore(source, target, runs, seed=0):
    """`target`, the size of `source` and full of garbage, with only the
    runs of `source` copied in."""
    random_fill(target, os.path.getsize(source), seed)
    copy_runs(source, target, runs)
    return target


def check_fs(path, start, size, fs, digests):
    """The filesystem at [start, start+size) of `path` passes its own fsck
    and holds exactly the files of `digests`."""
    clean, output = demodisk.fsck(path, start, size, fs)
    assert clean, output
    assert demodisk.read_files(path, start, size, fs) == digests


# --- disks -------------------------------------------------------------------
def family(fs):
    return "ext" if fs.startswith("ext") else fs


def partitioned_disk(path, filesystems, table="gpt", start=MiB):
    """A disk file with a `table` ("gpt" or "dos") holding one partition
    for each (image file, fs) of `filesystems`, the first at `start`, 1 MiB
    apart, each with the bytes of its image (copied sparse by dd).  Returns
    [(start, size)] of the partitions."""
    places, rows, offset = [], [], start
    for fs_image, fs in filesystems:
        size = os.path.getsize(fs_image)
        if table == "gpt":
            kind = GPT_TYPES.get(family(fs), GPT_TYPES["other"])
        else:
            kind = MBR_TYPES.get(family(fs), MBR_TYPES.get(fs))
        rows.append(f"start={offset // 512}, size={size // 512}, type={kind}")
        places.append((offset, size))
        offset += size + MiB
    with open(path, "wb") as f:
        f.truncate(offset)
    run("sfdisk", "-q", path, input="\n".join(
        [f"label: {table}", "unit: sectors", *rows, ""]))
    for (fs_image, _), (offset, _) in zip(filesystems, places):
        run("dd", f"if={fs_image}", f"of={path}", "bs=1M", f"seek={offset}",
            "oflag=seek_bytes", "conv=sparse,notrunc", "status=none")
    return places


def rdeploy(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "rdeploy",
                             *map(str, args)], cwd=ROOT, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def round_trip(disk, tmp_path, *capture_args, seed=5):
    """`rdeploy capture` of `disk`, then `rdeploy restore` onto a disk file
    of its size full of garbage.  Returns (image, target, capture's
    stderr)."""
    image, target = tmp_path / "disk.rdi", tmp_path / "target.img"
    captured = rdeploy("capture", disk, image, "--progress=none",
                       *capture_args)
    random_fill(target, os.path.getsize(disk), seed)
    rdeploy("restore", image, target, "--yes", "--progress=none")
    return image, target, captured.stderr


# --- contents ----------------------------------------------------------------
def write_file(root, rel, data, digests):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    digests[rel] = hashlib.sha256(data).hexdigest()


def sparse_file(root, rel, size, rng, digests, pieces=4):
    """A file of apparent `size` holding only `pieces` small runs of data:
    written by seeking, so the filesystem keeps holes between them."""
    content = bytearray(size)
    with open(os.path.join(root, rel), "wb") as f:
        f.truncate(size)
        for k in range(pieces):
            offset = (size // pieces) * k + rng.randrange(4096) * 7
            data = rng.randbytes(9000)
            os.pwrite(f.fileno(), data, offset)
            content[offset:offset + len(data)] = data
    digests[rel] = hashlib.sha256(content).hexdigest()


def fragmented_file(root, rng, digests, piece=64 * KiB, share=0.6):
    """Fill the mounted filesystem at `root` with files of `piece` bytes
    until it is full, delete every other one, then write one large file of
    `share` of the freed space: it can only go into the holes.  Keeps the
    remaining fillers in `digests`; returns the large file's path."""
    os.makedirs(os.path.join(root, "fill"))
    names = []
    while True:
        rel = f"fill/f{len(names):05d}.bin"
        data = rng.randbytes(piece)
        try:
            with open(os.path.join(root, rel), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EFBIG):
                raise
            os.unlink(os.path.join(root, rel))
            break
        names.append(rel)
        digests[rel] = hashlib.sha256(data).hexdigest()
    for rel in names[::2]:
        os.unlink(os.path.join(root, rel))
        del digests[rel]
    os.sync()
    size = int(len(names[::2]) * piece * share) // 4096 * 4096
    write_file(root, "fragmented.bin", rng.randbytes(size), digests)
    os.sync()
    return os.path.join(root, "fragmented.bin")


def compressed_files(mnt, rng, digests):
    """A directory whose new files ntfs-3g compresses (the compressed
    attribute set on it through ntfs-3g's system.ntfs_attrib_be), with a
    compressible log, random bytes and a tiny file.  Returns the log."""
    folder = os.path.join(mnt, "packed")
    os.mkdir(folder)
    os.setxattr(folder, "system.ntfs_attrib_be",
                struct.pack(">I", COMPRESSED))
    text = b"".join(b"line %d of a compressible log\n" % i
                    for i in range(20000))
    write_file(mnt, "packed/log.txt", text, digests)
    write_file(mnt, "packed/random.bin", rng.randbytes(200 * KiB), digests)
    write_file(mnt, "packed/small.txt", b"tiny\n", digests)
    return os.path.join(folder, "log.txt")
