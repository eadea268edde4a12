"""Volumes that are recognised so that `info` names them (and their label
and UUID, read as `blkid -p` reads them), but have no used-block map: they
are copied whole, zero chunks skipped.  XFS, btrfs, LUKS and LVM2."""

import struct

from .record import Filesystem


def _uuid(raw):
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _text(raw):
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _signature(kind, offset, magic):
    def detect(read):
        return kind if read(offset, len(magic)) == magic else None
    return detect


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


FILESYSTEMS = (
    Filesystem(kinds=("crypto_LUKS",), family="luks", title="LUKS",
               detect=_signature("crypto_LUKS", 0, b"LUKS\xba\xbe"),
               identity=_luks),
    Filesystem(kinds=("LVM2_member",), family="lvm", title="LVM2",
               detect=_signature("LVM2_member", 512, b"LABELONE"),
               identity=_lvm2),
    Filesystem(kinds=("xfs",), family="xfs", title="XFS",
               detect=_signature("xfs", 0, b"XFSB"), identity=_xfs),
    Filesystem(kinds=("btrfs",), family="btrfs", title="btrfs",
               detect=_signature("btrfs", 0x10040, b"_BHRfS_M"),
               identity=_btrfs),
)
