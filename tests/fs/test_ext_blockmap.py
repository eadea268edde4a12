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
