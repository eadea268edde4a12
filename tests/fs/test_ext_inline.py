"""imgx reads ext4's inline data (mke2fs -O inline_data): directories
whose entries live in the inode (and, written by the kernel through a
mount, spill into system.data) and files of up to a few dozen bytes kept
there, each listed and read as the source tree holds them; the inodes are
checked to be inline with debugfs, so the test cannot pass on a volume
that kept its data in blocks."""

import hashlib
import os
import re
import subprocess

import pytest

from diskimage.fs.read import Filesystem

pytestmark = pytest.mark.needs("mke2fs", "debugfs", "mount", root=True)
MANY = {f"many/f-entry-{i}": b"%d\n" % i for i in range(4)}


def _tree(root):
    files = {"small.txt": b"hi\n", "spill.txt": b"x" * 100,
             "dir/a": b"alpha\n", "dir/sub/b": b"beta\n"}
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return {rel: hashlib.sha256(d).hexdigest() for rel, d in files.items()}


def _inline(image, path):
    out = subprocess.run(["debugfs", "-R", f"stat {path}", image],
                         capture_output=True, text=True, check=True).stdout
    return bool(re.search(r"Flags: 0x1\d{7}", out))


def test_inline_directories_and_files(tmp_path):
    want = _tree(tmp_path / "src")
    image = tmp_path / "ext4.img"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-O", "inline_data",
                    "-d", tmp_path / "src", image], check=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", image, mnt], check=True)
    try:
        for rel, data in MANY.items():
            os.makedirs(mnt / os.path.dirname(rel), exist_ok=True)
            (mnt / rel).write_bytes(data)
    finally:
        subprocess.run(["umount", mnt], check=True)
    want.update({rel: hashlib.sha256(d).hexdigest()
                 for rel, d in MANY.items()})
    for path in ("/dir", "/many", "/small.txt", "/spill.txt"):
        assert _inline(image, path), path
    with open(image, "rb") as fh:
        fs = Filesystem(fh, "ext4", "ext4.img:1:")
        got = {rel: hashlib.sha256(fs.read(node)).hexdigest()
               for rel, node in fs.walk(fs.root)
               if node.kind == "file"}
        names = sorted(rel for rel, node in fs.walk(fs.root))
    assert got == want
    assert names == sorted(["lost+found", "dir", "dir/sub", "many"] +
                           list(want))
