"""Recognising a filesystem by its own superblock, not by a partition type.

Only the signatures live here; the used-block maps of each filesystem are
their own modules.
"""

import importlib
import struct

from .extsuper import SUPERBLOCK, ext_kind
from .usedmap import UsedMap

# (name, offset of the signature in the volume, signature bytes)
SIGNATURES = [
    ("ntfs", 3, b"NTFS    "),
    ("exfat", 3, b"EXFAT   "),
    ("fat32", 0x52, b"FAT32   "),
    ("fat16", 0x36, b"FAT16   "),
    ("fat12", 0x36, b"FAT12   "),
    ("swap", 4096 - 10, b"SWAPSPACE2"),
    ("swap", 4096 - 10, b"SWAP-SPACE"),
    # recognised so that `info` names them; copied whole (no map reader)
    ("luks", 0, b"LUKS\xba\xbe"),
    ("lvm2", 512, b"LABELONE"),
    ("xfs", 0, b"XFSB"),
    ("btrfs", 0x10040, b"_BHRfS_M"),
]
EXT_MAGIC_OFFSET = 1024 + 0x38
EXT_MAGIC = 0xEF53


def detect(read, start, size):
    """The filesystem at [start, start+size) of a disk read by
    read(offset, length): "ext2", "ext3", "ext4", "ext4dev", "jbd", "fat12",
    "fat16", "fat32", "ntfs", "exfat", "swap", "luks", "lvm2", "xfs",
    "btrfs", or None when nothing is recognised.  The ext family is named
    by libblkid's feature rules (extsuper.ext_kind), as `blkid -p` does."""
    head = read(start, min(size, 0x10040 + 8))
    if len(head) >= 1024 + 0x64:
        magic, = struct.unpack_from("<H", head, EXT_MAGIC_OFFSET)
        if magic == EXT_MAGIC:
            sb = SUPERBLOCK.unpack(head[1024:2048].ljust(1024, b"\0"))
            kind = ext_kind(sb.s_feature_compat, sb.s_feature_incompat,
                            sb.s_feature_ro_compat, sb.s_flags)
            if kind:
                return kind
    boot_signature = head[510:512] == b"\x55\xaa"
    for name, offset, signature in SIGNATURES:
        if head[offset:offset + len(signature)] == signature:
            if name.startswith("fat") and not boot_signature:
                continue
            return name
    return None


# Which module reads each filesystem's allocation maps.
MAP_MODULES = {"ext2": "ext", "ext3": "ext", "ext4": "ext",
               "ext4dev": "ext", "fat12": "fat",
               "fat16": "fat", "fat32": "fat", "exfat": "exfat",
               "ntfs": "ntfs", "swap": None}
SWAP_PAGE_SIZES = (4096, 8192, 16384, 65536)


def _swap_map(read, size):
    for page in SWAP_PAGE_SIZES:
        tail = read(page - 10, 10)
        if tail in (b"SWAPSPACE2", b"SWAP-SPACE"):
            header = read(0, 1024 + 16 + 16)
            uuid = header[1036:1052].hex()
            label = header[1052:1068].split(b"\0")[0].decode(
                "utf-8", "replace")
            uuid = "-".join((uuid[:8], uuid[8:12], uuid[12:16], uuid[16:20],
                             uuid[20:]))
            return UsedMap("swap", page, size, page, [(0, page)], label, uuid)
    return None


def used_map(read, start, size, kind):
    """The UsedMap of the `kind` filesystem at [start, start+size) of a disk
    read by read(offset, length), or None when there is no reader for it.
    Raises MapError when the filesystem's maps cannot be trusted."""
    def volume_read(offset, length):
        length = max(0, min(length, size - offset))
        return read(start + offset, length) if length else b""

    if kind not in MAP_MODULES:
        return None
    if MAP_MODULES[kind] is None:
        return _swap_map(volume_read, size)
    module = importlib.import_module(f".{MAP_MODULES[kind]}", __package__)
    return module.open_volume(volume_read, size)
