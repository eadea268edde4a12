"""The findings of the filesystem fuzz targets, each replayed for the
error it must now give (tests/fuzz/crashes/imgx/: made by hostile_fs.py,
or found by atheris and by in-place flips of the seeds).  Unlike the
replay, a hang is a BaseException here: diskimage.fs.damage turns any
Exception raised inside a reader into CorruptImageError, a timer's too.
"""

import os
import signal

import pytest

from diskimage.errors import DiskImageError, UnsupportedError
from diskimage.fs.read import Filesystem
from tests.fuzz import fsvolume
from tests.fuzz.targets_index import CRASHES

HANG = 10


class Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise Hang(f"over {HANG} s")


FINDINGS = {
    "hostile-fat16-dir-chain-loop": (
        DiskImageError, "/many: damaged filesystem: the FAT chain from "
                        "cluster 22 loops back to cluster 22"),
    "hostile-fat32-dir-chain-loop": (
        DiskImageError, "/many: damaged filesystem: the FAT chain from "
                        "cluster 60 loops back to cluster 60"),
    "hostile-fat16-file-chain-loop": (
        DiskImageError, "the FAT chain from cluster 12 loops back"),
    "hostile-exfat-root-chain-loop": (
        DiskImageError, "the exFAT cluster chain from cluster 5 loops back "
                        "to cluster 5"),
    "flip-ext3-indirect-huge-size": (
        UnsupportedError, "bytes mapped by indirect blocks"),
    "timeout-c00ced10d9dfb3ff5355c89289cc5c37c650f385": (
        DiskImageError, "damaged filesystem"),
    "flip-ntfs-missing-stream-d75d4025c875": (
        DiskImageError, "/etc/conf.d: damaged filesystem: No such stream on "
                        "record <MftRecord 65#1>"),
    "flip-ntfs-missing-stream-5d4859d92db8": (
        DiskImageError, "damaged filesystem: No such stream on record "
                        "<MftRecord 73#1>"),
    "timeout-fd4874562b339b633c3d36c8b4db5f2724314d9e": (
        DiskImageError, "symlink inode 2 claims 2419916832 bytes, more than "
                        "a symlink holds (4096)"),
    "timeout-7ca6bfce890675bb7c29c7751b4cd03c3c128422": (
        DiskImageError, "x.rdi:1: damaged filesystem: directory inode 2 "
                        "claims 4294963712 bytes, more than its volume "
                        "holds (4194304)"),
    "fuzzed-ext2-block-past-volume": (
        DiskImageError, "x.rdi:1: damaged filesystem: inode 19: its block "
                        "map names data block 2415749903, past the end "
                        "of the volume (4096 blocks)"),
}


def browse_all(volume):
    fs = Filesystem(volume.file(), volume.hint, "x.rdi:1:")
    for rel, node in fs.walk(fs.root):
        if node.kind == "file":
            fs.read(node)


@pytest.mark.parametrize("name", sorted(FINDINGS))
def test_finding(name):
    cls, text = FINDINGS[name]
    with open(os.path.join(CRASHES, "imgx", name), "rb") as f:
        volume = fsvolume.Volume(f.read())
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG)
    try:
        with pytest.raises(cls) as caught:
            browse_all(volume)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert text in str(caught.value)


def test_sparse_file_larger_than_its_volume():
    """timeout-c8b78f49...: an ext2 file of 1.3 GB on a 4 MiB volume whose
    map holds one data block and holes (a sparse file, not damage): its
    map is two runs, not the 1.27 million dissect listed before each
    open (diskimage.fs.ext.blockmap), and it reads as its size says."""
    name = "timeout-c8b78f499f6f0ecbf9405749d353171449587edc"
    with open(os.path.join(CRASHES, "imgx", name), "rb") as f:
        volume = fsvolume.Volume(f.read())
    fs = Filesystem(volume.file(), volume.hint, "x.rdi:1:")
    node, _ = fs.resolve("etc/hostname")
    assert node.size == 1308622853
    stream = fs.open(node)
    head = stream.read(1 << 20)
    assert len(head) == 1 << 20 and not any(head[1024:])
    assert node.handle.dataruns() == [(294, 1), (None, 1277952)]
