"""ext2, ext3 and ext4: detected by the superblock's magic and named by
libblkid's feature rules (super.ext_kind), used blocks from the block
bitmaps (used), changed with e2fsprogs (tools)."""

import struct

from ..record import Filesystem
from . import tools
from .super import EXT4_SUPER_MAGIC, SUPERBLOCK, SUPERBLOCK_OFFSET, ext_kind
from .used import open_volume

MAGIC_OFFSET = SUPERBLOCK_OFFSET + 0x38


def detect(read):
    """"ext2", "ext3", "ext4", "ext4dev" or "jbd" (an external journal), as
    `blkid -p` names them, or None."""
    head = read(0, SUPERBLOCK_OFFSET + SUPERBLOCK.size)
    if len(head) < SUPERBLOCK_OFFSET + 0x64:
        return None
    magic, = struct.unpack_from("<H", head, MAGIC_OFFSET)
    if magic != EXT4_SUPER_MAGIC:
        return None
    sb = SUPERBLOCK.unpack(head[SUPERBLOCK_OFFSET:].ljust(SUPERBLOCK.size,
                                                          b"\0"))
    return ext_kind(sb.s_feature_compat, sb.s_feature_incompat,
                    sb.s_feature_ro_compat, sb.s_flags)


FILESYSTEMS = (
    Filesystem(
        kinds=("ext2", "ext3", "ext4"), family="ext", title="ext2/3/4",
        detect=detect, open_map=open_volume,
        check=("e2fsck", "-fn"), verdict=tools.verdict,
        grow=tools.resize, shrink=tools.resize, new_ids=tools.new_ids,
        tools=("e2fsck", "resize2fs", "tune2fs"),
        sector_free=True, browse="ext", edit="mount", case_sensitive=True,
        posix=True, mbr_type="83",
        gpt_type="0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
    # The test-filesystem flag (tune2fs -E test_fs): its map is read, but
    # nothing else is done to it.
    Filesystem(kinds=("ext4dev",), family="ext", title="ext4dev",
               open_map=open_volume, case_sensitive=True,
               posix=True),
    # An external journal: recognised, copied whole.
    Filesystem(kinds=("jbd",), family="ext", title="ext journal device"),
)
