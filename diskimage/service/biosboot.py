"""The BIOS boot codes bwpart knows in a disk's sector 0, and why the
others are refused (before any write).

bwpart never rewrites boot code.  On BIOS it boots the service partition
by changing what the disk's own boot code already honours:

    code (bytes 0-439 of LBA 0)  table  method        what arming changes
    ---------------------------  -----  ------------  ----------------------
    syslinux mbr.bin             MBR    active-flag   the active (0x80) flag
                                                      of the MBR entries:
                                                      the service partition
                                                      active, the others not
    syslinux gptmbr.bin          GPT    legacy-attr   GPT attribute bit 2
                                                      (legacy BIOS bootable)
                                                      on the service
                                                      partition only
    GRUB boot.img                any    refused       GRUB's core.img is
                                                      elsewhere; GRUB's own
                                                      next-entry is the way
    a Windows/MS-DOS MBR         any    refused
    all zero                     any    refused       no BIOS boot code
    anything else                any    refused       named by sha256 prefix

Both syslinux codes jump to the volume boot record of the partition
flagged, which on the service partition is syslinux's own (loaders.
install_bios).  They are matched by the sha256 of bytes 0-439 (the disk
signature at 440-443 and the table after it are not code) against the
files of the syslinux versions in Debian 12 (6.04~git20190206), and
against the host's /usr/lib/syslinux/mbr/ files when present.
"""

import hashlib
import os

from ..errors import TargetError

CODE_SIZE = 440
ACTIVE_FLAG, LEGACY_ATTR = "active-flag", "legacy-attr"
MBR_BIN, GPTMBR_BIN = "syslinux mbr.bin", "syslinux gptmbr.bin"
HOST_DIR = "/usr/lib/syslinux/mbr"

#: sha256 of bytes 0-439 -> (name, table kind it works with, method).
#: Debian 12, syslinux-common 3:6.04~git20190206.bf6db5b4+dfsg1-3.
KNOWN = {
    "4746f74bc9b9d3d579c41988a4a29bb7ac932ad1c70470ea779ea161eb799b64":
        (MBR_BIN, "mbr", ACTIVE_FLAG),
    "d2a9081727f91f4c38494e52cdeb86ebd9009fead17a739effbad4011c581d1f":
        (GPTMBR_BIN, "gpt", LEGACY_ATTR),
}
_HOST_FILES = {"mbr.bin": (MBR_BIN, "mbr", ACTIVE_FLAG),
               "gptmbr.bin": (GPTMBR_BIN, "gpt", LEGACY_ATTR)}
_TABLE_KINDS = {"mbr": "mbr", "dos": "mbr", "gpt": "gpt"}


def code_sha256(code):
    """sha256 of boot code as it sits in bytes 0-439 (a shorter file
    padded with zeros, as it is after dd onto a zeroed sector)."""
    return hashlib.sha256(code[:CODE_SIZE].ljust(CODE_SIZE, b"\0")
                          ).hexdigest()


def known_codes(host_dir=HOST_DIR):
    """KNOWN, with the host's syslinux mbr files added."""
    known = dict(KNOWN)
    for name, what in _HOST_FILES.items():
        path = os.path.join(host_dir, name)
        try:
            with open(path, "rb") as f:
                known[code_sha256(f.read(CODE_SIZE))] = what
        except OSError:
            pass
    return known


def identify(sector0, table_kind, host_dir=HOST_DIR):
    """(name, method) of the boot code in `sector0` (LBA 0, 512 bytes)
    for a disk with a `table_kind` ("mbr" or "gpt") table, or TargetError
    saying which code it is and why bwpart cannot boot the service
    partition through it."""
    if len(sector0) < CODE_SIZE:
        raise TargetError(f"sector 0 is {len(sector0)} bytes, not a disk's")
    kind = _TABLE_KINDS.get(table_kind)
    if kind is None:
        raise TargetError(f"table kind {table_kind!r}: not mbr or gpt")
    code = bytes(sector0[:CODE_SIZE])
    digest = code_sha256(code)
    found = known_codes(host_dir).get(digest)
    if found is not None:
        name, table, method = found
        if table != kind:
            other = {"mbr": "mbr.bin", "gpt": "gptmbr.bin"}[kind]
            raise TargetError(
                f"BIOS boot code is {name}, made for an {table.upper()} "
                f"disk, on a {kind.upper()} disk: it cannot boot a flagged "
                f"partition here (syslinux's {other} could); not changed")
        return name, method
    if not code.strip(b"\0"):
        raise TargetError("no BIOS boot code: this disk does not boot by "
                          "BIOS (bytes 0-439 of sector 0 are zero)")
    if b"GRUB " in code and (b"Geom" in code or b"Hard Disk" in code):
        raise TargetError(
            "BIOS boot code is GRUB's boot.img: bwpart does not change "
            "GRUB's boot; boot the service partition by UEFI "
            "(--firmware=uefi), or add a GRUB menu entry that chainloads it "
            "and use grub-reboot")
    if b"Invalid partition table" in code or \
            b"Missing operating system" in code:
        raise TargetError(
            "BIOS boot code is a Windows/MS-DOS MBR: bwpart does not "
            f"change it (sha256 {digest[:16]}); known: syslinux mbr.bin "
            "(MBR) and gptmbr.bin (GPT)")
    raise TargetError(
        f"BIOS boot code not known to bwpart (sha256 of bytes 0-439 "
        f"{digest[:16]}): it may not honour a flag; known: syslinux mbr.bin "
        f"(MBR disks) and gptmbr.bin (GPT disks)")
