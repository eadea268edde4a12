"""imgx commands that write host files or stdout never write over the image
they read: `imgx cat` with stdout opened onto the image, `imgx get` with
DEST (or an entry under DEST) being the image's own file (issue 11 round 2,
the sweep of item 1)."""

import os
import subprocess
import sys

import pytest

from tests import needs
from tests.imgx_helpers import imgx, one_line_error
from tests.smalldisk import MiB, sha256
from tests.rdeploy_helpers import ROOT, env, rdeploy


@pytest.fixture
def image(tmp_path):
    """x.rdi: an image of an ext4 (no table) holding f.txt and a file
    named x.rdi too."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.txt").write_bytes(b"hello\n")
    (root / "x.rdi").write_bytes(b"a file named like the image\n")
    disk = tmp_path / "fs.img"
    with open(disk, "wb") as f:
        f.truncate(16 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(disk)],
                   check=True, capture_output=True)
    image = tmp_path / "x.rdi"
    result = rdeploy("capture", disk, image, "-q")
    assert result.returncode == 0, result.stderr.decode()
    return image


def cat_to(image_path, stdout_path):
    fd = os.open(stdout_path, os.O_RDWR)
    try:
        return subprocess.run([sys.executable, "-m", "imgx", "cat",
                               f"{image_path}:/f.txt"], env=env(), cwd=ROOT,
                              stdout=fd, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(fd)


def test_cat_with_stdout_onto_the_image(image):
    before = sha256(image)
    err = one_line_error(cat_to(image, image), 5)
    assert "<stdout>" in err and str(image) in err
    assert sha256(image) == before
    assert imgx("verify", image).returncode == 0


def test_cat_with_stdout_onto_a_later_volume(image, tmp_path):
    split = tmp_path / "sp.rdi"
    result = rdeploy("capture", tmp_path / "fs.img", split, "--split=4K",
                     "-q")
    assert result.returncode == 0, result.stderr.decode()
    volume = tmp_path / "sp.r01"
    before = sha256(volume)
    one_line_error(cat_to(split, volume), 5)
    assert sha256(volume) == before


def test_cat_to_another_file(image, tmp_path):
    out = tmp_path / "out.txt"
    out.touch()
    result = cat_to(image, out)
    assert result.returncode == 0, result.stderr.decode()
    assert out.read_bytes() == b"hello\n"


def test_get_onto_the_image_itself(image):
    before = sha256(image)
    err = one_line_error(imgx("get", f"{image}:/f.txt", image), 5)
    assert "image" in err and str(image) in err
    assert sha256(image) == before


def test_get_onto_a_hard_link_of_the_image(image, tmp_path):
    os.link(image, tmp_path / "other")
    one_line_error(imgx("get", f"{image}:/f.txt", tmp_path / "other"), 5)
    assert imgx("verify", image).returncode == 0


def test_get_recursive_into_the_images_directory(image, tmp_path):
    """get -R IMG:/ DIR merges the root into DIR, the image's directory:
    the entry x.rdi would replace the image; it alone is refused with a
    warning, the rest is written."""
    before = sha256(image)
    result = imgx("get", "-R", f"{image}:/", tmp_path)
    assert sha256(image) == before
    err = result.stderr.decode()
    assert "'x.rdi' not written" in err and "the image" in err, err
    assert (tmp_path / "f.txt").read_bytes() == b"hello\n"
    assert imgx("verify", image).returncode == 0


def test_get_warnings_name_image_directories_escaped(tmp_path):
    """A warning names the directory of the image it is in: a name holding
    ESC is shown escaped (here the image sits in DEST/e<ESC>[2J/, where the
    image's directory of that name would put its entry x.rdi)."""
    evil = "e\x1b[2J\r"
    root = tmp_path / "root"
    (root / evil).mkdir(parents=True)
    (root / evil / "x.rdi").write_bytes(b"a file named like the image\n")
    disk = tmp_path / "fs.img"
    with open(disk, "wb") as f:
        f.truncate(16 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(disk)],
                   check=True, capture_output=True)
    dest = tmp_path / "out"
    (dest / evil).mkdir(parents=True)
    image = dest / evil / "x.rdi"
    assert rdeploy("capture", disk, image, "-q").returncode == 0
    result = imgx("get", "-R", f"{image}:/", dest)
    err = result.stderr.decode()
    assert "'x.rdi' not written" in err, err
    assert "\x1b" not in err and "\r" not in err, err
    assert "e\\x1b[2J\\x0d" in err
    assert imgx("verify", image).returncode == 0


@pytest.mark.parametrize("kind", ["character device", "fifo", "symlink"])
def test_get_never_replaces_a_dest_that_is_not_a_file(image, tmp_path, kind):
    """`imgx get IMG:/f /dev/null` (or /dev/stdout, a symlink) replaced the
    device node (the link) with a regular file.  A DEST that is a device
    node, a FIFO, a socket or a symlink to a file is refused (exit 5) and
    left as it was; `imgx cat` is the way to write into one."""
    dest = tmp_path / "dest"
    if kind == "character device":
        needs.require(root=True)                    # mknod
        os.mknod(dest, 0o20666, os.makedev(1, 3))     # as /dev/null
    elif kind == "fifo":
        os.mkfifo(dest)
    else:
        (tmp_path / "target").write_bytes(b"kept\n")
        dest.symlink_to(tmp_path / "target")
    before = os.lstat(dest)
    err = one_line_error(imgx("get", f"{image}:/f.txt", dest), 5)
    assert str(dest) in err and "imgx cat" in err, err
    after = os.lstat(dest)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    if kind == "symlink":
        assert (tmp_path / "target").read_bytes() == b"kept\n"


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("command", [["recompress", "--compress=zstd"],
                                     ["split", "1M"], ["join"]])
def test_rewrite_onto_a_hard_link_of_the_image_is_refused(image, tmp_path,
                                                          command, force):
    """`recompress a.rdi -o b.rdi` where b.rdi is a hard link to a.rdi is
    output over input (exit 5), not an edit in place: a.rdi is not rewritten
    and the link stays (issue 11 review item 4; split and join -o share the
    rule)."""
    link = tmp_path / "b.rdi"
    os.link(image, link)
    before = sha256(image)
    err = one_line_error(imgx(command[0], image, *command[1:],
                              f"--output={link}", *force), 5)
    assert str(link) in err and "is " in err, err
    assert sha256(image) == before
    assert os.path.samefile(image, link)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".partial")]


def test_recompress_through_a_symlink_to_the_image_is_in_place(image,
                                                               tmp_path):
    """A symlink to the image names the same file (realpaths equal): that
    is a rewrite in place, the link stays a link."""
    link = tmp_path / "alias.rdi"
    link.symlink_to(image)
    before = sha256(image)
    result = imgx("recompress", image, f"--output={link}", "--compress=zstd")
    assert result.returncode == 0, result.stderr.decode()
    assert link.is_symlink() and os.path.samefile(link, image)
    assert sha256(image) != before
