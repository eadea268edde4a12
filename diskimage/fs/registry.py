"""Recognising a filesystem by its own superblock, not by a partition type.

Only the signatures live here; the used-block maps of each filesystem are
their own modules.
"""

import importlib
import struct

from .ext.super import SUPERBLOCK, ext_kind
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
    ("crypto_LUKS", 0, b"LUKS\xba\xbe"),
    ("LVM2_member", 512, b"LABELONE"),
    ("xfs", 0, b"XFSB"),
    ("btrfs", 0x10040, b"_BHRfS_M"),
]
EXT_MAGIC_OFFSET = 1024 + 0x38
EXT_MAGIC = 0xEF53


def detect(read, start, size):
    """The filesystem at [start, start+size) of a disk read by
    read(offset, length): "ext2", "ext3", "ext4", "ext4dev", "jbd", "fat12",
    "fat16", "fat32", "ntfs", "exfat", "swap", "crypto_LUKS", "LVM2_member",
    "xfs", "btrfs", or None when nothing is recognised.  The ext family is named
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
MAP_MODULES = {"ext2": "ext.used", "ext3": "ext.used", "ext4": "ext.used",
               "ext4dev": "ext.used", "fat12": "fat.used",
               "fat16": "fat.used", "fat32": "fat.used", "exfat": "exfat",
               "ntfs": "ntfs.used", "swap": None}
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


def _uuid(raw):
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _text(raw):
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _xfs(read):
    # xfs_sb, big-endian: sb_uuid at 32, sb_fname[12] at 108
    sb = read(0, 120)
    return _text(sb[108:120]), _uuid(sb[32:48])


def _btrfs(read):
    # the superblock at 64 KiB: fsid at 0x20, label[256] at 0x12b
    sb = read(0x10000, 0x12b + 256)
    return _text(sb[0x12b:]), _uuid(sb[0x20:0x30])


def _luks(read):
    # LUKS1 and LUKS2 binary headers: version at 6, uuid[40] at 168;
    # LUKS2 has label[48] at 24
    header = read(0, 208)
    version, = struct.unpack_from(">H", header, 6)
    label = _text(header[24:72]) if version == 2 else ""
    return label, _text(header[168:208])


def _lvm2(read):
    # label_header at sector 1: offset_xl (u32 at 20) to pv_header, whose
    # pv_uuid is 32 characters; blkid groups them 6-4-4-4-4-4-6
    label = read(512, 32)
    offset, = struct.unpack_from("<I", label, 20)
    raw = _text(read(512 + offset, 32))
    groups, at = [], 0
    for width in (6, 4, 4, 4, 4, 4, 6):
        groups.append(raw[at:at + width])
        at += width
    return "", "-".join(groups)


IDENTITIES = {"xfs": _xfs, "btrfs": _btrfs, "crypto_LUKS": _luks,
              "LVM2_member": _lvm2}


def identity(read, start, size, kind):
    """(label, uuid) of a `kind` volume with no used-block map, read from
    its own header as `blkid -p` reads them, or None when not known."""
    reader = IDENTITIES.get(kind)
    if reader is None:
        return None

    def volume_read(offset, length):
        length = max(0, min(length, size - offset))
        return read(start + offset, length).ljust(length, b"\0") \
            if length else b""

    try:
        return reader(volume_read)
    except struct.error:
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
