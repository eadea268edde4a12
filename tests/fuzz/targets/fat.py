"""Fuzz target fat: the FAT12/16/32 used-map reader (diskimage/fs/fat: BPB,
FSInfo, the FATs and their chains), asked as capture asks it: detect,
identity, the used map, its description and every run
(tests/fuzz/fsvolume.py); then the map of the kind the image metadata names.

Input: a sparse volume (tests/fuzz/fsvolume.py). Seeds: FAT12, FAT16 and
FAT32 volumes made by mkfs.fat and filled by mcopy (tests/fuzz/seeds_fs.py)."""

from tests.fuzz.fsvolume import Volume, map_volume

MAX_LEN = 1 << 20


def one_input(data: bytes) -> None:
    volume = Volume(data)
    map_volume(volume.read, volume.size, volume.hint)
