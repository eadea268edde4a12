"""Relative host paths given to the commands are the files in the directory
the command started in, never something a tool resolves elsewhere (issue
11 round 3, volmsg item 7 sweep): mtools reads a source named `a:b` as
drive A: (the host's floppy, /dev/fd0) unless it is made a path."""

import os
import subprocess
import sys

from tests.imgx_helpers import ROOT, ok
from tests.rdeploy_helpers import rdeploy


def test_imgx_put_of_a_relative_name_with_a_colon_into_fat(tmp_path):
    disk = tmp_path / "fat.img"
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.fat", "-F", "16", disk], check=True,
                   capture_output=True)
    image = tmp_path / "fat.rdi"
    result = rdeploy("capture", disk, image, "-q")
    assert result.returncode == 0, result.stderr.decode()
    (tmp_path / "a:b").write_bytes(b"the file in the current directory\n")
    result = subprocess.run(
        [sys.executable, "-m", "imgx", "put", "a:b", "fat.rdi:/ab.txt"],
        capture_output=True, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=os.fspath(ROOT)))
    assert result.returncode == 0, result.stderr.decode()
    assert ok("cat", f"{image}:/ab.txt") == \
        b"the file in the current directory\n"


def test_imgx_import_of_a_relative_name_qemu_img_would_parse(tmp_path):
    """A local qcow2 named 'json:{...}' naming another file: qemu-img read
    the name as options and imported the other file."""
    other = tmp_path / "other.img"
    other.write_bytes(b"OTHER FILE " * 100000)
    named = 'json:{"file.filename":"other.img"}'
    mine = tmp_path / "mine.raw"
    mine.write_bytes(b"THIS FILE " * 100000)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2",
                    mine, tmp_path / named], check=True, capture_output=True)
    result = subprocess.run(
        [sys.executable, "-m", "imgx", "import", named, "out.rdi"],
        capture_output=True, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=os.fspath(ROOT)))
    assert result.returncode == 0, result.stderr.decode()
    back = tmp_path / "back.img"
    result = rdeploy("restore", tmp_path / "out.rdi", back, "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    data = back.read_bytes()
    assert data.startswith(mine.read_bytes()), data[:40]
