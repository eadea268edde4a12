"""NTFS: detected by its OEM ID, used clusters from $Bitmap (used, over the
MFT reader in mft), changed with ntfs-3g's tools (tools)."""

from ..record import Filesystem
from . import tools
from .used import open_volume


def detect(read):
    return "ntfs" if read(3, 8) == b"NTFS    " else None


FILESYSTEM = Filesystem(
    kinds=("ntfs",), family="ntfs", title="NTFS", detect=detect,
    open_map=open_volume, check=("ntfsfix", "-n"),
    grow=tools.resize, shrink=tools.resize, new_ids=tools.new_ids,
    tools=("ntfsfix", "ntfsresize", "ntfslabel", "ntfs-3g"),
    browse="ntfs", edit="ntfs-3g",
    mbr_type="7", gpt_type="EBD0A0A2-B9E5-4433-87C0-68B99B26B9C7")
