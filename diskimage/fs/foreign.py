"""Volumes that are recognised so that `info` names them (and their label
and UUID, read as `blkid -p` reads them), but have no used-block map: they
are copied whole, zero chunks skipped, and capture records why ("encrypted
(LUKS2)").  LUKS and BitLocker, recognised by libblkid's rules
(docs/filesystems/detection.md); and the helpers the records of such
volumes share (fs/xfs, fs/btrfs and fs/lvm started here)."""

import struct
import zlib

from .record import Filesystem


def uuid(raw):
    """16 bytes as a UUID's text."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def text(raw):
    """A NUL-padded name as text."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def signature(kind, offset, magic):
    """detect(read) that names `kind` when `magic` is at `offset`."""
    def detect(read):
        return kind if read(offset, len(magic)) == magic else None
    return detect


# --- LUKS ---------------------------------------------------------------
# The binary header (cryptsetup's LUKS1 and LUKS2 on-disk format
# documents), big-endian: magic[6] at 0, version u16 at 6; LUKS1 uuid[40]
# at 168; LUKS2 label[48] at 24, uuid[40] at 168, hdr_offset u64 at 256.
# LUKS2 keeps a second header ("SKUL\xba\xbe") at one of these offsets.
LUKS_MAGIC, LUKS2_SECONDARY = b"LUKS\xba\xbe", b"SKUL\xba\xbe"
LUKS2_SECONDARY_AT = (0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000,
                      0x100000, 0x200000, 0x400000)


def _luks_header(read):
    """(offset, header) of the LUKS header libblkid accepts: the primary
    (a LUKS2 one saying it is at 0), else a LUKS2 secondary saying it is
    where it was found; or None."""
    header = read(0, 264)
    if header[:6] == LUKS_MAGIC and len(header) == 264:
        version, = struct.unpack_from(">H", header, 6)
        if version != 2 or struct.unpack_from(">Q", header, 256)[0] == 0:
            return 0, header
    for offset in LUKS2_SECONDARY_AT:
        header = read(offset, 264)
        if header[:6] == LUKS2_SECONDARY and len(header) == 264 and \
                struct.unpack_from(">Q", header, 256)[0] == offset:
            return offset, header
    return None


def _luks_detect(read):
    return "crypto_LUKS" if _luks_header(read) else None


def _luks(read):
    found = _luks_header(read)
    if found is None:
        return None
    header = found[1]
    version, = struct.unpack_from(">H", header, 6)
    label = text(header[24:72]) if version == 2 else ""
    return label, text(header[168:208])


def _luks_whole(read):
    found = _luks_header(read)
    if found is None:
        return "encrypted (LUKS)"
    offset, header = found
    version, = struct.unpack_from(">H", header, 6)
    where = f", only its second header at byte {offset}" if offset else ""
    return f"encrypted (LUKS{version}{where})"


# --- BitLocker ------------------------------------------------------------
# A boot sector that looks like NTFS or FAT32 (libyal's "BitLocker Drive
# Encryption (BDE) format"): jump and OEM name at 0 (11 bytes) say which
# version; Windows 7 keeps the first FVE metadata block's offset as a u64
# (little-endian) at 176, To Go at 440; that block starts "-FVE-FS-".
BDE_VISTA = b"\xeb\x52\x90-FVE-FS-"
BDE_WIN7 = b"\xeb\x58\x90-FVE-FS-"
BDE_TOGO = b"\xeb\x58\x90MSWIN4.1"
BDE_FVE = b"-FVE-FS-"


def is_bitlocker(read):
    """The volume is BitLocker's, by libblkid's rule (which keeps its FAT
    and NTFS probes off such a volume)."""
    head = read(0, 512)
    if head[:11] == BDE_VISTA:
        return True
    at = {BDE_WIN7: 176, BDE_TOGO: 440}.get(head[:11])
    if at is None or len(head) < at + 8:
        return False
    offset, = struct.unpack_from("<Q", head, at)
    return bool(offset) and offset % 64 == 0 and \
        read(offset, len(BDE_FVE)) == BDE_FVE


def _bitlocker_detect(read):
    return "BitLocker" if is_bitlocker(read) else None


# --- XFS superblock sanity (fs/xfs's detect) ---------------------------
# xfs_sb at 0, big-endian (xfs_format.h): sb_blocksize u32 at 4, sb_dblocks
# u64 at 8, sb_rextsize u32 at 80, sb_agblocks u32 at 84, sb_agcount u32
# at 88, sb_sectsize u16 at 102, sb_inodesize u16 at 104, then the u8s
# sb_blocklog 120, sb_sectlog 121, sb_inodelog 122, sb_inopblog 123 and
# sb_imax_pct 127.
_XFS_SB = struct.Struct(">4xIQ64xIII10xHH14xBBBB3xB")


def xfs_sane(read):
    """The checks libblkid (v2.38.1) makes of an XFS superblock beyond its
    magic: sizes and their logs agree and are in range, the AG count and
    the data blocks fit each other."""
    sb = read(0, _XFS_SB.size)
    if len(sb) < _XFS_SB.size:
        return False
    (blocksize, dblocks, rextsize, agblocks, agcount, sectsize, inodesize,
     blocklog, sectlog, inodelog, inopblog, imax_pct) = _XFS_SB.unpack(sb)
    return (agcount > 0 and 9 <= sectlog <= 15 and sectsize == 1 << sectlog
            and 9 <= blocklog <= 16 and blocksize == 1 << blocklog
            and 8 <= inodelog <= 11 and inodesize == 1 << inodelog
            and blocklog - inodelog == inopblog
            and 4096 <= rextsize * blocksize <= 1 << 30
            and imax_pct <= 100 and dblocks != 0
            and (agcount - 1) * agblocks + 64 <= dblocks
            <= agcount * agblocks)


# --- LVM2 label sanity (fs/lvm's detect) ------------------------------
# lvm2's label_header (lib/label/label.h), little-endian, in one of the
# first four sectors: id "LABELONE" at 0, sector_xl u64 at 8 (the sector's
# own number), crc_xl u32 at 16 (over bytes 20-511), offset_xl u32 at 20,
# type "LVM2 001" at 24.  libblkid looks for the type in sector 1, 0, 2,
# then 3, and judges the label of the first it finds.
LVM2_TYPE_SECTORS = (1, 0, 2, 3)


def lvm2_crc(data):
    """lvm2's calc_crc: CRC-32 (zlib's polynomial, reflected) from
    0xf597a6cf, without the final inversion."""
    return zlib.crc32(data, 0xF597A6CF ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def lvm2_label_sane(read):
    """libblkid's LVM2 label checks: a label whose type is "LVM2 001",
    whose id is LABELONE, whose sector_xl is its own sector and whose CRC
    holds."""
    for sector in LVM2_TYPE_SECTORS:
        if read(sector * 512 + 24, 8) == b"LVM2 001":
            break
    else:
        return False
    base = sector // 2 * 2              # libblkid reads the KiB holding it
    pair = read(base * 512, 1024)
    for number in (base, base + 1):
        label = pair[(number - base) * 512:(number - base + 1) * 512]
        if label[:8] == b"LABELONE" and len(label) == 512:
            sector_xl, crc_xl = struct.unpack_from("<QI", label, 8)
            return sector_xl == number and lvm2_crc(label[20:]) == crc_xl
    return False


FILESYSTEMS = (
    Filesystem(kinds=("crypto_LUKS",), family="luks", title="LUKS",
               detect=_luks_detect, identity=_luks, whole=_luks_whole),
    Filesystem(kinds=("BitLocker",), family="bitlocker", title="BitLocker",
               detect=_bitlocker_detect,
               whole=lambda read: "encrypted (BitLocker)"),
)
