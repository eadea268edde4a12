"""imgx edit messages and exit codes that tell the truth (issue 11 item
19 and its sweep): one sentence, one colon, exit 6 for a full partition,
refusals before any work."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.fsmaps import partitioned_disk, run
from tests.imgx_helpers import golden, image  # noqa: F401 (fixtures)
from tests.toolless import run_in, toolless_root
from tests.imgx_helpers import (ROOT, capture_disk, imgx, ok,
                                one_line_error)

MiB = 1 << 20




def test_put_of_a_tree_with_a_fifo_says_so_in_a_sentence(image, tmp_path):
    img, _ = image
    src = tmp_path / "withfifo"
    src.mkdir()
    (src / "plain.txt").write_text("p\n")
    os.mkfifo(src / "pipe")
    before = img.read_bytes()
    err = one_line_error(imgx("put", src, f"{img}:1/"), 3)
    assert err == (f"imgx: error: {src / 'pipe'}: is a FIFO; imgx put "
                   f"copies files, directories and symlinks only; nothing "
                   f"changed\n")
    assert img.read_bytes() == before


def test_rm_or_mv_of_the_root_is_refused_in_english(image):
    img, _ = image
    err = one_line_error(imgx("rm", "-r", f"{img}:1/"), 3)
    assert err.endswith(f"{img}:1/: the root cannot be removed\n"), err
    err = one_line_error(imgx("mv", f"{img}:1/", "/x"), 3)
    assert err.endswith(f"{img}:1/: the root cannot be moved\n"), err


def test_a_full_ext_filesystem_is_exit_6_naming_the_partition(image,
                                                              tmp_path):
    img, _ = image
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * MiB))       # the ext4 holds 16 MiB
    before = img.read_bytes()
    err = one_line_error(imgx("put", big, f"{img}:1/"), 6)
    assert f"{img}: put: no space left in partition 1 (" in err, err
    assert f"(blocks ran out: {big} needs about 20480 blocks of 1.0 KiB " \
        f"(20.0 MiB), " in err and "each file takes" not in err, err
    assert img.read_bytes() == before


@pytest.fixture(scope="module")
def fat_image(tmp_path_factory):
    """A table-less FAT disk (its one filesystem is IMAGE:/)."""
    tmp = tmp_path_factory.mktemp("edit-fat")
    disk = tmp / "fat.img"
    with open(disk, "wb") as f:
        f.truncate(8 * MiB)
    run("mkfs.fat", disk)
    image = tmp / "fat.rdi"
    capture_disk(disk, image)
    return image


def test_messages_on_a_table_less_image_have_one_colon(fat_image, tmp_path):
    image = tmp_path / "fat.rdi"
    shutil.copy(fat_image, image)
    for args in (["rm", f"{image}:/nonexist"],
                 ["mv", f"{image}:/nonexist", "/x"],
                 ["mkdir", f"{image}:/no/such"]):
        err = one_line_error(imgx(*args), 3)
        assert f"{image}::" not in err and f"{image}:/no" in err, err
    note = tmp_path / "note.txt"
    note.write_text("n\n")
    ok("put", note, f"{image}:/")
    err = one_line_error(imgx("put", note, f"{image}:/"), 3)
    assert err == (f"imgx: error: {image}:/note.txt: already exists "
                   f"(--force replaces it)\n")
    note.write_text("m\n")
    ok("put", "--force", note, f"{image}:/")
    assert ok("cat", f"{image}:/note.txt") == b"m\n"


def test_no_free_inode_is_exit_6_for_every_edit(tmp_path):
    """An ext4 made with 16 inodes, all in use: mkdir and put find no room
    and say so with exit 6, as the exit-code table says."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(5):
        (tree / f"f{i}").write_text(f"{i}\n")
    fs = tmp_path / "fs.img"
    with open(fs, "wb") as f:
        f.truncate(4 * MiB)
    run("mkfs.ext4", "-q", "-F", "-N", "16", "-d", tree, fs)
    disk = tmp_path / "disk.img"
    partitioned_disk(disk, [(fs, "ext4")])
    img = tmp_path / "full.rdi"
    capture_disk(disk, img)
    small = tmp_path / "small.txt"
    small.write_text("s\n")
    before = img.read_bytes()
    for args in (["mkdir", f"{img}:1/d"], ["put", small, f"{img}:1/"]):
        err = one_line_error(imgx(*args), 6)
        assert f"{img}: {args[0]}: no space left in partition 1 (no free " \
               f"inodes" in err, err
    assert img.read_bytes() == before


def test_put_of_dot_lands_under_the_directory_name(image, tmp_path):
    img, _ = image
    src = tmp_path / "here"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    result = subprocess.run([sys.executable, "-m", "imgx", "put", ".",
                             f"{img}:1/"], cwd=src, capture_output=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr.decode()
    assert ok("cat", f"{img}:1/here/a.txt") == b"a\n"


def test_mv_of_a_directory_into_itself_is_refused_before_work(image):
    img, _ = image
    err = one_line_error(imgx("mv", f"{img}:1/t2", "/t2/deeper"), 3)
    assert err.endswith(f"{img}:1/t2: a directory cannot be moved into "
                        f"itself (t2/deeper)\n"), err


def test_a_symlink_for_a_filesystem_without_symlinks_is_refused(fat_image,
                                                                tmp_path):
    """FAT (mcopy followed it, copying what it points at) and exFAT (the
    writer failed with 'Function not implemented (a)') hold no symlinks:
    a source holding one is refused by name before any work."""
    image = tmp_path / "fat.rdi"
    shutil.copy(fat_image, image)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a\n")
    os.symlink("a", src / "l")
    before = image.read_bytes()
    err = one_line_error(imgx("put", src, f"{image}:/"), 3)
    assert re.fullmatch(rf"imgx: error: {re.escape(str(src / 'l'))}: is a "
                        rf"symlink, and fat1[26] holds none; nothing "
                        rf"changed\n", err), err
    assert image.read_bytes() == before
    exfat = tmp_path / "exfat.img"
    with open(exfat, "wb") as f:
        f.truncate(8 * MiB)
    run("mkfs.exfat", exfat)
    capture_disk(exfat, tmp_path / "exfat.rdi")
    err = one_line_error(imgx("put", src, f"{tmp_path / 'exfat.rdi'}:/"), 3)
    assert f"{src / 'l'}: is a symlink, and exfat holds none" in err, err


def _small_ext(tmp_path, *mkfs):
    fs = tmp_path / "fs.img"
    with open(fs, "wb") as f:
        f.truncate(4 * MiB)
    run("mkfs.ext4", "-q", "-F", "-b", "4096", *mkfs, fs)
    disk = tmp_path / "disk.img"
    partitioned_disk(disk, [(fs, "ext4")])
    img = tmp_path / "small.rdi"
    capture_disk(disk, img)
    return img


def _many(tmp_path, count):
    many = tmp_path / "many"
    many.mkdir()
    for i in range(count):
        (many / f"f{i}").write_bytes(b"x")
    return many


def test_many_small_files_say_the_blocks_ran_out(tmp_path):
    """5000 one-byte files (4.9 KiB of data) need 5000 blocks: the message
    says the blocks ran out, not that 4.9 KiB did not fit in megabytes."""
    img = _small_ext(tmp_path, "-N", "8192")
    many = _many(tmp_path, 5000)
    err = one_line_error(imgx("put", many, f"{img}:1/many"), 6)
    found = re.search(r"no space left in partition 1 \(blocks ran out: "
                      rf"{re.escape(str(many))} needs about (\d+) blocks of "
                      r"4\.0 KiB \(.*\), (\d+) were free \(.*\); each file "
                      r"takes whole blocks and each directory at least one, "
                      r"so 4\.9 KiB of data takes that much\); image "
                      r"unchanged", err)
    assert found, err
    assert int(found[1]) >= 5001 > int(found[2]), err


def test_a_tree_with_more_entries_than_free_inodes_says_so(tmp_path):
    img = _small_ext(tmp_path, "-N", "64")
    many = _many(tmp_path, 100)
    err = one_line_error(imgx("put", many, f"{img}:1/many"), 6)
    found = re.search(r"no space left in partition 1 \(inodes ran out: "
                      rf"{re.escape(str(many))} needs 101 \(one per file, "
                      r"directory and symlink\), (\d+) were free\)", err)
    assert found and int(found[1]) < 101, err


# What mtools loads besides its libraries: the code pages (iconv's gconv
# modules) and the C.UTF-8 locale it runs in (diskimage.fs.fat.mtools).
MTOOLS_TREES = ("/usr/lib/x86_64-linux-gnu/gconv", "/usr/lib/locale/C.utf8")


def _put_without_tools(image, tmp_path, target, kept=(), trees=()):
    """imgx put of the frozen toolkit in a root without the field's tools
    (tests/toolless.py), the image copied in: (result, image in the root,
    its bytes before)."""
    root = toolless_root(tmp_path, kept, trees)
    inside = os.path.join(root, "img.rdi")
    shutil.copy(image, inside)
    with open(os.path.join(root, "new.txt"), "w") as f:
        f.write("new\n")
    before = open(inside, "rb").read()
    result = run_in(root, "imgx", "put", "/new.txt", f"/img.rdi:{target}",
                    text=False)
    return result, inside, before


def test_a_missing_tool_is_exit_10_naming_its_package(image, tmp_path):
    """Where losetup, e2fsck ... are not installed, put stops with the
    missing tool and its Debian package, exit 10; image unchanged.  Before
    issue 12: exit 1, 'losetup: No such file or directory', from the
    clean-up, which hid the cause."""
    img, _ = image
    result, inside, before = _put_without_tools(img, tmp_path, "1/new.txt")
    err = one_line_error(result, 10)
    assert err == ("imgx: error: /img.rdi: put failed, image unchanged: "
                   "losetup: not installed (it comes with the Debian "
                   "package mount)\n"), err
    assert open(inside, "rb").read() == before


def test_a_missing_checker_tool_on_fat_says_the_image_is_unchanged(
        fat_image, tmp_path):
    """On FAT the edit itself needs no loop device (mtools, kept here); the
    check after it does.  Where losetup is not installed, that check's
    missing tool is reported like the edit's own: what failed, image
    unchanged, the tool and its package, exit 10.  Before: the bare
    'losetup: not installed' without the image or the state it was left
    in."""
    result, inside, before = _put_without_tools(
        fat_image, tmp_path, "/new.txt", kept=("mcopy", "mdir"),
        trees=MTOOLS_TREES)
    err = one_line_error(result, 10)
    assert err == ("imgx: error: /img.rdi: put failed, image unchanged: "
                   "losetup: not installed (it comes with the Debian "
                   "package mount)\n"), err
    assert open(inside, "rb").read() == before
