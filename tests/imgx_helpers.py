"""What the imgx tests share: building and capturing disks, running imgx."""

import os
import subprocess
import sys

import pytest

import demodisk
from diskimage.capture import capture
from diskimage.image.compression import Compressor
from diskimage.fs.fat.mtools import MTOOLS_ENV
from diskimage.host.tools import tool_env
from diskimage.image.volumeout import VolumeOutput
from tests.shared import copy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def capture_disk(disk, image, codec="lz4", description="", split=None):
    """Capture `disk` into `image` with the library (as rdeploy capture)."""
    return capture(os.fspath(disk), VolumeOutput(os.fspath(image), split),
                   compressor=Compressor(codec, None),
                   description=description)


def demo_image(tmp_path_factory, name, files, **capture_options):
    """A GPT demo disk (ext4, FAT32, NTFS) and its image, in a new
    directory: (disk, image, manifest, directory)."""
    tmp = tmp_path_factory.mktemp(name)
    disk, image = tmp / "demo.img", tmp / "demo.rdi"
    manifest = demodisk.make_gpt_demo(disk, files=files)
    capture_disk(disk, image, **capture_options)
    return disk, image, manifest, tmp


def imgx(*args, input=None, env=None):
    """Run imgx as a command; returns the CompletedProcess (bytes)."""
    return subprocess.run([sys.executable, "-m", "imgx", *map(os.fspath,
                                                               args)],
                          capture_output=True, input=input, cwd=ROOT,
                          env=tool_env(env))


def ok(*args, **kw):
    result = imgx(*args, **kw)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def tool(*args, env=None):
    result = subprocess.run(list(map(os.fspath, args)), capture_output=True,
                            env=tool_env(dict(MTOOLS_ENV, **(env or {}))))
    assert result.returncode == 0, (args, result.stderr.decode())
    return result.stdout


def one_line_error(result, code):
    """The command failed with `code` and said so in exactly one line."""
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    assert err.count("\n") == 1 and err.startswith("imgx: error: "), err
    return err


def edit_disk(tmp):
    """A GPT disk image with one small ext4 made by mkfs.ext4 -d, holding
    t2/link and t2/dirlink whose absolute targets are a file and a
    directory made under `tmp`/host (never real host files), and
    existing.txt with a hard link hardlink.txt.  Returns (image, host)."""
    from .fsmaps import partitioned_disk, run
    host = tmp / "host"
    (host / "dir").mkdir(parents=True)
    (host / "file").write_text("host file\n")
    tree = tmp / "tree"
    (tree / "t2").mkdir(parents=True)
    os.symlink(host / "file", tree / "t2" / "link")
    os.symlink(host / "dir", tree / "t2" / "dirlink")
    (tree / "existing.txt").write_text("old\n")
    os.link(tree / "existing.txt", tree / "hardlink.txt")
    fs = tmp / "fs.img"
    with open(fs, "wb") as f:
        f.truncate(16 << 20)
    run("mkfs.ext4", "-q", "-F", "-d", tree, fs)
    disk = tmp / "disk.img"
    partitioned_disk(disk, [(fs, "ext4")])
    image = tmp / "golden.rdi"
    capture_disk(disk, image)
    return image, host


# The ext4 with links that point at host files (edit_disk), built once per
# session (tests/conftest.py), and a writable copy of its image per test.
@pytest.fixture
def golden(edit_golden_ro):
    return edit_golden_ro


@pytest.fixture
def image(golden, tmp_path):
    source, host = golden
    return copy(source, tmp_path / "lab.rdi"), host
