"""The Secure Boot chain of `--secure-boot` media: shim (signed by
Microsoft) -> Debian's signed GRUB -> Debian's signed kernel.

The loaders come from the installed Debian packages, never built here:

    shimx64.efi     shim-signed            /usr/lib/shim/shimx64.efi.signed
    mmx64.efi       shim-signed            /usr/lib/shim/mmx64.efi.signed
    grubx64.efi     grub-efi-amd64-signed  .../grubx64.efi.signed (disks)
    gcdx64.efi      grub-efi-amd64-signed  .../gcdx64.efi.signed (CDs)
    grubnetx64.efi  grub-efi-amd64-signed  .../grubnetx64.efi.signed (PXE)

Shim loads ``grubx64.efi`` from its own directory (whichever of the three
GRUB images sits under that name), and MokManager ``mmx64.efi`` when a
verification fails.  No ``fbx64.efi`` goes beside it: shim started from
EFI/BOOT/ would run that fallback, which makes NVRAM boot entries.  Where each GRUB looks for its grub.cfg:

    grubx64.efi     $prefix = /EFI/debian on the device it was loaded
                    from: /EFI/debian/grub.cfg (CONFIGS["disk"])
    gcdx64.efi      searches for the file /.disk/info, then
                    $prefix = ($root)/boot/grub: /boot/grub/grub.cfg
    grubnetx64.efi  $prefix = /grub on the TFTP server: grub/grub.cfg

The kernel must be signed, or GRUB (through shim) refuses it: a PE image
whose certificate table (data directory 4 of the optional header, see the
PE/COFF specification, "Optional Header Data Directories") is not empty.
"""

import os
import struct

from diskimage.errors import InputError
from diskimage.netboot import bootroot

from . import kernel as kernels

_SIGNED = "/usr/lib/grub/x86_64-efi-signed/"

#: name -> (host file, Debian package).  shim and the network GRUB are
#: the ones pxeconf's boot root copies (diskimage.netboot.bootroot).
LOADERS = {
    "shimx64.efi": (bootroot.LOADERS["shimx64.efi"][1],
                    bootroot.LOADERS["shimx64.efi"][0]),
    "mmx64.efi": ("/usr/lib/shim/mmx64.efi.signed", "shim-signed"),
    "grubx64.efi": (_SIGNED + "grubx64.efi.signed", "grub-efi-amd64-signed"),
    "gcdx64.efi": (_SIGNED + "gcdx64.efi.signed", "grub-efi-amd64-signed"),
    "grubnetx64.efi": (bootroot.LOADERS["grubnetx64.efi"][1],
                       bootroot.LOADERS["grubnetx64.efi"][0]),
}

#: Where the signed disk GRUB (grubx64.efi.signed) reads its grub.cfg.
DISK_CONFIG = "/EFI/debian/grub.cfg"
#: Where the signed CD GRUB (gcdx64.efi.signed) finds its medium and config.
CD_STAMP = "/.disk/info"
CD_CONFIG = "/boot/grub/grub.cfg"
#: The network GRUB's config, relative to the TFTP root.
NET_CONFIG = "grub/grub.cfg"

# PE/COFF: the DOS header's e_lfanew, the signature, the COFF file header
_E_LFANEW = 0x3C
_COFF_SIZE = 20
_PE32, _PE32_PLUS = 0x10B, 0x20B
#: optional header magic -> offset of NumberOfRvaAndSizes in it (the data
#: directories, 8 bytes each (VirtualAddress, Size), follow it)
_RVA_COUNT = {_PE32: 92, _PE32_PLUS: 108}
CERTIFICATE_TABLE = 4


def loader(name):
    """Host path of a signed loader, or InputError naming its package."""
    path, package = LOADERS[name]
    if not os.path.isfile(path):
        raise InputError(f"{path}: missing signed boot loader {name} "
                         f"(install {package})")
    return path


def certificate_table(data):
    """(file offset, size) of the certificate table of the PE image whose
    first bytes are `data`; (0, 0) when it has none.  InputError when
    `data` is not a PE image."""
    try:
        pe = struct.unpack_from("<I", data, _E_LFANEW)[0]
        if data[pe:pe + 4] != b"PE\0\0":
            raise InputError("no PE signature")
        optional = pe + 4 + _COFF_SIZE
        magic = struct.unpack_from("<H", data, optional)[0]
        if magic not in _RVA_COUNT:
            raise InputError(f"optional header magic {magic:#x}")
        count_at = optional + _RVA_COUNT[magic]
        count = struct.unpack_from("<I", data, count_at)[0]
        if count <= CERTIFICATE_TABLE:
            return 0, 0
        return struct.unpack_from("<II", data, count_at + 4 +
                                  8 * CERTIFICATE_TABLE)
    except struct.error:
        raise InputError("cut short in its PE headers") from None


def check_signed_kernel(path):
    """Refuse a kernel that is not a signed EFI image (InputError, exit
    3): --secure-boot media boot only a signed kernel."""
    with open(path, "rb") as f:
        head = f.read(64 << 10)
    try:
        offset, size = certificate_table(head)
    except InputError as exc:
        raise InputError(f"{path}: not an EFI kernel image ({exc}); "
                         f"--secure-boot needs a signed kernel "
                         f"(linux-image-amd64)") from None
    if size == 0:
        raise InputError(f"{path}: the kernel is not signed (no PE "
                         f"certificate table); --secure-boot needs a "
                         f"signed kernel such as Debian's "
                         f"linux-image-amd64")
    if offset + size > os.path.getsize(path):
        raise InputError(f"{path}: its PE certificate table ({size} bytes "
                         f"at {offset}) runs past the end of the file")
    return offset, size


def chain(grub="grubx64.efi"):
    """{name on the medium: host path} of the chain, with the GRUB image
    `grub` (a LOADERS name) under the name shim loads."""
    return {"shimx64.efi": loader("shimx64.efi"),
            "grubx64.efi": loader(grub),
            "mmx64.efi": loader("mmx64.efi")}


def check_spec_kernel(spec):
    """check_signed_kernel on the kernel `spec` boots (its default when
    none is given), before any work; a missing kernel is left to
    initramfs.check_spec, which names it."""
    path = spec.kernel or kernels.default_kernel()
    if os.path.isfile(path):
        check_signed_kernel(path)
