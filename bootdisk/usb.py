"""A USB disk image: an MBR (syslinux's mbr.bin boot code and one active
FAT32 partition from 1 MiB, type 0x0c, written by sfdisk), the FAT32 made by
mkfs.fat and filled by mtools, syslinux installed for BIOS and a standalone
GRUB as EFI/BOOT/BOOTX64.EFI for UEFI:

    /boot/vmlinuz, /boot/initrd.img, /boot/bootdisk-<id>.id (GRUB's stamp)
    /boot/syslinux/ldlinux.sys, ldlinux.c32, syslinux.cfg
    /EFI/BOOT/BOOTX64.EFI

With --secure-boot (secureboot.py) the UEFI part is the signed chain
instead, the firmware's fallback path loading shim:

    /EFI/BOOT/BOOTX64.EFI    shim (shimx64.efi.signed)
    /EFI/BOOT/grubx64.efi    Debian's signed GRUB (grubx64.efi.signed)
    /EFI/BOOT/mmx64.efi      MokManager (mmx64.efi.signed)
    /EFI/debian/grub.cfg     the menu, where that GRUB looks ($prefix)

Nothing is mounted: mkfs.fat, syslinux and mcopy all work on the image
file at the partition's offset.  Written as NAME.partial, then renamed.
"""

import os
import tempfile

from diskimage.errors import (InputError, MissingToolError, ToolError,
                              UsageError)
from diskimage.fs.fat.mtools import MTOOLS_ENV
from diskimage.sizes import format_size
from diskimage.host import tools
from diskimage.host.partial import refuse_existing

from . import initramfs, media, secureboot
from .media import INITRD_PATH, KERNEL_PATH

MiB = 1 << 20
PART_START = MiB
MIN_SIZE = 48 * MiB   # FAT32 with 512-byte clusters needs 65525 of them
MBR_CODE = 440
#: What only a --secure-boot image holds (besides shim as BOOTX64.EFI).
SECURE_FILES = ("/EFI/BOOT/grubx64.efi", "/EFI/BOOT/mmx64.efi",
                secureboot.DISK_CONFIG)


def _layout_size(payload):
    """Default image size: the files, a quarter more, 8 MiB of room."""
    size = PART_START + payload + payload // 4 + 8 * MiB
    return max(MIN_SIZE, -(-size // MiB) * MiB)


def build_usb(spec, out, size=None, timeout=3, force=False,
              secure_boot=False):
    """Write the USB image to `out`.  Returns the initramfs manifest.
    `secure_boot`: the signed chain for UEFI (an unsigned kernel is
    refused first, InputError)."""
    refuse_existing(out, force)
    if secure_boot:
        secureboot.check_spec_kernel(spec)
    warnings = []
    # The partial first: a second writer is refused before the work.
    with initramfs.partial_output(out, force, warnings) as f:
        manifest = _build_usb(spec, f, f"{out}.partial", size, timeout,
                              secure_boot)
    manifest["warnings"] = warnings
    return manifest


def _build_usb(spec, f, partial, size, timeout, secure_boot):
    mbr = media.loader("mbr.bin")
    chain = secureboot.chain("grubx64.efi") if secure_boot else None
    initrd, manifest, spec = initramfs.build_bytes(spec)
    kernel_path, initrd_path = KERNEL_PATH, INITRD_PATH
    with tempfile.TemporaryDirectory(prefix="bootdisk-usb-") as scratch:
        if secure_boot:
            stamp = media.new_stamp()
            efi = _signed_efi(chain, scratch, media.grub_cfg(
                spec.cmdline, timeout, kernel_path, initrd_path,
                media.search_stamp(stamp)))
        else:
            grub, stamp = media.medium_grub(spec.cmdline, timeout, scratch)
            efi = {"/EFI/BOOT/BOOTX64.EFI": grub}
        files = {
            kernel_path: spec.kernel,
            initrd_path: _scratch_file(scratch, "initrd.img", initrd),
            stamp: _scratch_file(scratch, "stamp", b"bootdisk\n"),
            "/boot/syslinux/syslinux.cfg": _scratch_file(
                scratch, "syslinux.cfg", media.syslinux_cfg(
                    spec.cmdline, timeout, kernel_path, initrd_path)),
            **efi,
        }
        payload = sum(os.path.getsize(p) for p in files.values())
        needed = _layout_size(payload)
        if size is None:
            size = needed
        elif size < needed:
            raise UsageError(f"--size: {format_size(size)} is too small; "
                             f"the files need {needed // MiB} MiB")
        size = size // MiB * MiB
        f.truncate(size)
        f.flush()
        # The tools work on the partial by its name: ours, and locked.
        _write_image(partial, mbr, files)
    manifest["image_size"] = size
    manifest["secure_boot"] = secure_boot
    return manifest


def _signed_efi(chain, scratch, config):
    """{path on the medium: host file} of the signed chain (module
    docstring)."""
    files = {f"/EFI/BOOT/{name}": path for name, path in chain.items()}
    files["/EFI/BOOT/BOOTX64.EFI"] = files.pop("/EFI/BOOT/shimx64.efi")
    files[secureboot.DISK_CONFIG] = _scratch_file(scratch, "grub.cfg",
                                                  config)
    return files


def _scratch_file(scratch, name, data):
    path = os.path.join(scratch, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _write_image(path, mbr, files):
    size = os.path.getsize(path)
    table = f"label: dos\nstart={PART_START // 512}, type=c, bootable\n"
    proc = tools.run(["sfdisk", "--quiet", "--wipe=always", path],
                     input=table, check=False)
    if proc.returncode != 0:
        raise media.ToolFailed(f"sfdisk failed: {proc.stderr.strip()}")
    with open(mbr, "rb") as f:
        code = f.read(MBR_CODE)
    with open(path, "r+b") as f:     # the partial, made by partial_file
        f.write(code)
    part_kib = (size - PART_START) // 1024
    media.run_tool(["mkfs.fat", "-F", "32", "-s", "1", "-n", "BOOTDISK",
                    "--offset", str(PART_START // 512), path, str(part_kib)])
    image = f"{path}@@{PART_START}"
    directories = ["/boot", "/boot/syslinux", "/EFI", "/EFI/BOOT"]
    if secureboot.DISK_CONFIG in files:
        directories.append(os.path.dirname(secureboot.DISK_CONFIG))
    for directory in directories:
        media.run_tool(["mmd", "-i", image, f"::{directory}"])
    media.run_tool(["syslinux", "--offset", str(PART_START), "--install",
                    "--directory", "/boot/syslinux", path])
    for dest, src in files.items():
        media.run_tool(["mcopy", "-o", "-i", image, src, f"::{dest}"])


def _partition_start(path):
    with open(path, "rb") as f:
        mbr = f.read(512)
    if len(mbr) < 512 or mbr[510:512] != b"\x55\xaa":
        raise InputError(f"{path}: no MBR; not a USB image made by bootdisk")
    entry = mbr[446:462]
    if entry[4] not in (0x0B, 0x0C):
        raise InputError(f"{path}: partition 1 is not FAT32; not a USB "
                         f"image made by bootdisk")
    return int.from_bytes(entry[8:12], "little") * 512


def read_boot_files(path):
    """(kernel bytes, initramfs bytes, {boot file: size}) of a USB image."""
    image = f"{path}@@{_partition_start(path)}"
    found = {}
    for name in (KERNEL_PATH, INITRD_PATH,
                 "/boot/syslinux/syslinux.cfg", "/boot/syslinux/ldlinux.sys",
                 "/EFI/BOOT/BOOTX64.EFI"):
        try:
            found[name] = tools.run(
                ["mtype", "-i", image, f"::{name}"], text=False,
                env=MTOOLS_ENV).stdout
        except MissingToolError:
            raise
        except (OSError, ToolError):
            raise InputError(f"{path}: no {name} in its FAT partition; not "
                             f"a USB image made by bootdisk") from None
    for name in SECURE_FILES:          # only on a --secure-boot image
        try:
            found[name] = tools.run(
                ["mtype", "-i", image, f"::{name}"], text=False,
                env=MTOOLS_ENV).stdout
        except ToolError:
            pass
    kernel = found.pop(KERNEL_PATH)
    initrd = found.pop(INITRD_PATH)
    return kernel, initrd, {name: len(data) for name, data in found.items()}
