"""Fuzz target ext: the ext2/3/4 used-map reader (diskimage/fs/ext: superblock,
group descriptors, block and inode bitmaps, the inode walk), asked as
capture asks it: detect, identity, the used map, its description and every
run (tests/fuzz/fsvolume.py); then the map of the kind the image metadata
names.

Input: a sparse volume (tests/fuzz/fsvolume.py). Seeds: ext2, ext3 and ext4
volumes made by mke2fs -d (tests/fuzz/seeds_fs.py)."""

from tests.fuzz.fsvolume import Volume, map_volume

MAX_LEN = 1 << 20


def one_input(data: bytes) -> None:
    volume = Volume(data)
    map_volume(volume.read, volume.size, volume.hint)
