"""btrfs: detected by the magic of its superblock at 64 KiB, named with
the label and UUID `blkid -p` shows; used bytes from the chunk tree and the
extent tree of a single-device volume (used: super, chunks, tree); checked
with ``btrfs check --readonly``, grown and given a new UUID by btrfs-progs
(tools)."""

from ..foreign import signature, text, uuid
from ..record import Filesystem
from . import tools
from .used import open_volume


def _identity(read):
    # the superblock at 64 KiB: fsid at 0x20, label[256] at 0x12b
    sb = read(0x10000, 0x12b + 256)
    return text(sb[0x12b:]), uuid(sb[0x20:0x30])


FILESYSTEM = Filesystem(kinds=("btrfs",), family="btrfs", title="btrfs",
                        detect=signature("btrfs", 0x10040, b"_BHRfS_M"),
                        identity=_identity, open_map=open_volume,
                        check=("btrfs", "check", "--readonly"),
                        grow=tools.grow,
                        resize_note=tools.GROW_PLAN,
                        grow_floor=tools.GROW_FLOOR,
                        grow_floor_why=tools.GROW_FLOOR_WHY,
                        new_ids=tools.new_ids,
                        tools=("btrfs", "btrfstune", "mount", "umount",
                               "losetup"),
                        browse="btrfs", edit="mount", case_sensitive=True,
                        posix=True,
                        mbr_type="83",
                        gpt_type="0FC63DAF-8483-4772-8E79-3D69D8477DE4")
