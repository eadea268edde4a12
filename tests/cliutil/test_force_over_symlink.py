"""--force over an output that is a symlink follows one rule in every
command (issue 11 review item 5; docs/rdeploy.md, "Outputs"): a link to
an existing regular file names the file replaced, the link stays a link;
a link to nothing is refused, forced or not, and nothing is made where it
points.  rdeploy capture (VolumeOutput) did so already; imgx sfx and
bootdisk (diskimage.host.partial) replaced the link itself."""

import os
import subprocess
import sys

import pytest

from tests.bootdisk_helpers import host_kernel
from tests.imgx_helpers import ROOT, imgx, ok, one_line_error
from tests.rdeploy_helpers import rdeploy
from tests.imgx.test_outputs import _fake_binary, _image

OLD = b"the old file behind the link\n"


def _linked(tmp_path, name):
    """`name` a symlink to store/real-`name`, an existing file."""
    (tmp_path / "store").mkdir(exist_ok=True)
    real = tmp_path / "store" / f"real-{name}"
    real.write_bytes(OLD)
    link = tmp_path / name
    link.symlink_to(real)
    return link, real


def _followed(link, real):
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.is_file() and real.read_bytes() != OLD
    for directory in (link.parent, real.parent):
        assert not [n for n in os.listdir(directory)
                    if n.endswith(".partial")], os.listdir(directory)


def _dangling(tmp_path, name):
    (tmp_path / "victim").mkdir(exist_ok=True)
    link = tmp_path / name
    link.symlink_to(tmp_path / "victim" / "made")
    return link


def _refused_dangling(err, link):
    assert f"{link}: is a symlink to {link.parent}/victim/made, which " \
        f"does not exist" in err, err
    assert link.is_symlink()
    assert os.listdir(link.parent / "victim") == []


def test_sfx_force_writes_the_file_a_link_points_to(tmp_path):
    image, binary = _image(tmp_path), _fake_binary(tmp_path)
    link, real = _linked(tmp_path, "lab.run")
    ok("sfx", image, "-o", link, f"--binary={binary}", "--force")
    _followed(link, real)
    assert real.read_bytes().startswith(binary.read_bytes())
    assert os.stat(real).st_mode & 0o111


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_sfx_onto_a_dangling_link_is_refused(tmp_path, force):
    image, binary = _image(tmp_path), _fake_binary(tmp_path)
    link = _dangling(tmp_path, "lab.run")
    err = one_line_error(imgx("sfx", image, "-o", link, f"--binary={binary}",
                              *force), 3)
    _refused_dangling(err, link)


def _bootdisk(*args):
    return subprocess.run([sys.executable, "-m", "bootdisk",
                           *map(os.fspath, args)], capture_output=True,
                          text=True, cwd=ROOT)


def test_bootdisk_force_writes_the_file_a_link_points_to(tmp_path):
    host_kernel()
    link, real = _linked(tmp_path, "env.initrd")
    result = _bootdisk("initrd", "-o", link, "--toolkit=/bin/true",
                       "--force")
    assert result.returncode == 0, result.stderr
    _followed(link, real)


def test_bootdisk_force_onto_a_dangling_link_is_refused(tmp_path):
    host_kernel()
    link = _dangling(tmp_path, "env.initrd")
    result = _bootdisk("initrd", "-o", link, "--toolkit=/bin/true",
                       "--force")
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    _refused_dangling(result.stderr, link)


def test_capture_force_follows_the_same_rule(tmp_path):
    disk = tmp_path / "ext.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", disk, "4M"], check=True,
                   capture_output=True)
    link, real = _linked(tmp_path, "disk.rdi")
    result = rdeploy("capture", disk, link, "--force", "-q")
    assert result.returncode == 0, result.stderr.decode()
    _followed(link, real)


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_import_onto_a_dangling_link_is_refused(tmp_path, force):
    disk = tmp_path / "ext.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", disk, "4M"], check=True,
                   capture_output=True)
    link = _dangling(tmp_path, "disk.rdi")
    err = one_line_error(imgx("import", disk, link, *force), 3)
    _refused_dangling(err, link)
