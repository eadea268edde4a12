"""Item 5 sweep (issue 11 round 4): "-" as OUT of the image operations.
It means stdout everywhere in the toolkit: join and recompress stream the
image there (as rdeploy capture - does), which rdeploy restore - reads
back; split, import and sfx write files only and refuse it (exit 2);
none writes a file named "-"."""

import os
import subprocess
import sys

import pytest

from diskimage.host.tools import tool_env

from tests.imgx_helpers import ROOT, capture_disk, imgx
from tests.smalldisk import sha256


@pytest.fixture
def image(small_disk, tmp_path):
    disk = small_disk
    image = tmp_path / "sp.rdi"
    capture_disk(disk, image, split=1 << 20)
    return disk, image


@pytest.mark.parametrize("args", [
    ("join", "{image}", "--output=-"),
    ("recompress", "{image}", "--compress=zstd", "--output=-")],
    ids=["join", "recompress"])
def test_stream_to_stdout_restores(image, tmp_path, args):
    disk, img = image
    stream = tmp_path / "stream.rdi"
    with open(stream, "wb") as out:
        result = subprocess.run(
            [sys.executable, "-m", "imgx",
             *(a.format(image=img) for a in args)], stdout=out,
            stderr=subprocess.PIPE, cwd=ROOT, env=tool_env(None))
    assert result.returncode == 0, result.stderr.decode()
    assert not os.path.lexists(os.path.join(ROOT, "-"))
    target = tmp_path / "target.img"
    with open(stream, "rb") as f:
        restored = subprocess.run(
            [sys.executable, "-m", "rdeploy", "restore", "-",
             os.fspath(target), "--yes"], stdin=f, capture_output=True,
            cwd=ROOT, env=tool_env(None))
    assert restored.returncode == 0, restored.stderr.decode()
    assert sha256(target) == sha256(disk)


@pytest.mark.parametrize("args", [
    ("split", "{image}", "2M", "--output=-"),
    ("import", "{disk}", "-"),
    ("sfx", "{image}", "-o", "-", "--binary=/bin/true")],
    ids=["split", "import", "sfx"])
def test_file_outputs_refuse_dash(image, args):
    disk, img = image
    result = imgx(*(a.format(image=img, disk=disk) for a in args))
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert 'OUT "-" (stdout)' in err and err.count("\n") == 1, err
    assert not os.path.lexists(os.path.join(ROOT, "-"))


@pytest.mark.parametrize("command", ["initrd", "iso", "usb", "pxe"])
def test_bootdisk_refuses_dash_before_reading_anything(command):
    result = subprocess.run(
        [sys.executable, "-m", "bootdisk", command, "-o", "-",
         "--kernel=/nonexistent/vmlinuz"], capture_output=True, text=True,
        cwd=ROOT, env=tool_env(None))
    assert result.returncode == 2, result.stderr
    assert 'OUT "-" (stdout)' in result.stderr, result.stderr
    assert f"see 'bootdisk {command} --help'" in result.stderr
    assert not os.path.lexists(os.path.join(ROOT, "-"))
