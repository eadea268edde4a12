"""NTFS: detected by its boot sector and MFT as libblkid detects it, used clusters from $Bitmap (used, over the
MFT reader in mft), changed with ntfs-3g's tools (tools)."""

import struct

from ..record import Filesystem
from . import tools
from .used import open_volume


# The boot sector's fields libblkid checks (offset, struct code), little-
# endian: BPB bytes per sector, sectors per cluster, the DOS fields NTFS
# leaves zero, clusters per MFT record (signed), total sectors, the MFT's
# and its mirror's first cluster.
_BOOT = struct.Struct("<3x8sHBHBHHxHxxxxxxxxI4xQQQb")
MAX_CLUSTER = 2 << 20


def detect(read):
    """ntfs by libblkid's rules: the OEM ID, a sane BPB (sector and cluster
    sizes, the DOS fields zero, the MFT record size), the MFT and its
    mirror inside the volume, and "FILE" records at $MFT and $Volume."""
    head = read(0, _BOOT.size)
    if len(head) < _BOOT.size:
        return None
    (oem, sector, spc, reserved, fats, root_entries, sectors16, fat_size,
     sectors32, total, mft, mirror, per_record) = _BOOT.unpack(head)
    if oem != b"NTFS    " or not 256 <= sector <= 4096 or \
            sector & (sector - 1):
        return None
    if spc in (1, 2, 4, 8, 16, 32, 64, 128):
        cluster = spc * sector
    elif 240 <= spc <= 249:
        cluster = (1 << (256 - spc)) * sector
    else:
        return None
    if cluster > MAX_CLUSTER or reserved or root_entries or sectors16 or \
            fat_size or sectors32 or fats:
        return None
    if not -30 <= per_record <= -9 and \
            per_record not in (1, 2, 4, 8, 16, 32, 64):
        return None
    record = per_record * cluster if per_record > 0 else 1 << -per_record
    clusters = total // (cluster // sector)
    if mft > clusters or mirror > clusters or record < 4:
        return None
    at = mft * cluster
    if read(at, 4) != b"FILE" or read(at + 3 * record, 4) != b"FILE":
        return None
    return "ntfs"


FILESYSTEM = Filesystem(
    kinds=("ntfs",), family="ntfs", title="NTFS", detect=detect,
    open_map=open_volume, check=("ntfsfix", "-n"),
    grow=tools.resize, shrink=tools.resize, new_ids=tools.new_ids,
    tools=("ntfsfix", "ntfsresize", "ntfslabel", "ntfs-3g"),
    browse="ntfs", edit="ntfs-3g",
    mbr_type="7", gpt_type="EBD0A0A2-B9E5-4433-87C0-68B99B26B9C7")
