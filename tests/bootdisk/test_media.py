"""ISO, USB image and PXE directory, checked by the field's tools and booted
in QEMU (TCG, serial console, no key pressed) to the job: the ISO as a CD
and as a disk and the USB image as a disk, each under SeaBIOS and OVMF; the
PXE directory through QEMU's user-mode TFTP under SeaBIOS (pxelinux) and
OVMF (GRUB)."""

import json
import re
import subprocess

import pytest

from bootdisk import qemu
from bootdisk.cli import main as bootdisk_main
import demodisk
from diskimage.fs.fat.mtools import MTOOLS_ENV

from tests.bootdisk_helpers import (console_tail, host_kernel, need_qemu,
                                    toolkit, user_net)

BOOT_TIMEOUT = 240
JOB = "echo job-ran-$((6 * 7)); rdeploy --version; cat /proc/consoles\n"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    need_qemu()
    toolkit()
    host_kernel()
    tmp = tmp_path_factory.mktemp("media")
    job = tmp / "job.sh"
    job.write_text(JOB)
    # The default command line: screen (tty0) and serial (ttyS0) consoles.
    common = [f"--job={job}", "--timeout=1", "--on-failure=reboot"]
    made = {"iso": tmp / "boot.iso", "usb": tmp / "boot.img",
            "pxe": tmp / "tftp"}
    for kind, path in made.items():
        assert bootdisk_main([kind, "-o", str(path), *common]) == 0
    made["tmp"] = tmp
    return made


def _run(args):
    return subprocess.run(args, capture_output=True, text=True, check=True)


def test_iso_has_bios_and_uefi_el_torito_and_hybrid_mbr(artifacts):
    report = _run(["xorriso", "-indev", artifacts["iso"],
                   "-report_el_torito", "plain"]).stdout
    assert "/isolinux/isolinux.bin" in report
    assert "/efi/efiboot.img" in report
    lines = [line for line in report.splitlines()
             if line.startswith("El Torito boot img")]
    assert any(" BIOS " in line for line in lines)
    assert any(" UEFI " in line for line in lines)
    table = json.loads(_run(["sfdisk", "--json", artifacts["iso"]]).stdout)
    types = [p["type"] for p in table["partitiontable"]["partitions"]]
    assert "ef" in types          # the EFI image as a partition, for disks
    listing = _run(["xorriso", "-indev", artifacts["iso"], "-find", "/",
                    "-type", "f"]).stdout
    for name in ("/boot/vmlinuz", "/boot/initrd.img",
                 "/isolinux/ldlinux.c32", "/isolinux/isolinux.cfg"):
        assert f"'{name}'" in listing
    # ISOLINUX reads ahead: no boot file may end the CD without padding.
    extents = _run(["xorriso", "-indev", artifacts["iso"], "-find", "/",
                    "-type", "f", "-exec", "report_lba"]).stdout
    rows = [line.split(",") for line in extents.splitlines()
            if line.startswith("File data lba")]
    last = max(rows, key=lambda r: int(r[1]))
    assert last[4].strip() == "'/isolinux/padding'" and int(last[2]) >= 150


def test_usb_image_partition_fat32_and_loaders(artifacts):
    image = artifacts["usb"]
    table = json.loads(_run(["sfdisk", "--json", image]).stdout)
    (part,) = table["partitiontable"]["partitions"]
    assert part["type"] == "c" and part.get("bootable") is True
    offset = part["start"] * 512
    clean, output = demodisk.fsck(image, offset, part["size"] * 512, "vfat")
    assert clean, output
    env = dict(MTOOLS_ENV, PATH="/usr/bin:/bin")
    listing = subprocess.run(["mdir", "-a", "-b", "-i", f"{image}@@{offset}",
                              "::/", "-/"], capture_output=True, text=True,
                             env=env).stdout
    for name in ("::/boot/vmlinuz", "::/boot/initrd.img",
                 "::/boot/syslinux/ldlinux.sys",
                 "::/boot/syslinux/syslinux.cfg", "::/EFI/BOOT/BOOTX64.EFI"):
        assert name.lower() in listing.lower(), listing
    assert open(image, "rb").read(440) == \
        open("/usr/lib/syslinux/mbr/mbr.bin", "rb").read(440)


@pytest.mark.parametrize("kind", ["iso", "usb", "pxe"])
def test_info_reads_each_artifact(artifacts, kind, capsys):
    assert bootdisk_main(["info", str(artifacts[kind]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == kind
    assert report["job_text"] == JOB
    assert report["kernel_release"] == report["modules_release"]
    assert report["on_failure"] == "reboot"


def test_pxe_refuses_non_empty_directory(artifacts, capsys):
    assert bootdisk_main(["pxe", "-o", str(artifacts["pxe"])]) == 3
    assert "exists and is not empty (give --force" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["iso", "usb"])
def test_refuses_existing_image_without_force(artifacts, kind, capsys):
    before = artifacts[kind].stat().st_mtime_ns
    assert bootdisk_main([kind, "-o", str(artifacts[kind])]) == 3
    assert capsys.readouterr().err.strip() == \
        f"bootdisk: error: {artifacts[kind]}: exists (give --force to " \
        f"replace it)"
    assert artifacts[kind].stat().st_mtime_ns == before


def test_usb_size_too_small_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "small.img"
    assert bootdisk_main(["usb", "-o", str(out), "--size=8M"]) == 2
    assert "--size: 8.0 MiB is too small; the files need" in \
        capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "small.img.partial").exists()


def test_info_refuses_what_bootdisk_did_not_make(tmp_path, capsys):
    other = tmp_path / "other.bin"
    other.write_bytes(b"\0" * 4096)
    assert bootdisk_main(["info", str(other)]) == 3
    assert "not an initramfs, ISO, USB image or PXE directory made by " \
        "bootdisk" in capsys.readouterr().err


def _disk(path, index=0):
    return ["-drive", f"file={path},format=raw,if=none,id=d{index},"
                      f"readonly=on",
            "-device", f"virtio-blk-pci,drive=d{index},bootindex={index}"]


BOOTS = {
    "iso-cd": lambda a: ["-cdrom", a["iso"]],
    "iso-disk": lambda a: _disk(a["iso"]),
    "usb-disk": lambda a: _disk(a["usb"]),
}


def _firmware(name, tmp):
    return qemu.base_args(uefi_vars=qemu.ovmf_vars(tmp)
                          if name == "uefi" else None)


def _booted_to_job(args):
    with qemu.Boot(args) as boot:
        code = boot.wait(BOOT_TIMEOUT)
    out = boot.output
    assert "bootdisk: job finished: exit 0" in out, console_tail(boot)
    assert "job-ran-42" in out and "reboot: Power down" in out
    assert code == 0
    consoles = [line.split()[0] for line in out.splitlines()
                if re.match(r"^tty(S0|0)\s+-W", line)]
    assert sorted(consoles) == ["tty0", "ttyS0"], "screen and serial"
    return out


@pytest.mark.boot
@pytest.mark.parametrize("firmware", ["bios", "uefi"])
@pytest.mark.parametrize("medium", sorted(BOOTS))
def test_medium_boots_to_the_job(artifacts, medium, firmware, tmp_path):
    _booted_to_job(_firmware(firmware, tmp_path) +
                   BOOTS[medium](artifacts))


@pytest.mark.boot
@pytest.mark.parametrize("firmware, bootfile", [("bios", "pxelinux.0"),
                                                ("uefi", "bootx64.efi")])
def test_pxe_boots_to_the_job_over_tftp(artifacts, firmware, bootfile,
                                        tmp_path):
    net = user_net(tftp=artifacts["pxe"], bootfile=bootfile)
    net[-1] += ",bootindex=0"
    out = _booted_to_job(_firmware(firmware, tmp_path) + net)
    assert "bootdisk: network: eth0 10.0.2.15/24" in out
