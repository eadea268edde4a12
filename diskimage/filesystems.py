"""Recognising a filesystem by its own superblock, not by a partition type.

Only the signatures live here; the used-block maps of each filesystem are
their own modules.
"""

import struct

# (name, offset of the signature in the volume, signature bytes)
SIGNATURES = [
    ("ntfs", 3, b"NTFS    "),
    ("exfat", 3, b"EXFAT   "),
    ("fat32", 0x52, b"FAT32   "),
    ("fat16", 0x36, b"FAT16   "),
    ("fat12", 0x36, b"FAT12   "),
    ("swap", 4096 - 10, b"SWAPSPACE2"),
    ("swap", 4096 - 10, b"SWAP-SPACE"),
]
EXT_MAGIC_OFFSET = 1024 + 0x38
EXT_MAGIC = 0xEF53
# ext feature bits that tell ext2, ext3 and ext4 apart
EXT3_HAS_JOURNAL = 0x4
EXT4_INCOMPAT = 0x40 | 0x80 | 0x200  # extents, 64bit, flex_bg


def detect(read, start, size):
    """The filesystem at [start, start+size) of a disk read by
    read(offset, length): "ext2", "ext3", "ext4", "fat12", "fat16", "fat32",
    "ntfs", "exfat", "swap", or None when nothing is recognised."""
    head = read(start, min(size, 4096 + 1024))
    if len(head) >= 1024 + 0x68:
        magic, = struct.unpack_from("<H", head, EXT_MAGIC_OFFSET)
        if magic == EXT_MAGIC:
            compat, incompat = struct.unpack_from("<II", head, 1024 + 0x5C)
            if incompat & EXT4_INCOMPAT:
                return "ext4"
            return "ext3" if compat & EXT3_HAS_JOURNAL else "ext2"
    boot_signature = head[510:512] == b"\x55\xaa"
    for name, offset, signature in SIGNATURES:
        if head[offset:offset + len(signature)] == signature:
            if name.startswith("fat") and not boot_signature:
                continue
            return name
    return None
