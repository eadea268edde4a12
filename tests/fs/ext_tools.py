"""What the ext used-map tests share: making images with mke2fs, reading
them with dumpe2fs and debugfs, checking a map against them and by a
map-only restore."""

import hashlib
import os
import re
import subprocess

import demodisk
from diskimage.fs.ext import used as ext
from tests.fsmaps import blkid, map_only_restore

KiB, MiB = 1 << 10, 1 << 20


def run(*args, check=True):
    return subprocess.run([str(a) for a in args], check=check, text=True,
                          capture_output=True,
                          stdin=subprocess.DEVNULL).stdout


def mkfs(image, size, command, source=None, label="test-ext"):
    with open(image, "wb") as f:
        f.truncate(size)
    extra = ["-d", source] if source else []
    run(*command, "-q", "-F", "-L", label, *extra, image)
    return image


def file_reader(path):
    fd = os.open(path, os.O_RDONLY)
    return lambda offset, length: os.pread(fd, length, offset)


def bytes_reader(data):
    return lambda offset, length: bytes(data[offset:offset + length])


def map_image(path, size=None):
    return ext.open_volume(file_reader(path), size or os.path.getsize(path))


def dumpe2fs(path):
    """dumpe2fs's own numbers: the header's fields, and for each group its
    first and last block, flags, free count and free block ranges (blocks
    [a, b] inclusive; with bigalloc dumpe2fs names clusters by their first
    block)."""
    out = run("dumpe2fs", path)
    head, body = out.split("\nGroup 0:", 1)
    fields = dict(re.findall(r"^([A-Z][\w /#-]*?):\s+(.*?)\s*$", head, re.M))
    number = lambda name: int(fields[name])
    report = {"fields": fields, "count": number("Block count"),
              "free": number("Free blocks"), "bs": number("Block size"),
              "cluster": int(fields.get("Cluster size", fields["Block size"])),
              "groups": []}
    ratio = report["cluster"] // report["bs"]
    for section in re.split(r"^Group ", "Group 0:" + body, flags=re.M)[1:]:
        first, last, flags = re.match(r"\d+: \(Blocks (\d+)-(\d+)\)(.*)",
                                      section).groups()
        free = int(re.search(r"^\s+(\d+) free (?:blocks|clusters)", section,
                             re.M).group(1))
        ranges = []
        listed = re.search(r"^\s+Free blocks: ?(.*)$", section, re.M).group(1)
        for item in filter(None, listed.split(", ")):
            a, _, b = item.partition("-")
            ranges.append((int(a), (int(b or a) // ratio + 1) * ratio - 1))
        report["groups"].append({"first": int(first), "last": int(last),
                                 "flags": flags, "free": free,
                                 "free_ranges": ranges})
    return report


def journal_blocks(path):
    out = run("debugfs", "-R", "blocks <8>", path)
    return [int(b) for b in out.split()]


def block_runs(umap, bs):
    return [(offset // bs, -(-length // bs)) for offset, length in umap.runs]


def covered(runs, block):
    return any(start <= block < start + count for start, count in runs)


def data_extents(path):
    """[start, end) of each extent of a sparse file that holds data."""
    extents, pos = [], 0
    with open(path, "rb") as f:
        while True:
            try:
                start = os.lseek(f.fileno(), pos, os.SEEK_DATA)
            except OSError:
                return extents
            pos = os.lseek(f.fileno(), start, os.SEEK_HOLE)
            extents.append((start, pos))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def check_map(image, umap, kind, label="test-ext"):
    """The map against dumpe2fs (totals, per-group counts, exact free
    ranges), blkid and debugfs; returns dumpe2fs's report."""
    report = dumpe2fs(image)
    bs, count = report["bs"], report["count"]
    ratio = report["cluster"] // bs
    found = blkid(image)
    assert (umap.kind, umap.label, umap.uuid) == (found["TYPE"], label,
                                                   found["UUID"]) == \
        (kind, found["LABEL"], report["fields"]["Filesystem UUID"])
    assert umap.block_size == report["cluster"]
    assert umap.total_bytes == count * bs
    found_runs = list(umap.runs)
    assert umap.used_bytes == sum(n for _, n in found_runs)
    assert all(a[0] + a[1] < b[0] for a, b in zip(found_runs,
                                                   found_runs[1:]))
    assert umap.used_bytes == (count - report["free"]) * bs
    runs = block_runs(umap, bs)
    # Exactly the complement of dumpe2fs's free ranges.
    free = sorted(r for g in report["groups"] for r in g["free_ranges"])
    expected, pos = [], 0
    for a, b in free + [(count, count)]:
        if a > pos:
            expected.append((pos, a - pos))
        pos = b + 1
    assert runs == expected
    for group in report["groups"]:
        used = sum(min(s + n, group["last"] + 1) - max(s, group["first"])
                   for s, n in runs
                   if s <= group["last"] and s + n > group["first"])
        clusters = -(-(group["last"] + 1 - group["first"]) // ratio)
        assert clusters - used // ratio == group["free"], group
    if "has_journal" in report["fields"]["Filesystem features"]:
        blocks = journal_blocks(image)
        assert blocks and all(covered(runs, b) for b in blocks)
    assert not umap.warnings
    return report


def restore_and_check(image, umap, digests, tmp_path):
    target = tmp_path / "target.img"
    size = os.path.getsize(image)
    map_only_restore(image, target, umap.runs, seed=size)
    clean, output = demodisk.fsck(target, 0, size, "ext4")
    assert clean, output
    assert demodisk.read_files(target, 0, size, "ext4") == digests
    target.unlink()
