"""What the filesystem-map tests share: random-filled targets, map-only
restores, disks built around a filesystem image, rdeploy round trips, and
the filesystems' own tools' numbers (used and total bytes, block size).
The filesystems themselves are made by tests/fsbuild.py.

The map tests (test_ext, test_fat, test_exfat, test_ntfs) copy only a map's
runs into random bytes; the round-trip tests (test_fsroundtrip) run the real
`rdeploy capture` / `rdeploy restore` commands.  Either way the result is
checked by the filesystem's own fsck and every file's sha256
(demodisk.fsck / read_files).
"""

import dataclasses
import hashlib
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

import demodisk
from diskimage.fs import registry
from diskimage.fs.fat.mtools import MTOOLS_ENV as FAT_MTOOLS_ENV

KiB, MiB = 1 << 10, 1 << 20
ROOT = Path(__file__).resolve().parent.parent
MTOOLS_ENV = dict(FAT_MTOOLS_ENV,
                  PATH=os.environ.get("PATH", "/usr/bin:/bin"))

BASIC_DATA = {"gpt": "EBD0A0A2-B9E5-4433-87C0-68B99B26B9C7", "dos": "7"}

needs_all_tools = pytest.mark.needs(
    "sfdisk", "sgdisk", "mkfs.ext4", "filefrag", "mkfs.fat", "mcopy",
    "mshowfat", "mkfs.exfat", "mount.exfat-fuse", "mkntfs", "ntfs-3g",
    "ntfsinfo", "losetup", root=True)


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
def partitioned_disk(path, filesystems, table="gpt", start=MiB):
    """A disk file with a `table` ("gpt" or "dos") holding one partition
    for each (image file, fs) of `filesystems`, the first at `start`, 1 MiB
    apart, each with the bytes of its image (copied sparse by dd).  Returns
    [(start, size)] of the partitions."""
    places, rows, offset = [], [], start
    for fs_image, fs in filesystems:
        size = os.path.getsize(fs_image)
        # the types an installer would write (content decides what capture
        # does), from the registry; basic data for what it does not know
        record = registry.lookup(fs)
        if record is None:
            kind = BASIC_DATA[table]
        else:
            kind = record.gpt_type if table == "gpt" else \
                record.mbr_type_of(fs)
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


def tool_used_bytes(image, fs):
    """Bytes in use by the filesystem's own tool: dumpe2fs (blocks not
    free), fsck.fat -v (the data area's start plus the used clusters),
    dump.exfat (the heap's start plus the used clusters), ntfsinfo
    (clusters not free)."""
    def number(pattern, text):
        return int(re.search(pattern, text, re.M).group(1), 0)
    if fs.startswith("ext"):
        out = run("dumpe2fs", "-h", image).stdout
        return (number(r"^Block count:\s+(\d+)", out) - number(
            r"^Free blocks:\s+(\d+)", out)) * number(r"^Block size:\s+(\d+)",
                                                     out)
    if fs.startswith("fat"):
        out = run("fsck.fat", "-n", "-v", image).stdout
        return number(r"Data area starts at byte (\d+)", out) + number(
            r"\d+ files?, (\d+)/\d+ clusters", out) * number(
            r"^\s*(\d+) bytes per cluster", out)
    if fs == "exfat":
        out = run("dump.exfat", image).stdout
        sector = 1 << number(r"Sector Size Bits:\s+(\w+)", out)
        return number(r"Cluster Heap Offset \(sector offset\):\s+(\w+)",
                      out) * sector + (number(r"Total Clusters:\s+(\w+)", out)
                                       - number(r"Free Clusters:\s+(\w+)",
                                                out)) * number(
            r"Cluster size:\s+(\w+)", out)
    # ntfsinfo's clusters not free, and the backup boot sector that mkntfs
    # writes in the partition's last sector, past the volume's clusters
    out = run("ntfsinfo", "-m", image).stdout
    return (number(r"Volume Size in Clusters:\s*(\d+)", out) - number(
        r"Free Clusters:\s*(\d+)", out)) * number(
        r"Cluster Size:\s*(\d+)", out) + number(r"Sector Size:\s*(\d+)",
                                                   out)


def tool_facts(image, fs):
    """The allocation unit, size and used bytes of a filesystem as its own
    tools report them (dumpe2fs, fsck.fat -v, dump.exfat, ntfsinfo and
    ntfscluster)."""
    def number(pattern, text):
        return int(re.search(pattern, text, re.M).group(1), 0)
    if fs.startswith("ext"):
        out = run("dumpe2fs", "-h", image).stdout
        bs = number(r"^Block size:\s+(\d+)", out)
        unit = int((re.search(r"^Cluster size:\s+(\d+)", out, re.M) or
                    re.search(r"^Block size:\s+(\d+)", out, re.M)).group(1))
        total = number(r"^Block count:\s+(\d+)", out) * bs
    elif fs.startswith("fat"):
        out = run("fsck.fat", "-n", "-v", image).stdout
        unit = number(r"^\s*(\d+) bytes per cluster", out)
        total = number(r"^\s*(\d+) bytes per logical sector", out) * \
            number(r"^\s*(\d+) sectors total", out)
    elif fs == "exfat":
        out = run("dump.exfat", image).stdout
        unit = number(r"Cluster size:\s+(\w+)", out)
        total = (1 << number(r"Sector Size Bits:\s+(\w+)", out)) * \
            number(r"Volume Length\(sectors\):\s+(\w+)", out)
    else:
        out = run("ntfsinfo", "-m", image).stdout + \
            run("ntfscluster", "--info", image).stdout
        unit = number(r"Cluster Size:\s*(\d+)", out)
        total = number(r"^\s*bytes per volume\s*:\s*(\d+)", out)
    return {"block_size": unit, "total_bytes": total,
            "used_bytes": tool_used_bytes(image, fs)}



def materialized(umap):
    """The UsedMap with its (lazy) runs read into a list, to compare."""
    return dataclasses.replace(umap, runs=list(umap.runs))


def python_lines(call):
    """(call()'s result, the number of Python lines it ran in this thread).
    "No Python loop per cluster" as a count, not a time: a time limit fails
    on a busy machine and passes a slow loop on a fast one (speed is the
    benchmark's job, docs/BENCHMARKS.md)."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        result = call()
    finally:
        sys.settrace(None)
    return result, count
