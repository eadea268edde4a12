"""A hybrid ISO made with pycdlib: boots as a CD and as a disk (USB stick),
under BIOS and UEFI, straight to the job.

    /BOOT/VMLINUZ, /BOOT/INITRD.IMG       kernel and environment
    /BOOT/BOOTDISK-<id>.ID                the stamp GRUB searches for
    /ISOLINUX/ISOLINUX.BIN, LDLINUX.C32,  El Torito BIOS entry (isolinux,
      ISOLINUX.CFG                        no emulation, boot info table)
    /EFI/EFIBOOT.IMG                      El Torito UEFI entry: a FAT image
                                          holding EFI/BOOT/BOOTX64.EFI, a
                                          standalone GRUB with its grub.cfg

isohybrid (pycdlib's, with the EFI partition) puts isolinux's MBR code and
a partition table in the first sectors, so the same file boots as a disk:
SeaBIOS through the MBR, OVMF through the EFI system partition.  Names carry
Rock Ridge and Joliet alternatives in lower case.

With --secure-boot (secureboot.py) the UEFI entry is the signed chain, the
firmware's fallback path loading shim, and Debian's signed CD GRUB finds
the ISO by /.disk/info and reads /boot/grub/grub.cfg there:

    /.DISK/INFO                           what gcdx64.efi searches for
    /BOOT/GRUB/GRUB.CFG                   the menu (it then searches the
                                          stamp, as the standalone GRUB)
    /EFI/EFIBOOT.IMG                      EFI/BOOT/BOOTX64.EFI (shim),
                                          EFI/BOOT/grubx64.efi (gcdx64),
                                          EFI/BOOT/mmx64.efi
"""

import io
import os
import tempfile

from diskimage.errors import InputError
from diskimage.host.partial import refuse_existing

from . import initramfs, media, secureboot
from .media import INITRD_PATH, KERNEL_PATH

EFI_IMAGE_KIB = 4096
PAD_SECTORS = 150


def _efi_image(path, files):
    """A small FAT image with `files` ({name in EFI/BOOT: host path})."""
    payload = sum(os.path.getsize(p) for p in files.values()) // 1024
    kib = max(EFI_IMAGE_KIB, payload + payload // 8 + 1024)
    media.run_tool(["mkfs.fat", "-C", "-n", "BOOTDISKEFI", path, str(kib)])
    media.run_tool(["mmd", "-i", path, "::/EFI", "::/EFI/BOOT"])
    for name, source in files.items():
        media.run_tool(["mcopy", "-i", path, source, f"::/EFI/BOOT/{name}"])


def _iso_name(path):
    """ISO9660 level-1-safe upper-case name: /BOOT/INITRD.IMG;1."""
    parts = path.strip("/").split("/")
    dirs = [p.upper().replace("-", "_").replace(".", "_") for p in parts[:-1]]
    last = parts[-1].upper().replace("-", "_")
    if last.startswith("."):        # /.disk: a d-character name, _DISK
        last = "_" + last[1:]
    if "." not in last:
        last += "."
    return "/" + "/".join(dirs + [last]) + ";1"


class _Layout:
    def __init__(self):
        self.dirs, self.files = [], []   # (path), (path, data)

    def add(self, path, data):
        parent = os.path.dirname(path)
        parts = parent.strip("/").split("/") if parent != "/" else []
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            if sub not in self.dirs:
                self.dirs.append(sub)
        self.files.append((path, data))


def build_iso(spec, out, timeout=3, force=False, secure_boot=False):
    """Write the hybrid ISO to `out`.  Returns the initramfs manifest."""
    refuse_existing(out, force)
    if secure_boot:
        secureboot.check_spec_kernel(spec)
    warnings = []
    # The partial first: a second writer is refused before the work.
    with initramfs.partial_output(out, force, warnings) as f:
        manifest = _build_iso(spec, f, timeout, secure_boot)
    manifest["warnings"] = warnings
    return manifest


def _build_iso(spec, f, timeout, secure_boot=False):
    import pycdlib

    isolinux = media.loader("isolinux.bin")
    ldlinux = media.loader("ldlinux.c32")
    chain = secureboot.chain("gcdx64.efi") if secure_boot else None
    initrd, manifest, spec = initramfs.build_bytes(spec)
    kernel, initrd_path = KERNEL_PATH, INITRD_PATH
    with tempfile.TemporaryDirectory(prefix="bootdisk-iso-") as scratch:
        layout = _Layout()
        efi_img = os.path.join(scratch, "efiboot.img")
        if secure_boot:
            stamp = media.new_stamp()
            chain["BOOTX64.EFI"] = chain.pop("shimx64.efi")
            _efi_image(efi_img, chain)
            layout.add(secureboot.CD_STAMP, f"bootdisk {stamp}\n".encode())
            layout.add(secureboot.CD_CONFIG, media.grub_cfg(
                spec.cmdline, timeout, kernel, initrd_path,
                media.search_stamp(stamp)))
        else:
            grub, stamp = media.medium_grub(spec.cmdline, timeout, scratch)
            _efi_image(efi_img, {"BOOTX64.EFI": grub})

        layout.add(kernel, media.read(spec.kernel))
        layout.add(initrd_path, initrd)
        layout.add(stamp, b"bootdisk\n")
        layout.add("/isolinux/isolinux.bin", media.read(isolinux))
        layout.add("/isolinux/ldlinux.c32", media.read(ldlinux))
        layout.add("/isolinux/isolinux.cfg", media.syslinux_cfg(
            spec.cmdline, timeout, kernel, initrd_path))
        layout.add("/efi/efiboot.img", media.read(efi_img))
        # pycdlib lays files out directory by directory, so this one comes
        # last: 150 sectors of zeros after the boot loader's files, like
        # genisoimage -pad.  Without them ISOLINUX, reading ahead past
        # ldlinux.c32 at the very end of the CD, gets a read error and hangs.
        layout.add("/isolinux/padding", bytes(PAD_SECTORS * 2048))

        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, vol_ident="BOOTDISK", joliet=3,
                rock_ridge="1.09", app_ident_str="bootdisk")
        for path in layout.dirs:
            iso.add_directory(_iso_name(path)[:-3].rstrip("."),
                              rr_name=os.path.basename(path),
                              joliet_path=path)
        for path, data in layout.files:
            iso.add_fp(io.BytesIO(data), len(data), _iso_name(path),
                       rr_name=os.path.basename(path), joliet_path=path)
        iso.add_eltorito(_iso_name("/isolinux/isolinux.bin"),
                         bootcatfile="/ISOLINUX/BOOT.CAT;1",
                         rr_bootcatname="boot.cat",
                         joliet_bootcatfile="/isolinux/boot.cat",
                         boot_load_size=4, boot_info_table=True)
        iso.add_eltorito(_iso_name("/efi/efiboot.img"),
                         bootcatfile="/ISOLINUX/BOOT.CAT;1",
                         efi=True, media_name="noemul")
        iso.add_isohybrid(efi=True)
        iso.write_fp(f)
        iso.close()
    manifest["secure_boot"] = secure_boot
    return manifest


def read_boot_files(path):
    """(kernel bytes, initramfs bytes, {boot file: size}) of an ISO."""
    import pycdlib
    from pycdlib.pycdlibexception import PyCdlibException

    iso = pycdlib.PyCdlib()
    try:
        iso.open(os.fspath(path))
    except PyCdlibException as exc:
        raise InputError(f"{path}: not a readable ISO ({exc})") from None
    found = {}
    try:
        for name in (KERNEL_PATH, INITRD_PATH,
                     "/isolinux/isolinux.bin", "/isolinux/isolinux.cfg",
                     "/efi/efiboot.img"):
            buffer = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(buffer, iso_path=_iso_name(name))
            except PyCdlibException:
                raise InputError(f"{path}: no {name}; not an ISO made by "
                                 f"bootdisk") from None
            found[name] = buffer.getvalue()
        for name in (secureboot.CD_STAMP, secureboot.CD_CONFIG):
            buffer = io.BytesIO()      # only on a --secure-boot ISO
            try:
                iso.get_file_from_iso_fp(buffer, iso_path=_iso_name(name))
            except PyCdlibException:
                continue
            found[name] = buffer.getvalue()
    finally:
        iso.close()
    kernel = found.pop(KERNEL_PATH)
    initrd = found.pop(INITRD_PATH)
    return kernel, initrd, {name: len(data) for name, data in found.items()}
