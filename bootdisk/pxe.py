"""A network-boot directory, to be served by TFTP as it is:

    vmlinuz, initrd.img            kernel and environment
    pxelinux.0, ldlinux.c32        BIOS PXE (pxelinux, syslinux-common)
    pxelinux.cfg/default           its menu, timing out to the job entry
    bootx64.efi                    UEFI PXE: a standalone GRUB with efinet
                                   and tftp, whose grub.cfg loads vmlinuz
                                   and initrd.img from the TFTP server
    bundle.json                    the environment's description, as a
                                   bundle's (bundle.py: vmlinuz, initrd.img)

With --secure-boot also the signed chain (secureboot.py), for DHCP boot
file shimx64.efi:

    shimx64.efi, mmx64.efi         shim-signed
    grubx64.efi                    Debian's signed network GRUB
                                   (grubnetx64.efi.signed), loaded by shim
    grub/grub.cfg                  its menu ($prefix is /grub on the server)

DHCP must name pxelinux.0 (BIOS) or bootx64.efi (UEFI) as the boot file;
QEMU's user network does it with ``-netdev user,tftp=DIR,bootfile=...``.
An existing, non-empty DIR is refused without --force; each file is written
as NAME.partial (diskimage.host.partial) and renamed; a symlink at
DIR/pxelinux.cfg (or DIR/grub) is refused, never followed.
"""

import os
import tempfile

from . import bundle as bundles, initramfs, media, secureboot
from .media import INITRD_NAME, KERNEL_NAME

#: Written after the rest, so a directory cut short does not boot.
BOOT_FILES = ("pxelinux.0", "bootx64.efi", "shimx64.efi")

GRUB_TFTP_ROOT = ("if [ -z \"$net_default_server\" ]; then net_bootp; fi\n"
                  "set root=(tftp,$net_default_server)")


def build_pxe(spec, out, timeout=3, force=False, secure_boot=False):
    """Fill the directory `out`.  Returns the initramfs manifest.
    `secure_boot`: also the signed chain (module docstring); an unsigned
    kernel is refused first (InputError)."""
    out = os.fspath(out)
    subdirs = ("pxelinux.cfg", "grub") if secure_boot else ("pxelinux.cfg",)
    bundles.check_dir(out, force, subdirs)
    pxelinux = media.loader("pxelinux.0")
    ldlinux = media.loader("ldlinux.c32")
    if secure_boot:
        secureboot.check_spec_kernel(spec)
        chain = secureboot.chain("grubnetx64.efi")
    initrd, manifest, spec = initramfs.build_bytes(spec)
    menu = media.grub_cfg(spec.cmdline, timeout, f"/{KERNEL_NAME}",
                          f"/{INITRD_NAME}", GRUB_TFTP_ROOT)
    with tempfile.TemporaryDirectory(prefix="bootdisk-pxe-") as scratch:
        grub = os.path.join(scratch, "bootx64.efi")
        media.grub_standalone(grub, menu, scratch, net=True)
        files = {
            KERNEL_NAME: media.read(spec.kernel),
            INITRD_NAME: initrd,
            "pxelinux.0": media.read(pxelinux),
            "ldlinux.c32": media.read(ldlinux),
            "pxelinux.cfg/default": media.syslinux_cfg(
                spec.cmdline, timeout, KERNEL_NAME, INITRD_NAME),
            "bootx64.efi": media.read(grub),
        }
    if secure_boot:
        files.update({name: media.read(path) for name, path in chain.items()})
        files[secureboot.NET_CONFIG] = menu
    info = bundles.describe(manifest, spec.cmdline, {
        name: files[name] for name in (KERNEL_NAME, INITRD_NAME)},
        secure_boot)
    files[bundles.BUNDLE_JSON] = bundles.encode(info)
    # The boot files last: a directory cut short does not boot half-made.
    manifest["warnings"] = bundles.write_dir(
        out, files, last=BOOT_FILES + (bundles.BUNDLE_JSON,),
        subdirs=subdirs)
    manifest["bundle"] = info
    manifest["secure_boot"] = secure_boot
    return manifest
