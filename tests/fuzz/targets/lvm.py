"""Fuzz target lvm: the LVM2 PV used-map reader (diskimage/fs/lvm: label,
metadata areas, the text metadata, segments) and, through it, the maps of
its LVs' filesystems, and Linux swap (diskimage/fs/swap.py), asked as
capture asks it: detect, identity, the used map, its description and every
run (tests/fuzz/fsvolume.py); then the map of the kind the image metadata
names.

Input: a sparse volume (tests/fuzz/fsvolume.py). Seeds: a PV made by
pvcreate/vgcreate/lvcreate with an ext4 LV and a swap LV (mkswap), and a
swap area alone (tests/fuzz/seeds_fs.py)."""

from tests.fuzz.fsvolume import Volume, map_volume

MAX_LEN = 1 << 20


def one_input(data: bytes) -> None:
    volume = Volume(data)
    map_volume(volume.read, volume.size, volume.hint)
