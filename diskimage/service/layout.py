"""The constants that make a partition the service partition, and where
its parts lie (docs/bwpart.md, "Byte layout").

A service partition is P bytes, a multiple of 1 MiB and aligned to 1 MiB:

* ``[0, P - TAIL_SIZE)``: a FAT32 filesystem labelled :data:`FAT_LABEL`;
* ``[P - TAIL_SIZE, P)``: the raw tail (:mod:`diskimage.service.tail`):
  the record's second copy at +0 (:data:`RECORD_SIZE`), state slot A at
  +512 KiB and slot B at +768 KiB (:data:`STATE_SIZE` each).

Its table entry: on GPT the type :data:`GPT_TYPE` with the attributes
:data:`GPT_ATTRS` (required, hidden, no drive letter) and the name
:data:`GPT_NAME`; on MBR a primary of type :data:`MBR_TYPE` (hidden FAT32
LBA), never active at install.  The type alone is never trusted: only a
valid record in the tail makes it the service partition.
"""

MiB = 1 << 20
KiB = 1 << 10

#: "rdeploy service partition" (ours; GPT partition type GUID, lowercase).
GPT_TYPE = "b10262f8-ab25-4a01-be00-a2803022d1bf"
#: GPT attribute bits: 0 required (platform), 62 hidden, 63 no drive letter.
ATTR_REQUIRED = 1 << 0
ATTR_LEGACY_BOOT = 1 << 2       # set only while armed for BIOS on GPT
ATTR_HIDDEN = 1 << 62
ATTR_NO_LETTER = 1 << 63
GPT_ATTRS = ATTR_REQUIRED | ATTR_HIDDEN | ATTR_NO_LETTER
GPT_NAME = "rdeploy service"
#: MBR partition type: hidden FAT32 (LBA).
MBR_TYPE = 0x1C
MBR_TYPE_TEXT = "0x1c"          # as tables.partitions names MBR types

#: The raw tail at the partition's end, and its parts.
TAIL_SIZE = 1 * MiB
RECORD_OFFSET = 0               # within the tail
RECORD_SIZE = 512 * KiB
STATE_A_OFFSET = 512 * KiB
STATE_B_OFFSET = 768 * KiB
STATE_SIZE = 256 * KiB

#: Sizes of the whole partition (tail included).
ALIGN = 1 * MiB
MIN_SIZE = 256 * MiB
DEFAULT_SIZE = 1024 * MiB
#: An MBR counts sectors in 32 bits: nothing may end past this many bytes
#: (512-byte sectors).
MBR_LIMIT = (1 << 32) * 512

#: The FAT filesystem.
FAT_LABEL = "RDSERVICE"
RECORD_PATH = "/bwpart/install.json"
ENV_DIR = "/bwpart/env"
ENV_SLOT_PREFIX = "e"           # slots are /bwpart/env/e1, e2, ...
ENV_KERNEL = "vmlinuz"
ENV_INITRD = "initrd.img"
ENV_BUNDLE_INFO = "bundle.json"
SYSLINUX_DIR = "/syslinux"
SYSLINUX_FILES = ("ldlinux.sys", "ldlinux.c32", "syslinux.cfg")
SYSLINUX_CFG = "/syslinux/syslinux.cfg"
EFI_DIR = "/EFI/rdeploy"
EFI_SHIM = "/EFI/rdeploy/shimx64.efi"
EFI_GRUB = "/EFI/rdeploy/grubx64.efi"
EFI_MOK = "/EFI/rdeploy/mmx64.efi"
#: Where Debian's signed GRUB looks for its config ($prefix).
GRUB_CFG = "/EFI/debian/grub.cfg"
STORE_DIR = "/store"
#: Never written: the firmware's fallback scan would find it.
EFI_FALLBACK_DIR = "/EFI/BOOT"
#: Loader configs are written as X + NEW_SUFFIX, then renamed over X.
NEW_SUFFIX = ".new"

EFI_LOADERS = ("shim", "grub")
FIRMWARES = ("bios", "uefi")


def env_slot_dir(n):
    """The FAT directory of environment slot *n* (1, 2, ...)."""
    return f"{ENV_DIR}/{ENV_SLOT_PREFIX}{n}"


def fs_size(size):
    """The FAT area of a service partition of *size* bytes."""
    return size - TAIL_SIZE


def tail_offset(start, size):
    """The disk byte offset of the tail of a partition at *start*."""
    return start + size - TAIL_SIZE
