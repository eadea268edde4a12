"""A network-boot directory, to be served by TFTP as it is:

    vmlinuz, initrd.img            kernel and environment
    pxelinux.0, ldlinux.c32        BIOS PXE (pxelinux, syslinux-common)
    pxelinux.cfg/default           its menu, timing out to the job entry
    bootx64.efi                    UEFI PXE: a standalone GRUB with efinet
                                   and tftp, whose grub.cfg loads vmlinuz
                                   and initrd.img from the TFTP server

DHCP must name pxelinux.0 (BIOS) or bootx64.efi (UEFI) as the boot file;
QEMU's user network does it with ``-netdev user,tftp=DIR,bootfile=...``.
An existing, non-empty DIR is refused without --force; each file is written
as NAME.partial (diskimage.host.partial) and renamed; a symlink at
DIR/pxelinux.cfg is refused, never followed.
"""

import os
import tempfile

from diskimage.errors import InputError

from . import initramfs, media
from .media import INITRD_NAME, KERNEL_NAME

GRUB_TFTP_ROOT = ("if [ -z \"$net_default_server\" ]; then net_bootp; fi\n"
                  "set root=(tftp,$net_default_server)")


def build_pxe(spec, out, timeout=3, force=False, secure_boot=False):
    """Fill the directory `out`.  Returns the initramfs manifest."""
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"{out}: exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out) and not force:
        raise InputError(f"{out}: exists and is not empty (give --force to "
                         f"write into it)")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise InputError(f"{parent}: no such directory for the output")
    cfg_dir = os.path.join(out, "pxelinux.cfg")
    if os.path.islink(cfg_dir):
        # makedirs would follow it, and the menu be written where it points
        raise InputError(f"{cfg_dir}: is a symlink; bootdisk writes only "
                         f"inside {out} (remove the link)")
    if os.path.lexists(cfg_dir) and not os.path.isdir(cfg_dir):
        raise InputError(f"{cfg_dir}: exists and is not a directory")
    pxelinux = media.loader("pxelinux.0")
    ldlinux = media.loader("ldlinux.c32")
    initrd, manifest, spec = initramfs.build_bytes(spec)
    with tempfile.TemporaryDirectory(prefix="bootdisk-pxe-") as scratch:
        grub = os.path.join(scratch, "bootx64.efi")
        media.grub_standalone(grub, media.grub_cfg(
            spec.cmdline, timeout, f"/{KERNEL_NAME}", f"/{INITRD_NAME}",
            GRUB_TFTP_ROOT), scratch, net=True)
        files = {
            KERNEL_NAME: media.read(spec.kernel),
            INITRD_NAME: initrd,
            "pxelinux.0": media.read(pxelinux),
            "ldlinux.c32": media.read(ldlinux),
            "pxelinux.cfg/default": media.syslinux_cfg(
                spec.cmdline, timeout, KERNEL_NAME, INITRD_NAME),
            "bootx64.efi": media.read(grub),
        }
    os.makedirs(out, exist_ok=True)
    try:
        os.mkdir(cfg_dir)            # never through a link made meanwhile
    except FileExistsError:
        if os.path.islink(cfg_dir) or not os.path.isdir(cfg_dir):
            raise InputError(f"{cfg_dir}: is a symlink or not a directory "
                             f"(made while bootdisk ran); nothing more "
                             f"written") from None
    # The boot files last: a directory cut short does not boot half-made.
    warnings = []
    for name in sorted(files, key=lambda n: n in ("pxelinux.0",
                                                  "bootx64.efi")):
        initramfs.write_atomic(os.path.join(out, name), files[name],
                               force=True, warnings=warnings)
    manifest["warnings"] = warnings
    return manifest
