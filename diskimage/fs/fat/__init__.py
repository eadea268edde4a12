"""FAT12, FAT16 and FAT32: detected by the boot sector's BPB as libblkid
detects them (docs/filesystems/detection.md),
used clusters from the FAT (used), grown here (grow), shrunk here
(shrink, with the FAT's chains in chains), a new volume ID
written here (tools), reached inside with mtools (mtools)."""

from ..foreign import is_bitlocker
from ..record import Filesystem
from . import tools
from .bpb import BPB32
from .shrink import min_size
from .used import open_volume

# libblkid's vfat magics: a type or OEM string (offset, bytes), else only
# the jump instruction or the boot signature, which need a closer look
STRINGS = ((0x52, b"MSWIN"), (0x52, b"FAT32   "), (0x36, b"MSDOS"),
           (0x36, b"FAT16   "), (0x36, b"FAT12   "), (0x36, b"FAT     "))
# FAT12, FAT16 and FAT32 by libblkid's cluster-count limits
FAT12_MAX, FAT16_MAX, FAT32_MAX = 0xFF4, 0xFFF4, 0x0FFFFFF6


# NTFS and exFAT boot sectors carry these OEM names and are never FAT,
# whatever lies where a FAT keeps its type string.
NOT_FAT = (b"NTFS    ", b"EXFAT   ")


def _pow2(n):
    return n > 0 and n & (n - 1) == 0


def detect(read):
    """fat12, fat16 or fat32 by libblkid's vfat rules (its VERSION), not by
    the type string alone: a boot sector with any of its magics whose BPB
    is sane (FATs, reserved sectors, media byte, cluster and sector sizes,
    a cluster count the FAT type can hold), and not BitLocker's."""
    head = read(0, 512)
    if len(head) < 512 or head[3:11] in NOT_FAT:
        return None
    if not any(head[at:at + len(magic)] == magic for at, magic in STRINGS):
        if head[0] not in (0xEB, 0xE9) and head[510:512] != b"\x55\xaa":
            return None
        if head[510:512] != b"\x55\xaa" or \
                head[0x36:0x3E] in (b"JFS     ", b"HPFS    "):
            return None
    b = BPB32.unpack(head[:BPB32.size])
    sector = b.BPB_BytsPerSec
    if not b.BPB_NumFATs or not b.BPB_RsvdSecCnt or \
            not (b.BPB_Media >= 0xF8 or b.BPB_Media == 0xF0) or \
            not _pow2(b.BPB_SecPerClus) or not _pow2(sector) or \
            not 512 <= sector <= 4096:
        return None
    sectors = b.BPB_TotSec16 or b.BPB_TotSec32
    fat_length = b.BPB_FATSz16 or b.BPB_FATSz32
    root_sectors = (b.BPB_RootEntCnt * 32 + sector - 1) // sector
    # unsigned 32-bit, as libblkid counts: a BPB past its own end wraps
    clusters = ((sectors - (b.BPB_RsvdSecCnt + fat_length * b.BPB_NumFATs +
                            root_sectors)) & 0xFFFFFFFF) // b.BPB_SecPerClus
    if not b.BPB_FATSz16 and b.BPB_FATSz32:
        limit = FAT32_MAX
    else:
        limit = FAT16_MAX if clusters > FAT12_MAX else FAT12_MAX
    if clusters > limit or is_bitlocker(read):
        return None
    if b.BPB_FATSz16:
        return "fat12" if clusters < FAT12_MAX else \
            "fat16" if clusters < FAT16_MAX else None
    if not b.BPB_FATSz32:
        return None            # libblkid: vfat with no VERSION
    if b.BPB_FSInfo:
        info = read(b.BPB_FSInfo * sector, 488)
        if info[:4] not in (b"RRaA", b"RRdA", bytes(4)) or \
                info[484:488] not in (b"rrAa", bytes(4)):
            return None
    return "fat32"


FILESYSTEM = Filesystem(
    kinds=("fat12", "fat16", "fat32"), family="fat", title="FAT12/16/32",
    aliases=("fat", "vfat", "msdos"), detect=detect, open_map=open_volume,
    check=("fsck.fat", "-n"), grow=tools.grow, shrink=tools.shrink,
    min_size=min_size, new_ids=tools.new_ids,
    tools=("fsck.fat", "mcopy"),
    browse="fat", edit="mtools", links=False,
    mbr_type={"fat12": "1", "fat16": "e", "fat32": "c"},
    gpt_type="EBD0A0A2-B9E5-4433-87C0-68B99B26B9C7")
