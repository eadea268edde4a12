"""Relative host paths given to the commands are the files in the directory
the command started in, never something a tool resolves elsewhere (issue
11 round 3, volmsg item 7 sweep): mtools reads a source named `a:b` as
drive A: (the host's floppy, /dev/fd0) unless it is made a path."""

import os
import subprocess
import sys

from tests.imgx_helpers import ROOT, ok
from tests.test_bad_input import rdeploy


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
