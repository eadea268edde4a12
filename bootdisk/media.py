"""What the boot media share: file names, boot-loader files from Debian
packages, and the boot menus (syslinux family and GRUB) that time out
straight to the job entry."""

import os
import uuid

from diskimage.errors import InputError, ToolError
from diskimage.fs.fat.mtools import MTOOLS_ENV
from diskimage.host import tools

KERNEL_NAME = "vmlinuz"
INITRD_NAME = "initrd.img"
#: Where kernel and initramfs sit on an ISO or a USB image.
KERNEL_PATH = f"/boot/{KERNEL_NAME}"
INITRD_PATH = f"/boot/{INITRD_NAME}"

#: Boot-loader files on the host: name -> (candidate paths, Debian package).
LOADERS = {
    "isolinux.bin": (["/usr/lib/ISOLINUX/isolinux.bin"], "isolinux"),
    "ldlinux.c32": (["/usr/lib/syslinux/modules/bios/ldlinux.c32"],
                    "syslinux-common"),
    "pxelinux.0": (["/usr/lib/PXELINUX/pxelinux.0"], "pxelinux"),
    "mbr.bin": (["/usr/lib/syslinux/mbr/mbr.bin", "/usr/lib/SYSLINUX/mbr.bin"],
                "syslinux-common"),
    "x86_64-efi": (["/usr/lib/grub/x86_64-efi"], "grub-efi-amd64-bin"),
}

#: Files a PXE directory holds besides kernel and initrd.
PXE_FILES = (KERNEL_NAME, INITRD_NAME, "pxelinux.0", "ldlinux.c32",
             "pxelinux.cfg/default", "bootx64.efi")

#: GRUB modules of the standalone EFI images (only these go in).
GRUB_MODULES = ("part_msdos part_gpt fat iso9660 search search_fs_file "
                "linux normal echo test serial terminal configfile sleep "
                "reboot halt all_video efi_gop efi_uga")
GRUB_NET_MODULES = "efinet net tftp"


def loader(name):
    """Host path of a boot-loader file, or a one-line InputError naming the
    package that brings it."""
    paths, package = LOADERS[name]
    for path in paths:
        if os.path.exists(path):
            return path
    raise InputError(f"{paths[0]}: missing boot loader file {name} "
                     f"(install {package})")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def entries(cmdline):
    """[(label, title, kernel command line)]: the job first (the default),
    then the same environment ending in a shell whatever the job does."""
    return [("job", "bootdisk: run the job", cmdline),
            ("shell", "bootdisk: run the job, then a shell",
             f"{cmdline} rd.on_success=shell rd.on_failure=shell")]


def syslinux_cfg(cmdline, timeout, kernel, initrd):
    """isolinux.cfg / syslinux.cfg / pxelinux.cfg/default.  A timeout of 0
    boots the job entry without a prompt (syslinux's own 0 waits forever)."""
    lines = ["SERIAL 0 115200", "DEFAULT job"]
    if timeout:
        lines += ["PROMPT 1", f"TIMEOUT {timeout * 10}",
                  f"TOTALTIMEOUT {timeout * 10}",
                  "SAY bootdisk: booting the job; type 'shell' for the "
                  "shell entry"]
    else:
        lines += ["PROMPT 0"]
    for label, title, line in entries(cmdline):
        lines += [f"LABEL {label}", f"  KERNEL {kernel}",
                  f"  INITRD {initrd}", f"  APPEND {line}"]
    return ("\n".join(lines) + "\n").encode()


def grub_cfg(cmdline, timeout, kernel, initrd, root_command):
    """The grub.cfg embedded in a standalone GRUB; `root_command` sets $root
    (a search for the medium's stamp file, or the TFTP server)."""
    lines = ["serial --unit=0 --speed=115200",
             "terminal_input serial console",
             "terminal_output serial console",
             root_command,
             f"set timeout={timeout}", "set default=0"]
    for label, title, line in entries(cmdline):
        lines += [f'menuentry "{title}" --id {label} {{',
                  f"  echo 'bootdisk: loading {kernel} and {initrd}'",
                  f"  linux {kernel} {line}", f"  initrd {initrd}", "}"]
    return ("\n".join(lines) + "\n").encode()


def new_stamp():
    """A file name unique to one medium, for GRUB's search."""
    return f"/boot/bootdisk-{uuid.uuid4().hex[:16]}.id"


def search_stamp(stamp):
    """GRUB's command that sets $root to the medium holding `stamp`."""
    return f"search --no-floppy --file --set=root {stamp}"


def medium_grub(cmdline, timeout, scratch):
    """A standalone GRUB for an ISO or USB image, which finds its medium
    by a stamp file unique to it: (path of bootx64.efi in `scratch`, path
    the stamp file must have on the medium)."""
    stamp = new_stamp()
    grub = os.path.join(scratch, "bootx64.efi")
    grub_standalone(grub, grub_cfg(
        cmdline, timeout, KERNEL_PATH, INITRD_PATH, search_stamp(stamp)),
        scratch)
    return grub, stamp


def grub_standalone(out, config, scratch, net=False):
    """Make a standalone x86_64 EFI GRUB at `out` with `config` (bytes)
    as its /boot/grub/grub.cfg."""
    directory = loader("x86_64-efi")
    cfg = os.path.join(scratch, "grub.cfg")
    with open(cfg, "wb") as f:
        f.write(config)
    modules = GRUB_MODULES + (" " + GRUB_NET_MODULES if net else "")
    args = ["grub-mkstandalone", "-O", "x86_64-efi", "-d", directory,
            "-o", out, f"--modules={modules}", f"--install-modules={modules}",
            "--locales=", "--fonts=", "--themes=",
            f"boot/grub/grub.cfg={cfg}"]
    run_tool(args)


def run_tool(args):
    """Run a tool; a missing tool (MissingToolError, naming its package
    from the one table, diskimage.host.tools.PACKAGES) or a failure is a
    one-line error."""
    proc = tools.run(args, check=False, env=MTOOLS_ENV)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise ToolFailed(f"{args[0]} failed (exit {proc.returncode}): {tail}")
    return proc.stdout


class ToolFailed(ToolError):
    """A boot-media tool (mkfs.fat, mcopy, syslinux, grub-mkstandalone)
    failed; exit code 1."""
