"""XFS: detected by its superblock (`XFSB` at 0), named with the label and
UUID `blkid -p` shows.  No used-block map yet: copied whole, zero chunks
skipped."""

from ..foreign import signature, text, uuid
from ..record import Filesystem


def _identity(read):
    # xfs_sb, big-endian: sb_uuid at 32, sb_fname[12] at 108
    sb = read(0, 120)
    return text(sb[108:120]), uuid(sb[32:48])


FILESYSTEM = Filesystem(kinds=("xfs",), family="xfs", title="XFS",
                        detect=signature("xfs", 0, b"XFSB"),
                        identity=_identity)
