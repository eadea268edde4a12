"""An output path that is a symlink to a missing file is refused with a
line that says so, not 'exists', and nothing is made where it points
(issue 11 round 3, volmsg item 3 sweep: imgx convert and import, bootdisk;
capture and restore have theirs in test_capture_safety and
test_bad_input)."""

import os
import subprocess
import sys

import pytest

from tests.bootdisk_helpers import ROOT, host_kernel
from tests.imgx_helpers import imgx
from tests.rdeploy_helpers import rdeploy


@pytest.fixture
def dangling(tmp_path):
    (tmp_path / "victim").mkdir()
    link = tmp_path / "out.img"
    link.symlink_to(tmp_path / "victim" / "made.img")
    return link


def _refused(result, code, link):
    err = result.stderr
    err = err.decode() if isinstance(err, bytes) else err
    assert result.returncode == code, err
    assert err.count("\n") == 1, err
    assert f"{link}: is a symlink to {link.parent}/victim/made.img, which " \
        f"does not exist" in err, err
    assert os.listdir(link.parent / "victim") == []
    assert link.is_symlink()


def _small_image(tmp_path):
    disk = tmp_path / "fs.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", disk, "4M"], check=True,
                   capture_output=True)
    image = tmp_path / "fs.rdi"
    assert rdeploy("capture", disk, image, "-q").returncode == 0
    return disk, image


def test_imgx_convert_onto_a_dangling_symlink(tmp_path, dangling):
    _, image = _small_image(tmp_path)
    _refused(imgx("convert", image, dangling, "--to=raw"), 5, dangling)


def test_imgx_import_onto_a_dangling_symlink(tmp_path, dangling):
    disk, _ = _small_image(tmp_path)
    _refused(imgx("import", disk, dangling), 3, dangling)


def test_bootdisk_onto_a_dangling_symlink(tmp_path, dangling):
    host_kernel()
    result = subprocess.run([sys.executable, "-m", "bootdisk", "initrd",
                             "-o", dangling, "--toolkit=/bin/true"],
                            capture_output=True, text=True, cwd=ROOT)
    _refused(result, 3, dangling)
