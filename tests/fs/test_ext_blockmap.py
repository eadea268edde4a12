"""imgx reads ext2's indirect block maps and multi-block directories
through diskimage.fs.ext.blockmap and .dirents (their own walks, bounded
by the volume, in place of dissect's): a volume made by mke2fs -d with
1 KiB blocks holding a file reaching the double-indirect level, a sparse
file larger than the volume (holes in every level, kept sparse: checked
with debugfs) and a directory of 300 entries over many blocks; every
file reads back as the source holds it."""

import hashlib
import os
import re
import subprocess

import pytest

from diskimage.errors import CorruptImageError
from diskimage.fs.read import Filesystem

pytestmark = pytest.mark.needs("mke2fs", "debugfs")
SPARSE_AT = (0, 300 << 10, 9 << 20, 40 << 20)
SPARSE_SIZE = 64 << 20


def _tree(root):
    os.makedirs(root / "many")
    want = {}
    big = bytes(range(256)) * 1200                       # 300 KiB
    (root / "big").write_bytes(big)
    want["big"] = big
    with open(root / "sparse", "wb") as f:
        for at in SPARSE_AT:
            f.seek(at)
            f.write(b"data at %d\n" % at)
        f.truncate(SPARSE_SIZE)
    for i in range(300):
        name = f"many/entry-with-a-long-name-{i:04d}"
        (root / name).write_bytes(b"%d\n" % i)
        want[name] = b"%d\n" % i
    return {rel: hashlib.sha256(d).hexdigest() for rel, d in want.items()}


def test_indirect_maps_and_long_directories(tmp_path):
    src = tmp_path / "src"
    want = _tree(src)
    image = tmp_path / "ext2.img"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024",
                    "-d", src, image], check=True)
    out = subprocess.run(["debugfs", "-R", "stat /sparse", image],
                         capture_output=True, text=True, check=True).stdout
    sectors = int(re.search(r"Blockcount: (\d+)", out).group(1))
    assert sectors < 64, out            # holes kept: a handful of blocks
    with open(image, "rb") as fh:
        fs = Filesystem(fh, "ext2", "ext2.img:1:")
        got, sparse = {}, None
        for rel, node in fs.walk(fs.root):
            if node.kind != "file":
                continue
            data = fs.read(node)
            if rel == "sparse":
                sparse = data
            else:
                got[rel] = hashlib.sha256(data).hexdigest()
    assert got == want
    expect = bytearray(SPARSE_SIZE)
    for at in SPARSE_AT:
        line = b"data at %d\n" % at
        expect[at:at + len(line)] = line
    assert sparse == bytes(expect)


def _leaf(image, path):
    """The block of the extent tree's first leaf (debugfs ex, level 0)."""
    out = subprocess.run(["debugfs", "-R", f"ex {path}", image],
                         capture_output=True, text=True, check=True).stdout
    row = re.search(r"^\s*0/\s*1\s+\d+/\s*\d+\s+\d+ -\s+\d+\s+(\d+)", out,
                    re.M)
    assert row, out                     # the tree has an index level
    return int(row.group(1))


def test_extent_tree_checked(tmp_path):
    """A sparse ext4 file of ten islands (an extent tree one index deep)
    reads as written; the same volume with its leaf claiming to be an
    index node (depth 1) is one "damaged filesystem" line."""
    src = tmp_path / "src"
    src.mkdir()
    islands = {i << 20: b"island %d\n" % i for i in range(10)}
    with open(src / "sparse", "wb") as f:
        for at, data in islands.items():
            f.seek(at)
            f.write(data)
        f.truncate(SPARSE_SIZE)
    image = tmp_path / "ext4.img"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024",
                    "-d", src, image], check=True)
    leaf = _leaf(image, "/sparse")
    expect = bytearray(SPARSE_SIZE)
    for at, data in islands.items():
        expect[at:at + len(data)] = data
    with open(image, "rb") as fh:
        fs = Filesystem(fh, "ext4", "ext4.img:1:")
        assert fs.read(fs.lookup("sparse")) == bytes(expect)
    with open(image, "r+b") as f:
        f.seek(leaf * 1024 + 6)         # eh_depth
        f.write((1).to_bytes(2, "little"))
    with open(image, "rb") as fh:
        fs = Filesystem(fh, "ext4", "ext4.img:1:")
        with pytest.raises(CorruptImageError) as caught:
            fs.read(fs.lookup("sparse"))
    assert str(caught.value) == (
        f"ext4.img:1: damaged filesystem: inode 12: its extent tree node "
        f"at block {leaf} is level 1 with 10 entries (room for 84)")
