"""filesystems.detect names the ext family as `blkid -p` does (libblkid's
feature rules: a journal device is jbd, any feature ext3 lacks makes ext4,
a journal alone makes ext3), on volumes made by mke2fs with every variant of
the round-trip tests and the edge cases the old rule got wrong; and the
used-block map agrees."""

import os

import pytest

from diskimage.fs.ext import used as ext
from diskimage.fs import registry as filesystems
from tests.fsmaps import MiB, blkid, run

pytestmark = pytest.mark.needs("mke2fs", "tune2fs", "blkid")

VARIANTS = {
    # name: mke2fs command (the round trips' variants, then edge cases)
    "ext2-1k": ["mkfs.ext2", "-b", "1024"],
    "ext3-2k": ["mkfs.ext3", "-b", "2048"],
    "ext4-1k": ["mkfs.ext4", "-b", "1024"],
    "ext4-2k": ["mkfs.ext4", "-b", "2048"],
    "ext4-4k": ["mkfs.ext4", "-b", "4096"],
    "ext4-no-flex_bg": ["mkfs.ext4", "-O", "^flex_bg"],
    "ext4-no-64bit-no-csum": ["mkfs.ext4", "-O", "^64bit,^metadata_csum"],
    "ext4-bigalloc": ["mkfs.ext4", "-O", "bigalloc", "-C", "16384"],
    "ext2-huge_file": ["mkfs.ext2", "-O", "huge_file"],
    "ext2-uninit_bg": ["mkfs.ext2", "-O", "uninit_bg"],
    "ext2-dir_index": ["mkfs.ext2", "-O", "dir_index"],
    "ext2-extents": ["mkfs.ext2", "-O", "extent"],
    "ext3-metadata_csum": ["mkfs.ext3", "-O", "metadata_csum"],
    "ext3-flex_bg": ["mkfs.ext3", "-O", "flex_bg"],
    "ext4-no-journal": ["mkfs.ext4", "-O", "^has_journal"],
    "ext4-bare": ["mkfs.ext4", "-O", "^has_journal,^extent,^flex_bg,"
                  "^huge_file,^dir_nlink,^extra_isize,^64bit,"
                  "^metadata_csum"],
    "journal-device": ["mke2fs", "-O", "journal_dev", "-b", "4096"],
}


def make(path, command, size=16 * MiB):
    with open(path, "wb") as f:
        f.truncate(size)
    run(*command, "-q", "-F", path)
    return path


def reader(path):
    fd = os.open(path, os.O_RDONLY)
    return lambda offset, length: os.pread(fd, length, offset)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_detect_agrees_with_blkid(tmp_path, variant):
    image = make(tmp_path / "fs.img", VARIANTS[variant])
    expected = blkid(image).get("TYPE")
    size = os.path.getsize(image)
    assert filesystems.detect(reader(image), 0, size) == expected
    if expected != "jbd":
        assert ext.open_volume(reader(image), size).kind == expected


def test_test_filesystem_flag_is_ext4dev(tmp_path):
    image = make(tmp_path / "fs.img", ["mkfs.ext4"])
    run("tune2fs", "-E", "test_fs", image)
    expected = blkid(image).get("TYPE")
    assert expected == "ext4dev"
    assert filesystems.detect(reader(image), 0, os.path.getsize(image)) == \
        expected
