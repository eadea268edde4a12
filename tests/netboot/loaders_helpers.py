"""What the loaders' tests share: a site made by `pxeconf init`'s own code
(the loaders copied from the Debian packages), a kernel and initrd in its
root, and a one-sector disk whose boot code says so on the serial port
(the proof that a local-boot entry left the loader for the disk)."""

import os
import re
import shutil

from diskimage.netboot import bootroot, site as sitemodel

GUEST_SERVER = "10.0.2.2"        # QEMU's user network: the host, TFTP
LOCAL_MARK = "LOCAL DISK BOOTED"

MACS = {"job": "52:54:00:12:34:56", "rescue": "52:54:00:12:34:57",
        "local": "52:54:00:12:34:58", "none": "52:54:00:12:34:59"}

HOSTS = f"""
[job restore]
label = Restore the lab image
bundle = env
script = jobs/restore.sh
cmdline = console=ttyS0 panic=10

[menu rescue]
label = Imaging shell
bundle = env
cmdline = console=ttyS0 panic=10 rd.on_success=shell

[host {MACS['job']}]
name = pc01
job = restore
once = yes
assigned = 2026-12-01T16:30:00Z

[host {MACS['rescue']}]
name = pc02
menu = rescue

[host {MACS['local']}]
name = pc03
menu = local
"""


def make_site(directory, extra=HOSTS, kernel=None, settings=None):
    """`pxeconf init` into `directory`, env/vmlinuz (the host kernel, or a
    small stand-in) and env/initrd.img, jobs/restore.sh, and `extra`
    appended to the template; `settings`: [site] lines changed
    ({key: value}).  Returns the site file's path."""
    bootroot.init(directory)
    root = os.path.join(directory, "boot")
    os.makedirs(os.path.join(root, "env"))
    os.makedirs(os.path.join(root, "jobs"))
    if kernel:
        shutil.copyfile(kernel, os.path.join(root, "env", "vmlinuz"))
    else:
        with open(os.path.join(root, "env", "vmlinuz"), "wb") as f:
            f.write(b"\0" * 1024)
    with open(os.path.join(root, "env", "initrd.img"), "wb") as f:
        f.write(b"\0" * 4096)   # the kernel starts before it reads it
    with open(os.path.join(root, "jobs", "restore.sh"), "w") as f:
        f.write("#!/bin/sh\necho restore\n")
    path = os.path.join(directory, bootroot.SITE_FILE)
    with open(path) as f:
        text = f.read()
    for key, value in (settings or {}).items():
        text, found = re.subn(rf"(?m)^#? ?{re.escape(key)} = [^\n]*$",
                              f"{key} = {value}", text, count=1)
        if not found:
            text = text.replace("[site]\n", f"[site]\n{key} = {value}\n", 1)
    with open(path, "w") as f:
        f.write(text + extra)
    return path


def load(path):
    return sitemodel.load(path)


def mbr_disk(path):
    """A 1 MiB disk whose MBR code writes LOCAL_MARK to COM1 and halts."""
    message = LOCAL_MARK.encode() + b"\r\n\0"
    code = bytearray([
        0xFA, 0xFC,                 # cli; cld
        0x31, 0xC0, 0x8E, 0xD8,     # xor ax,ax; mov ds,ax
        0xBE, 0, 0,                 # mov si, message
        0xBA, 0xF8, 0x03,           # mov dx, 0x3f8 (COM1)
        0xAC,                       # next: lodsb
        0x84, 0xC0,                 # test al,al
        0x74, 0x03,                 # jz end
        0xEE,                       # out dx,al
        0xEB, 0xF8,                 # jmp next
        0xF4, 0xEB, 0xFD])          # end: hlt; jmp end
    address = 0x7C00 + len(code)
    code[7:9] = address.to_bytes(2, "little")
    sector = bytes(code) + message
    sector += b"\0" * (510 - len(sector)) + b"\x55\xaa"
    with open(path, "wb") as f:
        f.write(sector)
        f.truncate(1 << 20)
    return path


def esp_disk(path, work):
    """A GPT disk whose EFI system partition (FAT, made by mkfs.fat and
    mtools) holds /EFI/BOOT/BOOTX64.EFI: a GRUB made by grub-mkstandalone
    whose only config writes LOCAL_MARK and waits (what a disk's own UEFI
    loader does, told by the serial line)."""
    import subprocess
    work = os.fspath(work)
    config = os.path.join(work, "esp-grub.cfg")
    with open(config, "w") as f:
        f.write(f"echo '{LOCAL_MARK}'\nsleep 600\n")
    loader = os.path.join(work, "BOOTX64.EFI")
    subprocess.run(["grub-mkstandalone", "-O", "x86_64-efi", "-o", loader,
                    "--install-modules=normal echo sleep", "--locales=",
                    "--fonts=", "--themes=",
                    f"boot/grub/grub.cfg={config}"], check=True,
                   capture_output=True)
    esp = os.path.join(work, "esp.img")
    subprocess.run(["mkfs.fat", "-F", "32", "-C", esp, str(40 * 1024)],
                   check=True, capture_output=True)
    for args in (["mmd", "-i", esp, "::/EFI", "::/EFI/BOOT"],
                 ["mcopy", "-i", esp, loader, "::/EFI/BOOT/BOOTX64.EFI"]):
        subprocess.run(args, check=True, capture_output=True)
    with open(path, "wb") as f:
        f.truncate(48 << 20)
    subprocess.run(["sfdisk", "-q", os.fspath(path)], check=True,
                   capture_output=True, text=True,
                   input="label: gpt\nstart=2048, size=81920, "
                         "type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n")
    with open(esp, "rb") as src, open(path, "r+b") as out:
        out.seek(2048 * 512)
        shutil.copyfileobj(src, out)
    return path
