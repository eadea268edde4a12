"""FAT12, FAT16 and FAT32: detected by the type string in the boot sector,
used clusters from the FAT (used), grown here (grow), shrunk here
(shrink, with the FAT's chains in chains), a new volume ID
written here (tools), reached inside with mtools (mtools)."""

from ..record import Filesystem
from . import tools
from .shrink import min_size
from .used import open_volume

# (kind, offset of the BS_FilSysType string, the string), in the order asked
SIGNATURES = (("fat32", 0x52, b"FAT32   "), ("fat16", 0x36, b"FAT16   "),
              ("fat12", 0x36, b"FAT12   "))


# NTFS and exFAT boot sectors carry these OEM names and are never FAT,
# whatever lies where a FAT keeps its type string.
NOT_FAT = (b"NTFS    ", b"EXFAT   ")


def detect(read):
    head = read(0, 0x5A)
    if read(510, 2) != b"\x55\xaa" or head[3:11] in NOT_FAT:
        return None
    for kind, offset, signature in SIGNATURES:
        if head[offset:offset + len(signature)] == signature:
            return kind
    return None


FILESYSTEM = Filesystem(
    kinds=("fat12", "fat16", "fat32"), family="fat", title="FAT12/16/32",
    aliases=("fat", "vfat", "msdos"), detect=detect, open_map=open_volume,
    check=("fsck.fat", "-n"), grow=tools.grow, shrink=tools.shrink,
    min_size=min_size, new_ids=tools.new_ids,
    tools=("fsck.fat", "mcopy"),
    browse="fat", edit="mtools", links=False,
    mbr_type={"fat12": "1", "fat16": "e", "fat32": "c"},
    gpt_type="EBD0A0A2-B9E5-4433-87C0-68B99B26B9C7")
