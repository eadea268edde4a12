"""--secure-boot media: the signed chain shim -> Debian's signed GRUB ->
Debian's signed kernel.  The kernel's PE certificate table is read as
objdump reads it, an unsigned kernel is refused before anything is
written, the files sit where each signed GRUB looks (checked with mtools,
xorriso and sfdisk), and under OVMF with Secure Boot on and Microsoft's
keys the USB image, the ISO (as a CD and as a disk) and the PXE directory
each reach the job, while the same USB image built without --secure-boot
is refused by the firmware."""

import json
import re
import subprocess

import pytest

from bootdisk import qemu, secureboot
from bootdisk.cli import main as bootdisk_main
from diskimage.fs.fat.mtools import MTOOLS_ENV

from tests.bootdisk_helpers import (console_tail, host_kernel, need_qemu,
                                    toolkit)

BOOT_TIMEOUT = 240
MARK = "secure-job-ran-42"
JOB = "echo secure-job-ran-$((6 * 7))\n"
SHIM = "/usr/lib/shim/shimx64.efi.signed"
MOK = "/usr/lib/shim/mmx64.efi.signed"
GRUB_DISK = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
GRUB_CD = "/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed"
GRUB_NET = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"

pytestmark = pytest.mark.needs("mcopy", "mkfs.fat", "syslinux", "objdump",
                               "sfdisk", "fsck.fat")


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _objdump_certificate_table(path):
    """(offset, size) of data directory 4 as objdump -p prints it."""
    out = subprocess.run(["objdump", "-p", str(path)], capture_output=True,
                         text=True, check=True).stdout
    match = re.search(r"^Entry 4 ([0-9a-f]+) ([0-9a-f]+) Security Directory",
                      out, re.M)
    assert match, out[-2000:]
    return int(match.group(1), 16), int(match.group(2), 16)


def _unsigned_copy(kernel, path):
    """The kernel with its certificate table entry zeroed and the
    signature cut off: a valid, unsigned EFI image."""
    data = bytearray(_read(kernel))
    offset, size = secureboot.certificate_table(bytes(data[:65536]))
    pe = int.from_bytes(data[0x3C:0x40], "little")
    entry = pe + 4 + 20 + 112 + 8 * secureboot.CERTIFICATE_TABLE
    assert int.from_bytes(data[entry:entry + 4], "little") == offset
    data[entry:entry + 8] = bytes(8)
    path.write_bytes(bytes(data[:offset]))
    return path


@pytest.fixture(scope="module")
def unsigned_kernel(tmp_path_factory):
    kernel = host_kernel()
    return _unsigned_copy(kernel, tmp_path_factory.mktemp("unsigned") /
                          "vmlinuz-unsigned")


def test_the_certificate_table_is_the_one_objdump_reads(unsigned_kernel):
    kernel = host_kernel()
    found = secureboot.certificate_table(_read(kernel)[:65536])
    assert found == _objdump_certificate_table(kernel)
    assert found[1] > 0
    assert secureboot.check_signed_kernel(kernel) == found
    assert _objdump_certificate_table(unsigned_kernel) == (0, 0)
    assert secureboot.certificate_table(_read(unsigned_kernel)) == (0, 0)
    for loader in (SHIM, GRUB_DISK):
        assert secureboot.certificate_table(_read(loader)) == \
            _objdump_certificate_table(loader)


@pytest.mark.parametrize("kind", ["usb", "iso", "pxe", "bundle"])
def test_an_unsigned_kernel_is_refused_before_any_write(unsigned_kernel,
                                                        tmp_path, kind,
                                                        capsys):
    toolkit()
    out = tmp_path / "out"
    assert bootdisk_main([kind, "-o", str(out), "--secure-boot",
                          f"--kernel={unsigned_kernel}"]) == 3
    err = capsys.readouterr().err
    assert err.strip() == (
        f"bootdisk: error: {unsigned_kernel}: the kernel is not signed (no "
        f"PE certificate table); --secure-boot needs a signed kernel such "
        f"as Debian's linux-image-amd64")
    assert list(tmp_path.iterdir()) == []


def test_a_kernel_that_is_no_efi_image_is_refused(tmp_path, capsys):
    toolkit()
    fake = tmp_path / "vmlinuz"
    fake.write_bytes(b"MZ" + bytes(4094))
    assert bootdisk_main(["usb", "-o", str(tmp_path / "x.img"),
                          "--secure-boot", f"--kernel={fake}"]) == 3
    assert f"{fake}: not an EFI kernel image (no PE signature)" in \
        capsys.readouterr().err


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A --secure-boot USB image, ISO and PXE directory, and the USB image
    without it; no menu timeout."""
    toolkit()
    host_kernel()
    tmp = tmp_path_factory.mktemp("secure")
    job = tmp / "job.sh"
    job.write_text(JOB)
    made = {"usb": tmp / "sb.img", "iso": tmp / "sb.iso",
            "pxe": tmp / "tftp", "plain-usb": tmp / "plain.img"}
    for name, path in made.items():
        kind = name.rpartition("-")[2]
        flag = [] if name.startswith("plain") else ["--secure-boot"]
        assert bootdisk_main([kind, "-o", str(path), f"--job={job}",
                              "--timeout=0", "--on-failure=reboot",
                              *flag]) == 0
    made["tmp"] = tmp
    return made


def _mtype(image, name):
    return subprocess.run(["mtype", "-i", image, f"::{name}"],
                          capture_output=True, check=True,
                          env=MTOOLS_ENV).stdout


def test_usb_holds_the_chain_where_the_signed_grub_looks(media, tmp_path):
    table = json.loads(subprocess.run(
        ["sfdisk", "--json", str(media["usb"])], capture_output=True,
        text=True, check=True).stdout)["partitiontable"]
    (part,) = table["partitions"]
    assert part["type"] == "c" and part.get("bootable") is True
    image = f"{media['usb']}@@{part['start'] * 512}"
    assert _mtype(image, "/EFI/BOOT/BOOTX64.EFI") == _read(SHIM)
    assert _mtype(image, "/EFI/BOOT/grubx64.efi") == _read(GRUB_DISK)
    assert _mtype(image, "/EFI/BOOT/mmx64.efi") == _read(MOK)
    config = _mtype(image, "/EFI/debian/grub.cfg").decode()
    stamp = re.search(r"search --no-floppy --file --set=root (\S+)",
                      config).group(1)
    assert _mtype(image, stamp) == b"bootdisk\n"
    assert "linux /boot/vmlinuz console=" in config
    # BIOS as without --secure-boot: syslinux and its menu
    assert _mtype(image, "/boot/syslinux/syslinux.cfg").startswith(
        b"SERIAL 0 115200")
    assert _mtype(image, "/boot/vmlinuz") == _read(host_kernel())
    fat = tmp_path / "part.img"
    with open(media["usb"], "rb") as f:
        f.seek(part["start"] * 512)
        fat.write_bytes(f.read(part["size"] * 512))
    subprocess.run(["fsck.fat", "-n", str(fat)], capture_output=True,
                   check=True)


@pytest.mark.needs("osirrox")
def test_iso_efi_image_holds_shim_and_the_cd_grub(media, tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["osirrox", "-indev", str(media["iso"]), "-extract",
                    "/efi/efiboot.img", str(out / "efiboot.img"),
                    "-extract", "/.disk/info", str(out / "info"),
                    "-extract", "/boot/grub/grub.cfg", str(out / "grub.cfg")],
                   capture_output=True, check=True)
    efi = str(out / "efiboot.img")
    assert _mtype(efi, "/EFI/BOOT/BOOTX64.EFI") == _read(SHIM)
    assert _mtype(efi, "/EFI/BOOT/grubx64.efi") == _read(GRUB_CD)
    assert (out / "info").read_text().startswith("bootdisk /boot/bootdisk-")
    assert "linux /boot/vmlinuz console=" in (out / "grub.cfg").read_text()


def test_pxe_serves_shim_and_the_network_grub(media):
    tftp = media["pxe"]
    assert _read(tftp / "shimx64.efi") == _read(SHIM)
    assert _read(tftp / "grubx64.efi") == _read(GRUB_NET)
    assert _read(tftp / "mmx64.efi") == _read(MOK)
    assert "set root=(tftp,$net_default_server)" in \
        (tftp / "grub" / "grub.cfg").read_text()
    # the unsigned GRUB and pxelinux stay for other clients
    assert (tftp / "bootx64.efi").is_file() and (tftp / "pxelinux.0").is_file()
    info = json.loads((tftp / "bundle.json").read_text())
    assert info["secure_boot"] is True
    assert sorted(info["files"]) == ["initrd.img", "vmlinuz"]


@pytest.mark.parametrize("name, secure", [("usb", True), ("iso", True),
                                          ("pxe", True), ("plain-usb", False)])
def test_info_tells_whether_uefi_boots_the_signed_chain(media, name, secure,
                                                        capsys):
    assert bootdisk_main(["info", str(media[name]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["secure_boot"] is secure
    assert report["job_text"] == JOB
    assert bootdisk_main(["info", str(media[name])]) == 0
    line = "secure boot  yes: shim -> Debian's signed GRUB -> the signed " \
        "kernel" if secure else "secure boot  no (UEFI: unsigned GRUB)"
    assert f"\n{line}\n" in capsys.readouterr().out


# ---- boots under OVMF Secure Boot with Microsoft's keys --------------

def _secure(tmp_path):
    need_qemu()
    return qemu.secure_boot_args(tmp_path)


def _reaches_the_job(args):
    with qemu.Boot(args) as boot:
        boot.wait_for("bootdisk: job finished: exit 0", BOOT_TIMEOUT)
        out = boot.plain()
    assert "secureboot: Secure boot enabled" in out, console_tail(boot)
    assert MARK in out and "Access Denied" not in out
    return out


@pytest.mark.boot
@pytest.mark.needs("qemu-system-x86_64")
def test_secure_boot_usb_reaches_the_job(media, tmp_path):
    _reaches_the_job(_secure(tmp_path) + [
        "-drive", f"file={media['usb']},format=raw,if=virtio,snapshot=on",
        "-nic", "none"])


@pytest.mark.boot
@pytest.mark.needs("qemu-system-x86_64")
@pytest.mark.parametrize("how", ["cd", "disk"])
def test_secure_boot_iso_reaches_the_job(media, tmp_path, how):
    """As a CD (El Torito's EFI image) and as a disk (isohybrid's EFI
    partition): gcdx64 finds the ISO9660 by /.disk/info either way."""
    drive = ["-cdrom", str(media["iso"])] if how == "cd" else [
        "-drive", f"file={media['iso']},format=raw,if=virtio,snapshot=on"]
    _reaches_the_job(_secure(tmp_path) + drive + ["-nic", "none"])


@pytest.mark.boot
@pytest.mark.needs("qemu-system-x86_64")
def test_secure_boot_pxe_reaches_the_job(media, tmp_path):
    out = _reaches_the_job(_secure(tmp_path) + [
        "-netdev", f"user,id=n0,tftp={media['pxe']},bootfile=shimx64.efi",
        "-device", "virtio-net-pci,romfile=,netdev=n0"])
    assert "Fetching Netboot Image grubx64.efi" in out


@pytest.mark.boot
@pytest.mark.needs("qemu-system-x86_64")
def test_the_usb_image_without_secure_boot_is_refused(media, tmp_path):
    with qemu.Boot(_secure(tmp_path) + [
            "-drive", f"file={media['plain-usb']},format=raw,if=virtio,"
                      f"snapshot=on", "-nic", "none"]) as boot:
        boot.wait_for("Access Denied", BOOT_TIMEOUT)
        boot.wait_for("No bootable option or device was found",
                      BOOT_TIMEOUT)
        out = boot.plain()
    assert "Command line:" not in out and MARK not in out
