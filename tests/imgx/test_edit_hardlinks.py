"""imgx put keeps the hard links of the tree it copies (issue 11 round 3
item 3): link(2) at the second name, inside the image, on ext4 (mkfs.ext4
-d) and NTFS (mkntfs, ntfs-3g); on FAT, which holds none, they are copies
and a warning says so.  Checked by getting the tree back out (imgx get
makes hard links of one inode again)."""

import os

import pytest

from tests.fsmaps import run
from tests.imgx_helpers import capture_disk, imgx
from tests.shared import copy

MiB = 1 << 20


def _own(tmp_path):
    own = tmp_path / "own"
    (own / "sub").mkdir(parents=True)
    (own / "f").write_text("a\n")
    os.link(own / "f", own / "hl")
    os.link(own / "f", own / "sub" / "hl2")
    (own / "single").write_text("s\n")
    return own


def _put_and_get(img, where, own, tmp_path):
    result = imgx("put", own, f"{img}:{where}own")
    assert result.returncode == 0, result.stderr.decode()
    out = tmp_path / "out"
    got = imgx("get", "-R", f"{img}:{where}own", out)
    assert got.returncode == 0, got.stderr.decode()
    inodes = {rel: os.stat(out / rel).st_ino
              for rel in ("f", "hl", "sub/hl2", "single")}
    return result.stderr.decode(), inodes, out


@pytest.fixture
def ext_golden(edit_golden_ro):
    return edit_golden_ro[0]


def test_put_keeps_hard_links_on_ext(ext_golden, tmp_path):
    img = tmp_path / "lab.rdi"
    copy(ext_golden, img)
    err, inodes, out = _put_and_get(img, "1/", _own(tmp_path), tmp_path)
    assert err == ""
    assert inodes["f"] == inodes["hl"] == inodes["sub/hl2"]
    assert inodes["single"] != inodes["f"]
    assert (out / "hl").read_text() == "a\n"


def test_put_keeps_hard_links_on_ntfs(ntfs_golden, tmp_path):
    img = tmp_path / "ntfs.rdi"
    copy(ntfs_golden[0], img)
    err, inodes, _ = _put_and_get(img, "1/", _own(tmp_path), tmp_path)
    assert err == ""
    assert inodes["f"] == inodes["hl"] == inodes["sub/hl2"]


def test_put_onto_fat_says_hard_links_became_copies(tmp_path):
    disk = tmp_path / "fat.img"
    with open(disk, "wb") as f:
        f.truncate(8 * MiB)
    run("mkfs.fat", disk)
    img = tmp_path / "fat.rdi"
    capture_disk(disk, img)
    own = _own(tmp_path)
    err, inodes, out = _put_and_get(img, "/", own, tmp_path)
    assert err == (f"imgx: warning: {own}: 2 hard links of the tree made "
                   f"into copies (fat12 holds no hard links)\n"), err
    assert (out / "sub" / "hl2").read_text() == "a\n"


def test_put_onto_exfat_says_hard_links_became_copies(tmp_path):
    disk = tmp_path / "exfat.img"
    with open(disk, "wb") as f:
        f.truncate(8 * MiB)
    run("mkfs.exfat", disk)
    img = tmp_path / "exfat.rdi"
    capture_disk(disk, img)
    own = _own(tmp_path)
    err, inodes, out = _put_and_get(img, "/", own, tmp_path)
    assert err.startswith(f"imgx: warning: {own}: 2 hard links of the tree "
                          f"made into copies (exfat: "), err
    assert err.count("\n") == 1, err
    assert (out / "hl").read_text() == "a\n"
