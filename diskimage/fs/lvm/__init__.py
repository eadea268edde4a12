"""LVM2 physical volumes: detected by the label (`LABELONE` in one of the
first four sectors, blkid -p reads sector 1), named with the PV UUID
`blkid -p` shows.  The used map (used.py) reads the label and metadata
areas (label.py), the text metadata (metadata.py) and the volume group
(volumes.py), and maps each logical volume's own filesystem
(docs/filesystems/lvm.md)."""

import struct

from ..foreign import lvm2_label_sane, text
from ..record import Filesystem
from .grow import grow, plan_note
from .tools import new_ids
from .used import open_volume


def _detect(read):
    # libblkid's label checks (type, id, sector 0-3, CRC): foreign.py
    return "LVM2_member" if lvm2_label_sane(read) else None


def _identity(read):
    # label_header at sector 1: offset_xl (u32 at 20) to pv_header, whose
    # pv_uuid is 32 characters; blkid groups them 6-4-4-4-4-4-6
    label = read(512, 32)
    offset, = struct.unpack_from("<I", label, 20)
    raw = text(read(512 + offset, 32))
    groups, at = [], 0
    for width in (6, 4, 4, 4, 4, 4, 6):
        groups.append(raw[at:at + width])
        at += width
    return "", "-".join(groups)


FILESYSTEM = Filesystem(kinds=("LVM2_member",), family="lvm", title="LVM2",
                        detect=_detect,
                        identity=_identity, open_map=open_volume,
                        grow=grow, new_ids=new_ids,
                        tools=("pvresize", "lvextend", "pvchange",
                               "vgchange"),
                        plan_note=plan_note,
                        browse="lvm", case_sensitive=True, posix=True,
                        mbr_type="8e",
                        gpt_type="E6D6D379-F507-44C2-A23C-238F2A3DF928")
