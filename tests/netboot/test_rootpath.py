import os

import pytest

from diskimage.netboot import rootpath
from diskimage.netboot.rootpath import Refused


@pytest.fixture
def root(tmp_path):
    boot = tmp_path / "boot"
    (boot / "pxelinux.cfg").mkdir(parents=True)
    (boot / "pxelinux.cfg" / "default").write_text("DEFAULT x\n")
    (boot / "pxelinux.0").write_bytes(b"loader")
    (tmp_path / "secret").write_text("outside")
    os.symlink("pxelinux.0", boot / "inside-link")
    os.symlink(tmp_path / "secret", boot / "outside-link")
    os.symlink("../../secret", boot / "pxelinux.cfg" / "up-link")
    return boot


@pytest.mark.parametrize("name", ["pxelinux.0", "/pxelinux.0",
                                  "./pxelinux.cfg//default", "inside-link"])
def test_served(root, name):
    f, size, rel = rootpath.open_file(root, name)
    with f:
        assert f.read() == (root / rel).read_bytes()
    assert size == len((root / rel).read_bytes())


@pytest.mark.parametrize("name,why", [
    ("../secret", "traversal"), ("pxelinux.cfg/../../secret", "traversal"),
    ("//etc/passwd", "absolute"), ("C:\\boot.ini", "backslash"),
    ("c:boot.ini", "drive"), ("~root/.ssh", "home"),
    ("pxelinux.0\0.cfg", "control"), ("a\nb", "control"),
    ("outside-link", "out of the boot root"),
    ("pxelinux.cfg/up-link", "out of the boot root"),
    ("pxelinux.cfg", "directory"), ("/", "names no file"),
    ("a" * 600, "longer than 512"), ("d/" + "b" * 300, "component longer"),
    (b"\xff\xfe", "UTF-8"),
])
def test_refused(root, name, why):
    with pytest.raises(Refused, match=why):
        rootpath.open_file(root, name)


def test_missing_is_not_refused(root):
    with pytest.raises(FileNotFoundError):
        rootpath.open_file(root, "/etc/passwd")
    with pytest.raises(FileNotFoundError):
        rootpath.open_file(root, "pxelinux.0/x")


def test_fifo_refused(root):
    os.mkfifo(root / "fifo")
    with pytest.raises(Refused, match="regular"):
        rootpath.open_file(root, "fifo")
