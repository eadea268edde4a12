"""Item 5 of issue 11 round 4: `imgx convert IMG - --to=raw` wrote a file
literally named "-".  "-" means stdout everywhere in the toolkit: the raw
disk goes to stdout (a pipe or a file; never a terminal, never the image
itself); qcow2 and vhd to "-" are usage errors."""

import hashlib
import os
import subprocess
import sys

from diskimage.host.tools import tool_env

from tests.imgx_helpers import ROOT, capture_disk, imgx
from tests.smalldisk import sha256


def test_convert_to_stdout_writes_the_raw_disk_there(small_disk, tmp_path):
    disk = small_disk
    image = tmp_path / "x.rdi"
    capture_disk(disk, image)
    proc = subprocess.Popen([sys.executable, "-m", "imgx", "convert",
                             os.fspath(image), "-", "--to=raw"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT, env=tool_env(None))
    digest = hashlib.sha256()
    for piece in iter(lambda: proc.stdout.read(1 << 20), b""):
        digest.update(piece)
    err = proc.stderr.read().decode()
    assert proc.wait() == 0, err
    assert digest.hexdigest() == sha256(disk)
    assert not os.path.lexists(os.path.join(ROOT, "-"))
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".imgx")]


def test_convert_to_stdout_refuses_qcow2_and_the_image_itself(
        small_disk, tmp_path):
    disk = small_disk
    image = tmp_path / "x.rdi"
    capture_disk(disk, image)
    result = subprocess.run([sys.executable, "-m", "imgx", "convert",
                             os.fspath(image), "-", "--to=qcow2"],
                            capture_output=True, cwd=ROOT,
                            env=tool_env(None))
    assert result.returncode == 2, result.stderr
    assert b"--to=raw only" in result.stderr
    assert not os.path.lexists(os.path.join(ROOT, "-"))
    before = sha256(image)
    with open(image, "r+b") as out:
        result = subprocess.run([sys.executable, "-m", "imgx", "convert",
                                 os.fspath(image), "-", "--to=raw"],
                                stdout=out, stderr=subprocess.PIPE,
                                cwd=ROOT, env=tool_env(None))
    assert result.returncode == 5, result.stderr
    assert sha256(image) == before
    assert imgx("verify", image).returncode == 0
