"""Volumes that are recognised so that `info` names them (and their label
and UUID, read as `blkid -p` reads them), but have no used-block map: they
are copied whole, zero chunks skipped.  LUKS; and the helpers the records
of such volumes share (fs/xfs, fs/btrfs and fs/lvm started here)."""

import struct

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


def _luks(read):
    # LUKS1 and LUKS2 binary headers: version at 6, uuid[40] at 168;
    # LUKS2 has label[48] at 24
    header = read(0, 208)
    version, = struct.unpack_from(">H", header, 6)
    label = text(header[24:72]) if version == 2 else ""
    return label, text(header[168:208])


FILESYSTEMS = (
    Filesystem(kinds=("crypto_LUKS",), family="luks", title="LUKS",
               detect=signature("crypto_LUKS", 0, b"LUKS\xba\xbe"),
               identity=_luks),
)
