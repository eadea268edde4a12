"""imgx's message for a damaged filesystem is one line naming what is
wrong and where (image, partition, path): no Python class name, no prefix
said twice, never empty.  Real volumes: an LVM2 PV whose metadata area
header lost its magic (dd over pvcreate's), and an ext4 (mkfs.ext4 -d)
cut short before its inode tables end."""

import os
import re

import pytest

from tests import lvmbuild
from tests.fsmaps import partitioned_disk, rdeploy, run
from tests.imgx_helpers import imgx, one_line_error

MiB = 1 << 20


def captured(tmp, fs_image, kind):
    disk = tmp / "disk.img"
    partitioned_disk(disk, [(fs_image, kind)])
    image = tmp / "disk.rdi"
    rdeploy("capture", disk, image, "--progress=none", "-q")
    return image


@pytest.mark.needs(*lvmbuild.LVM_TOOLS, "sfdisk", root=True)
def test_lvm_metadata_damage_is_said_once(tmp_path):
    pv = lvmbuild.make_pv(tmp_path, 16, [("root", 4, None)])
    # the metadata area header at 4096: its magic " LVM2 x[5A%r0N*>" at +4
    with open(pv.image, "r+b") as f:
        os.pwrite(f.fileno(), b"\0" * 16, 4096 + 4)
    image = captured(tmp_path, pv.image, "LVM2_member")
    err = one_line_error(imgx("ls", f"{image}:1"), 4)
    assert err == (f"imgx: error: {image}:1: damaged filesystem: LVM2 "
                   f"metadata area at 4096: bad magic\n"), err


@pytest.mark.needs("mkfs.ext4", "debugfs", "sfdisk", root=True)
@pytest.mark.parametrize("cut, args, where", [
    # inode tables end at 1.8 MiB: the root directory is cut off
    (300 * 1024, lambda i: ("ls", f"{i}:1"), lambda i: f"{i}:1"),
    # the inodes and the root are there, directory d2's block is not
    (None, lambda i: ("ls", f"{i}:1/d2/f19"), lambda i: f"{i}:1/d2"),
])
def test_a_truncated_ext4_says_what_and_where(tmp_path, cut, args, where):
    tree = tmp_path / "tree"
    for d in range(3):
        (tree / f"d{d}").mkdir(parents=True)
        for i in range(20):
            (tree / f"d{d}" / f"f{i}").write_bytes(os.urandom(3000))
    fs = tmp_path / "e.img"
    with open(fs, "wb") as f:
        f.truncate(32 * MiB)
    run("mkfs.ext4", "-q", "-F", "-d", tree, fs)
    if cut is None:     # where debugfs says d2's directory block is
        first = int(run("debugfs", "-R", "blocks /d2",
                        fs).stdout.split()[0])
        cut = first * 1024      # mke2fs's block size for 32 MiB
        assert cut > 2 * MiB
    with open(fs, "r+b") as f:
        f.truncate(cut)
    image = captured(tmp_path, fs, "ext4")
    err = one_line_error(imgx(*args(image)), 4)
    assert err.startswith(f"imgx: error: {where(image)}: damaged "
                          f"filesystem: "), err
    what = err.split("damaged filesystem: ", 1)[1].strip()
    assert what and "Error" not in what, err
    assert "past the end of the volume" in what, err


@pytest.mark.needs("mkfs.ext4", "debugfs", "sfdisk", root=True)
def test_a_file_whose_data_is_cut_off_is_damage_not_a_short_file(tmp_path):
    """The volume ends inside a file's data: cat and get fail (exit 4)
    naming the file and how much of it there is, instead of writing a
    shorter file and exiting 0."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big").write_bytes(os.urandom(4 * MiB))
    fs = tmp_path / "e.img"
    with open(fs, "wb") as f:
        f.truncate(32 * MiB)
    run("mkfs.ext4", "-q", "-F", "-b", "4096", "-d", tree, fs)
    blocks = [int(b) for b in run("debugfs", "-R", "blocks /big",
                                  fs).stdout.split()]
    assert blocks == list(range(blocks[0], blocks[0] + 1024)), blocks
    cut = (blocks[0] + 512) * 4096          # half the file's data
    with open(fs, "r+b") as f:
        f.truncate(cut)
    image = captured(tmp_path, fs, "ext4")
    cat = imgx("cat", f"{image}:1/big")
    err = one_line_error(cat, 4)
    # the partition ends at the next MiB after the cut (zeros up to it)
    got = re.fullmatch(rf"imgx: error: {re.escape(str(image))}:1/big: "
                       rf"damaged filesystem: its data ends after (\d+) of "
                       rf"its {4 * MiB} bytes \(the volume is cut short, or "
                       rf"an extent points past its end\)\n", err)
    assert got and 2 * MiB <= int(got[1]) < 4 * MiB, err
    dest = tmp_path / "out"
    one_line_error(imgx("get", f"{image}:1/big", dest), 4)
    assert not dest.exists() and not list(tmp_path.glob(".imgx-*"))
