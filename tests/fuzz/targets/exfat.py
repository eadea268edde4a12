"""Fuzz target exfat: the exFAT used-map reader (diskimage/fs/exfat.py: boot
region checksum, root directory, allocation bitmap, up-case table), asked as
capture asks it: detect, identity, the used map, its description and every
run (tests/fuzz/fsvolume.py); then the map of the kind the image metadata
names.

Input: a sparse volume (tests/fuzz/fsvolume.py). Seeds: exFAT volumes made
by mkfs.exfat and filled through exfat-fuse (tests/fuzz/seeds_fs.py)."""

from tests.fuzz.fsvolume import Volume, map_volume

MAX_LEN = 1 << 20


def one_input(data: bytes) -> None:
    volume = Volume(data)
    map_volume(volume.read, volume.size, volume.hint)
