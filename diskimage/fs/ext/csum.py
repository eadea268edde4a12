"""The checksums of ext superblocks and group descriptors, as the kernel's
fs/ext4/super.c computes them (ext4_superblock_csum,
ext4_group_desc_csum): crc32c (Castagnoli, reflected polynomial 0x82F63B78,
no final inversion: the kernel's ext4_chksum) with metadata_csum, crc16
(polynomial 0xA001 reflected, e2fsprogs' ext2fs_crc16) with uninit_bg
(gdt_csum).  crc32c is diskimage/fs/crc32c.py's (in C where google-crc32c
is installed); crc16 is table-driven here: a few dozen bytes per group."""

import struct

from ..crc32c import update as crc32c

INCOMPAT_CSUM_SEED = 0x2000
BG_CHECKSUM_OFFSET = 0x1E           # bg_checksum in the group descriptor
SB_CHECKSUM_OFFSET = 0x3FC          # s_checksum in the superblock


def _table(poly):
    out = []
    for n in range(256):
        for _ in range(8):
            n = n >> 1 ^ (poly if n & 1 else 0)
        out.append(n)
    return out


_CRC16 = _table(0xA001)


def crc16(crc, data):
    table = _CRC16
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ crc >> 8
    return crc


def csum_seed(sb):
    """The metadata_csum seed: s_checksum_seed with csum_seed, else the
    crc32c of the UUID."""
    if sb.s_feature_incompat & INCOMPAT_CSUM_SEED:
        return sb.s_checksum_seed
    return crc32c(0xFFFFFFFF, sb.s_uuid)


def superblock_csum(raw):
    """s_checksum as it should be for the 1024 superblock bytes `raw`."""
    return crc32c(0xFFFFFFFF, raw[:SB_CHECKSUM_OFFSET])


def desc_csum(sb, metadata_csum, seed, group, raw):
    """bg_checksum as it should be for descriptor bytes `raw` (the whole
    s_desc_size, or 32 bytes without 64bit) of `group`."""
    number = struct.pack("<I", group)
    head, tail = raw[:BG_CHECKSUM_OFFSET], raw[BG_CHECKSUM_OFFSET + 2:]
    if metadata_csum:
        crc = crc32c(crc32c(crc32c(seed, number), head), b"\0\0")
        return crc32c(crc, tail) & 0xFFFF
    crc = crc16(crc16(crc16(0xFFFF, sb.s_uuid), number), head)
    return crc16(crc, tail)
