"""XFS: detected by its superblock (`XFSB` at 0, and the sizes libblkid
checks: foreign.xfs_sane), named with the label and
UUID `blkid -p` shows; used blocks are all but the free extents of each
allocation group's free space btree (used, over the headers in super and
the log check in log); grown with xfs_growfs on a temporary mount, never
shrunk, a new UUID with xfs_admin (tools)."""

from ..foreign import text, uuid, xfs_sane
from ..record import Filesystem
from . import tools
from .used import open_volume


def _detect(read):
    return "xfs" if read(0, 4) == b"XFSB" and xfs_sane(read) else None


def _identity(read):
    # xfs_sb, big-endian: sb_uuid at 32, sb_fname[12] at 108
    sb = read(0, 120)
    return text(sb[108:120]), uuid(sb[32:48])


FILESYSTEM = Filesystem(kinds=("xfs",), family="xfs", title="XFS",
                        detect=_detect,
                        identity=_identity, open_map=open_volume,
                        check=("xfs_repair", "-n"),
                        grow=tools.grow,
                        resize_note="grown with xfs_growfs on a "
                                    "temporary mount",
                        new_ids=tools.new_ids,
                        tools=("xfs_repair", "xfs_growfs", "xfs_admin",
                               "mount", "umount", "losetup"),
                        sector_free=False, browse="xfs", edit="mount",
                        case_sensitive=True,
                        posix=True,
                        mbr_type="83",
                        gpt_type="0FC63DAF-8483-4772-8E79-3D69D8477DE4")
