"""Fuzz target btrfs: the btrfs used-map reader (diskimage/fs/btrfs:
superblock, sys_chunk_array, chunk tree, extent tree), asked as capture asks
it: detect, identity, the used map, its description and every run
(tests/fuzz/fsvolume.py); then the map of the kind the image metadata names.

Input: a sparse volume (tests/fuzz/fsvolume.py). Seeds: btrfs volumes made
by mkfs.btrfs --rootdir (tests/fuzz/seeds_fs.py)."""

from tests.fuzz.fsvolume import Volume, map_volume

MAX_LEN = 1 << 20


def one_input(data: bytes) -> None:
    volume = Volume(data)
    map_volume(volume.read, volume.size, volume.hint)
