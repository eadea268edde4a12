"""The loaders boot from the service partition as envslots' configs
assume (QEMU -accel tcg): Debian's signed shim + GRUB started from
/EFI/rdeploy read /EFI/debian/grub.cfg ($prefix on their own device), and
$cmdpath's /EFI/rdeploy/grub.cfg when it is absent; the standalone GRUB
does the same; syslinux reads /syslinux/syslinux.cfg, else /syslinux.cfg.

No NVRAM entry is made here (part D's work): OVMF finds no boot file (we
put none in /EFI/BOOT) and starts its shell, whose startup.nsh on the FAT
(test-only) starts the loader by its path."""

import json
import os
import shutil
import subprocess

import pytest

from bootdisk import qemu
from diskimage.service import bundle, envslots, fatfs, loaders
from tests.service.fatdisk import TOOLS, make_bundle, make_disk

pytestmark = [pytest.mark.boot,
              pytest.mark.needs(*TOOLS, "qemu-system-x86_64", "syslinux")]


def marker_cfg(kind, text):
    if kind == "grub":
        return f"echo {text} root=$root\nsleep 3\nhalt\n".encode()
    return f"SAY {text}\nDEFAULT none\nPROMPT 0\nLABEL none\n" \
           f"  KERNEL /nothing\n".encode()


def boot(tmp_path, disk, uefi, text, timeout=150):
    args = qemu.base_args(memory=512, uefi_vars=qemu.ovmf_vars(
        str(tmp_path)) if uefi else None)
    args += ["-drive", f"file={disk},format=raw,if=virtio", "-net", "none"]
    with qemu.Boot(args) as b:
        try:
            b.wait_for(text, timeout)
        except TimeoutError:
            raise AssertionError(b.plain()[-3000:]) from None
        return b.plain()


def uefi_disk(tmp_path, kind):
    service = make_disk(str(tmp_path / "disk.img"))
    with fatfs.open_fat(service) as fat:
        path = loaders.install_efi(fat, None, kind)
        fat.put(f"fs0:{path}\r\n".replace("/", "\\").encode(),
                "/startup.nsh")
    return service


@pytest.mark.parametrize("kind", ["shim", "grub"])
def test_grub_reads_debian_cfg_then_cmdpath(tmp_path, kind):
    service = uefi_disk(tmp_path, kind)
    with fatfs.open_fat(service) as fat:
        fat.makedirs("/EFI/debian")
        fat.put(marker_cfg("grub", "BWPART-PRIMARY"), envslots.GRUB_CFG)
        fat.put(marker_cfg("grub", "BWPART-FALLBACK"),
                envslots.GRUB_FALLBACK)
    boot(tmp_path, service.disk, True, "BWPART-PRIMARY root=hd0,gpt1")
    with fatfs.open_fat(service) as fat:       # a switch cut in step 4
        fat.rm(envslots.GRUB_CFG)
    boot(tmp_path, service.disk, True, "BWPART-FALLBACK root=hd0,gpt1")


def host_kernels():
    return sorted(os.path.join("/boot", n) for n in os.listdir("/boot")
                  if n.startswith("vmlinuz-"))


def test_signed_chain_boots_the_slot_kernel(tmp_path):
    """envslots' own grub.cfg, through the signed chain, starts the slot's
    (Debian's signed) kernel with the slot's command line."""
    kernel = host_kernels()[-1]
    directory = str(tmp_path / "b")
    make_bundle(directory)
    shutil.copyfile(kernel, os.path.join(directory, "vmlinuz"))
    info_path = os.path.join(directory, "bundle.json")
    with open(info_path) as f:
        info = json.load(f)
    info["files"]["vmlinuz"] = bundle.sha256_file(kernel)
    info["cmdline"] = "console=ttyS0,115200 panic=-1"
    with open(info_path, "w") as f:
        json.dump(info, f)
    service = uefi_disk(tmp_path, "shim")
    with fatfs.open_fat(service) as fat:
        slot = envslots.write_slot(fat, bundle.load(directory))
        envslots.switch(fat, slot, service, "shim")
    out = boot(tmp_path, service.disk, True, "Kernel command line:", 240)
    line = [x for x in out.splitlines() if "Kernel command line:" in x][0]
    assert f"rd.bwpart={service.part_id}" in line
    assert "console=ttyS0,115200" in line
    assert "rd.on_success=reboot rd.on_failure=reboot" in line


def test_syslinux_reads_its_dir_then_root(tmp_path):
    service = make_disk(str(tmp_path / "disk.img"))
    # gptmbr.bin in LBA 0 and partition 1 legacy-BIOS-bootable, as arming
    # does for a GPT disk.
    subprocess.run(["dd", "if=/usr/lib/syslinux/mbr/gptmbr.bin",
                    f"of={service.disk}", "bs=440", "count=1",
                    "conv=notrunc"], check=True, capture_output=True)
    subprocess.run(["sfdisk", "--quiet", "--part-attrs", service.disk, "1",
                    "LegacyBIOSBootable"], check=True)
    loaders.install_bios(service)
    with fatfs.open_fat(service) as fat:
        fat.put(marker_cfg("syslinux", "BWPART-SYSLINUX-DIR"),
                envslots.SYSLINUX_CFG)
        fat.put(marker_cfg("syslinux", "BWPART-SYSLINUX-ROOT"),
                envslots.SYSLINUX_FALLBACK)
    # 150 s, the other boots' allowance: with 90 the fallback's marker came
    # just after the deadline once, a TCG boot beside the other lane
    assert "BWPART-SYSLINUX-ROOT" not in boot(
        tmp_path, service.disk, False, "BWPART-SYSLINUX-DIR")
    with fatfs.open_fat(service) as fat:
        fat.rm(envslots.SYSLINUX_CFG)
    boot(tmp_path, service.disk, False, "BWPART-SYSLINUX-ROOT")
