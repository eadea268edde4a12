"""What the restore-layout tests (tests/rdeploy/test_restore_*.py) share:
rdeploy with its exit code checked, and reading a restored disk with the
field's tools (sfdisk --json, sgdisk -v, dumpe2fs, fsck.fat, ntfsresize,
blkid)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import demodisk

from tests.fsbuild import fat_bytes
from tests.fsmaps import range_digest

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
#: What a restore that plans a layout runs, and the tests check with.
TOOLS = ("sfdisk", "sgdisk", "mkfs.ext4", "resize2fs", "mkfs.fat", "mcopy",
         "mkntfs", "ntfs-3g", "ntfsresize", "losetup", "blkid")
WINRE = "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC"


def rdeploy(*args, code=0):
    result = subprocess.run([sys.executable, "-m", "rdeploy", *map(str, args)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == code, result.stderr
    return result


def run(*args, **kw):
    return subprocess.run(list(map(str, args)), check=True,
                          capture_output=True, text=True, **kw).stdout


def sha256(path, start=0, size=None):
    if size is None:
        size = os.path.getsize(path) - start
    return range_digest(path, start, size)


def blank(path, size, fill=None):
    with open(path, "wb") as f:
        if fill is None:
            f.truncate(size)
        else:
            for _ in range(size // MiB):
                f.write(fill(MiB))
    return path


def layout(path):
    """{number: {start, size, type, uuid}} in bytes, as sfdisk reads it."""
    table = json.loads(run("sfdisk", "--json", path))["partitiontable"]
    ss = table.get("sectorsize", 512)
    out = {}
    for p in table["partitions"]:
        number = int(re.search(r"(\d+)$", p["node"]).group(1))
        out[number] = dict(start=p["start"] * ss, size=p["size"] * ss,
                           type=p["type"].lower(), uuid=p.get("uuid", ""))
    return out, table


def gpt_valid(path):
    out = run("sgdisk", "-v", path)
    return "No problems found" in out, out


def checked(path, manifest):
    """check_disk with the partitions where the restored table puts them."""
    where, _ = layout(path)
    moved = {"partitions": {
        n: dict(p, start=where[int(n)]["start"], size=where[int(n)]["size"])
        for n, p in manifest["partitions"].items()}}
    return demodisk.check_disk(path, moved)


def fs_bytes(path, part, fs):
    """The filesystem's own idea of its size, from its own tools."""
    with demodisk.loop_device(path, part["start"], part["size"]) as dev:
        if fs == "ext4":
            out = run("dumpe2fs", "-h", dev)
            blocks = int(re.search(r"Block count:\s+(\d+)", out).group(1))
            size = int(re.search(r"Block size:\s+(\d+)", out).group(1))
            return blocks * size
        if fs.startswith("fat"):
            return fat_bytes(dev)
        out = run("ntfsresize", "--info", "--force", "--no-action", dev)
        return int(re.search(r"Current volume size: (\d+)", out).group(1))


def blkid(path, part, tag):
    with demodisk.loop_device(path, part["start"], part["size"]) as dev:
        return run("blkid", "-p", "-o", "value", "-s", tag, dev).strip()
