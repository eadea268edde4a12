"""What a bootdisk artifact holds: an initramfs, an ISO, a USB image, a
PXE directory or a bundle (a PXE directory or bundle also shows its
bundle.json, each file's sha256 checked).  The initramfs is read back with cpio.read and its
/etc/bootdisk/manifest.json; the kernel release comes from the kernel file
on the medium itself, not from what the manifest says."""

import json
import os

from diskimage.errors import InputError
from diskimage.sizes import format_size

from . import bundle as bundles, cpio, initramfs, kernel as kernels
from . import trust as trusts
from .media import KERNEL_NAME, INITRD_NAME, PXE_FILES

_ISO_MAGIC_OFFSET = 0x8001


def _kind(path):
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, bundles.BUNDLE_JSON)) and \
                not os.path.exists(os.path.join(path, "pxelinux.0")):
            return "bundle"
        return "pxe"
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file or directory")
    with open(path, "rb") as f:
        head = f.read(_ISO_MAGIC_OFFSET + 5)
    if head[_ISO_MAGIC_OFFSET:_ISO_MAGIC_OFFSET + 5] == b"CD001":
        return "iso"
    if head[:2] == b"\x1f\x8b" or head[:4] == b"\x28\xb5\x2f\xfd" or \
            head[:6] == cpio.MAGIC:
        return "initrd"
    if len(head) >= 512 and head[510:512] == b"\x55\xaa":
        return "usb"
    raise InputError(f"{path}: not an initramfs, ISO, USB image or PXE "
                     f"directory made by bootdisk")


def _read_pair(path, kind):
    """(kernel bytes or None, initramfs bytes, {name: size} of boot files)."""
    if kind == "initrd":
        with open(path, "rb") as f:
            return None, f.read(), {}
    if kind in ("pxe", "bundle"):
        files = {}
        names = PXE_FILES + ("shimx64.efi", "grubx64.efi", "mmx64.efi",
                             "grub/grub.cfg") if kind == "pxe" else \
            tuple(bundles.SIGNED)
        for name in names:
            full = os.path.join(path, name)
            if os.path.isfile(full):
                files[name] = os.path.getsize(full)
        try:
            with open(os.path.join(path, KERNEL_NAME), "rb") as k, \
                    open(os.path.join(path, INITRD_NAME), "rb") as i:
                return k.read(), i.read(), files
        except FileNotFoundError as exc:
            raise InputError(f"{path}: not a bootdisk {kind} directory "
                             f"({os.path.basename(exc.filename)} missing)") \
                from None
    if kind == "iso":
        from .iso import read_boot_files
    else:
        from .usb import read_boot_files
    return read_boot_files(path)


def describe(path):
    """A dict report on the artifact at `path`."""
    path = os.fspath(path)
    kind = _kind(path)
    bundle = bundles.read_info(path) if kind in ("pxe", "bundle") else None
    kernel_data, initrd_data, boot_files = _read_pair(path, kind)
    members = cpio.read(initramfs.decompress(initrd_data))
    files = {name: data for name, mode, data in members}
    raw = files.get(initramfs.MANIFEST)
    if raw is None:
        raise InputError(f"{path}: the initramfs has no "
                         f"{initramfs.MANIFEST}; not made by bootdisk")
    manifest = json.loads(raw)
    report = {
        "artifact": path, "kind": kind,
        "size": _artifact_size(path, kind),
        "kernel_release": kernels.release_of(kernel_data) if kernel_data
        else None,
        "kernel_size": len(kernel_data) if kernel_data else None,
        "initramfs_size": len(initrd_data),
        "initramfs_files": len(members),
        "modules_release": manifest["kernel"]["release"],
        "modules": manifest["modules"],
        "modules_missing": manifest["modules_missing"],
        "toolkit_commands": manifest["toolkit"]["commands"],
        # what it printed when started in the medium's root at build time
        "toolkit_started": manifest["toolkit"].get("started"),
        "libraries": manifest["toolkit"]["libraries"],
        # udp-receiver (bootdisk/udpcast.py); None on media made before it
        "udp_receiver": manifest.get("udp_receiver"),
        "binaries": sorted(name for name, mode, data in members
                           if name.startswith(("usr/bin/", "bin/"))
                           and mode & 0o170000 == 0o100000),
        "job": manifest["job"],
        "job_text": files.get("etc/bootdisk/job", b"").decode(
            errors="replace") or None,
        "on_success": manifest["on_success"],
        "on_failure": manifest["on_failure"],
        "cmdline": manifest["cmdline"],
        "boot_files": boot_files,
        "created": manifest["created"],
        "bootdisk": manifest["bootdisk"],
        "bundle": bundle,
        "secure_boot": _secure_boot(kind, boot_files, bundle),
        "trusted_keys": trusts.read(files),
    }
    return report


#: What a --secure-boot medium holds, by kind (secureboot.py).
_SECURE_MARKS = {"usb": "/EFI/debian/grub.cfg", "iso": "/.disk/info",
                 "pxe": "shimx64.efi", "bundle": "shimx64.efi"}


def _secure_boot(kind, boot_files, bundle):
    """Whether UEFI boots the signed chain (None: an initramfs has no
    loader)."""
    if kind == "initrd":
        return None
    if bundle is not None and kind == "bundle":
        return bool(bundle.get("secure_boot"))
    return _SECURE_MARKS[kind] in boot_files


def _artifact_size(path, kind):
    if kind not in ("pxe", "bundle"):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, names in os.walk(path) for f in names)


def render(report):
    lines = [
        f"artifact     {report['artifact']} ({report['kind']}, "
        f"{format_size(report['size'])})",
    ]
    if report["kernel_release"]:
        lines.append(f"kernel       {report['kernel_release']} "
                     f"({format_size(report['kernel_size'])})")
    lines += [
        f"initramfs    {format_size(report['initramfs_size'])}, "
        f"{report['initramfs_files']} files, modules for "
        f"{report['modules_release']}",
        f"modules      {len(report['modules'])}: "
        f"{' '.join(report['modules'])}",
    ]
    if report["modules_missing"]:
        lines.append(f"not in kernel {' '.join(report['modules_missing'])}")
    lines += [
        f"binaries     {' '.join(report['binaries'])}",
        f"toolkit      {' '.join(report['toolkit_commands'])}",
        "started      " + ("not checked at build time"
                             if report["toolkit_started"] is None else
                             f"{report['toolkit_started'] or 'ok'} (run in "
                             f"the medium's root by chroot at build time)"),
        f"libraries    {' '.join(report['libraries'])}",
        "multicast    " + (
            f"{report['udp_receiver']['binary']} "
            f"({format_size(report['udp_receiver']['size'])}, adds "
            f"{format_size(report['udp_receiver']['added'])})"
            if report["udp_receiver"] else "no udp-receiver on this medium"),
        f"job          {report['job'] or '(none: rd.job=URL at boot)'}",
        f"afterwards   success: {report['on_success']}, failure: "
        f"{report['on_failure']}",
        f"cmdline      {report['cmdline']}",
        "trusted keys " + (" ".join(
            f"{k['key_id']} ({k['comment']})" if k["comment"] else
            k["key_id"] for k in report["trusted_keys"]) + ": only images "
            "signed by one of them are restored" if report["trusted_keys"]
            else "none: any image restores (no --trust)"),
    ]
    if report.get("secure_boot") is not None:
        lines.append("secure boot  " + (
            "yes: shim -> Debian's signed GRUB -> the signed kernel"
            if report["secure_boot"] else "no (UEFI: unsigned GRUB)"))
    for name, size in sorted(report["boot_files"].items()):
        lines.append(f"boot file    {name} ({format_size(size)})")
    lines.append(f"made by      bootdisk {report['bootdisk']}, "
                 f"{report['created']}")
    bundle = report.get("bundle")
    if bundle:
        lines.append(f"bundle       id {bundle.get('id')}, toolkit "
                     f"{bundle.get('version')}, built {bundle.get('built')}, "
                     f"secure boot "
                     f"{'yes' if bundle.get('secure_boot') else 'no'}")
        bad = bundle["mismatched"]
        lines.append(f"bundle files {len(bundle['files'])}, " + (
            f"sha256 MISMATCH or missing: {' '.join(bad)}" if bad else
            "every sha256 matches bundle.json"))
    return "\n".join(lines) + "\n"
