"""imgx edits through symlinks of the image, and of the image's own name
(issue 11 round 3, items 1 and 2): a merged-/usr ext4 made by mkfs.ext4 -d
(``lib -> usr/lib``, an absolute ``/dl -> /d``); every link on the way to
the entry an edit acts on is resolved inside the image, the last one is
the entry itself."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.fsmaps import partitioned_disk, run
from tests.imgx_helpers import ROOT, capture_disk, imgx, ok, one_line_error
from tests.shared import copy


def merged_usr_image(tmp):
    tree = tmp / "tree"
    (tree / "usr" / "lib").mkdir(parents=True)
    (tree / "usr" / "lib" / "os-release").write_text("ID=test\n")
    (tree / "d").mkdir()
    os.symlink("usr/lib", tree / "lib")
    os.symlink("/d", tree / "dl")
    fs = tmp / "fs.img"
    with open(fs, "wb") as f:
        f.truncate(8 << 20)
    run("mkfs.ext4", "-q", "-F", "-d", tree, fs)
    disk = tmp / "disk.img"
    partitioned_disk(disk, [(fs, "ext4")])
    image = tmp / "golden.rdi"
    capture_disk(disk, image)
    return image


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    return merged_usr_image(tmp_path_factory.mktemp("edit-links"))


@pytest.fixture
def image(golden, tmp_path):
    copy = tmp_path / "lab.rdi"
    shutil.copy(golden, copy)
    return copy


@pytest.fixture
def a_txt(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("a\n")
    return path


def _names(img, path):
    return ok("ls", f"{img}:1/{path}").decode().split()


def test_put_and_mkdir_through_a_relative_directory_link(image, a_txt):
    ok("put", a_txt, f"{image}:1/lib/new.txt")
    ok("mkdir", f"{image}:1/lib/newdir")
    assert _names(image, "usr/lib") == ["new.txt", "newdir/", "os-release"]
    # The link is still a link: the edit went where it points.
    assert ok("ls", "-l", f"{image}:1/").decode().count("lib -> usr/lib")


def test_put_through_an_absolute_directory_link_stays_in_the_image(
        image, a_txt):
    ok("put", a_txt, f"{image}:1/dl/new.txt")
    assert _names(image, "d") == ["new.txt"]


def test_put_force_rm_and_mv_through_a_directory_link(image, a_txt):
    ok("put", "--force", a_txt, f"{image}:1/lib/os-release")
    assert ok("cat", f"{image}:1/usr/lib/os-release") == b"a\n"
    ok("mv", f"{image}:1/usr/lib/os-release", "/lib/os2")
    assert _names(image, "usr/lib") == ["os2"]
    ok("rm", f"{image}:1/lib/os2")
    assert _names(image, "usr/lib") == []


def test_put_onto_a_link_to_a_directory_lands_inside_it(image, a_txt):
    ok("put", a_txt, f"{image}:1/lib")
    assert _names(image, "usr/lib") == ["a.txt", "os-release"]


def test_rm_of_a_directory_link_removes_the_link(image):
    ok("rm", f"{image}:1/lib")
    assert "lib" not in _names(image, "")
    assert _names(image, "usr/lib") == ["os-release"]


def test_mv_into_itself_through_a_link_is_refused(image):
    err = one_line_error(imgx("mv", f"{image}:1/usr", "/lib/x"), 3)
    assert "cannot be moved into itself" in err


def test_a_file_in_the_middle_is_still_not_a_directory(image, a_txt):
    err = one_line_error(imgx("put", a_txt,
                              f"{image}:1/lib/os-release/x"), 3)
    assert err.endswith(":1/lib/os-release: not a directory\n"), err


def _linked(image):
    """IMAGE moved into store/ and named through lnk.rdi -> store/real.rdi."""
    store = image.parent / "store"
    store.mkdir()
    real = store / "real.rdi"
    image.rename(real)
    link = image.parent / "lnk.rdi"
    os.symlink("store/real.rdi", link)
    return link, real


def test_an_edit_through_a_linked_image_edits_its_target(image, a_txt):
    link, real = _linked(image)
    ok("put", a_txt, f"{link}:1/x")
    ok("mkdir", f"{link}:1/newdir")
    assert os.readlink(link) == "store/real.rdi"
    assert ok("cat", f"{real}:1/x") == b"a\n"
    assert "newdir/" in _names(real, "")
    assert sorted(os.listdir(link.parent)) == ["a.txt", "lnk.rdi", "store"]
    assert os.listdir(real.parent) == ["real.rdi"]


def test_rewrites_in_place_through_a_linked_image_rewrite_its_target(image):
    link, real = _linked(image)
    ok("describe", link, "through the link")
    ok("recompress", link, "--compress=zstd")
    assert os.readlink(link) == "store/real.rdi"
    info = ok("info", real, "--json").decode()
    assert "through the link" in info and "zstd" in info
    assert os.listdir(real.parent) == ["real.rdi"]


def test_capture_force_onto_a_linked_image_replaces_its_target(image,
                                                               tmp_path):
    """rdeploy capture --force onto lnk.rdi -> store/real.rdi writes the
    new image to store/real.rdi and keeps the link (decided so: as every
    other in-place writer of an image)."""
    disk = tmp_path / "disk.raw"
    ok("convert", image, disk, "--to=raw")
    link, real = _linked(image)
    result = subprocess.run([sys.executable, "-m", "rdeploy", "capture",
                             disk, link, "--force", "--description=new"],
                            cwd=ROOT, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    assert os.readlink(link) == "store/real.rdi"
    assert "new" in ok("info", real, "--json").decode()
    assert os.listdir(real.parent) == ["real.rdi"]


def test_messages_of_an_edit_through_a_linked_image_name_the_link(image,
                                                                  tmp_path):
    link, real = _linked(image)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 << 20))          # the ext4 holds 8 MiB
    before = real.read_bytes()
    err = one_line_error(imgx("put", big, f"{link}:1/"), 6)
    assert err.startswith(f"imgx: error: {link}: put: no space left"), err
    assert real.read_bytes() == before and os.path.islink(link)


def test_put_on_ntfs_names_a_directory_in_another_case(
        ntfs_golden, tmp_path):
    """NTFS names match without regard to case (as the browser does), and
    the edit through ntfs-3g must find the same directory."""
    img = tmp_path / "ntfs.rdi"
    copy(ntfs_golden[0], img)
    a = tmp_path / "a.txt"
    a.write_text("a\n")
    result = imgx("put", a, f"{img}:1/T2/new.txt")
    assert result.returncode == 0, result.stderr.decode()
    assert imgx("cat", f"{img}:1/t2/new.txt").stdout == b"a\n"
