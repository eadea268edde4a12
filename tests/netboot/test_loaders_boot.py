"""The loaders themselves read the generated configs and act on them:
QEMU (TCG) on its user-mode network, whose TFTP serves the boot root and
whose host (10.0.2.2) reaches an HTTP server of the test on 127.0.0.1.

pxelinux (SeaBIOS), the signed shim + GRUB (OVMF, the firmware's own PXE)
and iPXE (QEMU's e1000 boot ROM, BIOS and UEFI) each boot: a machine's
own file (its job: a kernel whose command line carries the job and the
lease), the menu for a machine without one (its default entry), and a
local-boot entry that leaves the loader (the disk's boot code speaks on
the serial line, or the firmware goes on to its next boot option).
Each QEMU is killed as soon as the line it waits for shows."""

import os
import re
import shutil
import time

import pytest

from bootdisk import qemu
from diskimage.netboot import configs, jobs, macaddr
from tests.bootdisk_helpers import host_kernel, http_server, need_qemu
from tests.netboot.loaders_helpers import (GUEST_SERVER, LOCAL_MARK, MACS,
                                           esp_disk, load, make_site,
                                           mbr_disk)

pytestmark = [pytest.mark.boot, pytest.mark.needs("qemu-system-x86_64")]

WAIT = 240


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory):
    need_qemu()
    directory = tmp_path_factory.mktemp("loaders") / "site"
    make_site(directory, kernel=host_kernel(),
              settings={"default": "rescue", "timeout": "1"})
    mbr_disk(directory / "disk.img")
    return directory


def build(site_dir, server_url):
    """The configs of the site for `server_url`, written; the job's lease."""
    site = load(site_dir / "pxeconf.site")
    machines = jobs.Machines(site, site_dir / "state" / "journal.jsonl")
    try:
        boots = {mac: machines.next_boot(mac) for mac in site.hosts}
    finally:
        machines.close()
    root = site.settings.root
    configs.write(root, configs.build(site, boots, server_url,
                                      GUEST_SERVER))
    return boots[MACS["job"]].lease


def command_line(boot):
    """The kernel's "Command line:" line, once it is whole."""
    boot.wait_for("Command line:", WAIT)
    for _ in range(100):
        tail = boot.output[boot.output.index("Command line:"):]
        if "\n" in tail:
            return tail.splitlines()[0]
        time.sleep(0.1)
    raise AssertionError("the kernel's command line never ended")


def bios(site_dir, mac, bootfile, tftp=True):
    netdev = f"user,id=n0,bootfile={bootfile}"
    if tftp:
        netdev += f",tftp={site_dir / 'boot'}"
    return qemu.base_args(memory=512) + [
        "-netdev", netdev, "-device", f"e1000,netdev=n0,mac={mac}",
        "-drive", f"file={site_dir / 'disk.img'},format=raw,if=ide,"
                  f"snapshot=on",
        "-boot", "n"]


def uefi(site_dir, tmp_path, mac, bootfile, nic="virtio-net-pci,romfile="):
    """OVMF; with the virtio NIC and no option ROM, the firmware's own
    PXE client loads `bootfile` (QEMU's NIC ROMs are iPXE)."""
    return qemu.base_args(memory=1024,
                          uefi_vars=qemu.ovmf_vars(tmp_path)) + [
        "-netdev", f"user,id=n0,tftp={site_dir / 'boot'},"
                   f"bootfile={bootfile}",
        "-device", f"{nic},netdev=n0,mac={mac}"]


# ---- pxelinux ---------------------------------------------------------

def test_pxelinux_boots_a_machines_job_from_its_own_file(site_dir):
    lease = build(site_dir, "http://10.0.2.2:8080/")
    with qemu.Boot(bios(site_dir, MACS["job"], "pxelinux.0")) as boot:
        line = command_line(boot)
    assert "PXELINUX" in boot.output
    assert "rd.job=http://10.0.2.2:8080/jobs/restore.sh" in line
    assert f"rd.pxeconf.lease={lease}" in line
    assert "rd.pxeconf=http://10.0.2.2:8080/" in line


def test_pxelinux_menu_boots_its_default_for_an_unknown_machine(site_dir):
    build(site_dir, "http://10.0.2.2:8080/")
    with qemu.Boot(bios(site_dir, MACS["none"], "pxelinux.0")) as boot:
        line = command_line(boot)
    assert "Network boot" in boot.output        # menu.c32's title
    assert "rd.on_success=shell" in line and "rd.pxeconf" not in line


def test_pxelinux_local_boot_chains_the_first_disk(site_dir):
    build(site_dir, "http://10.0.2.2:8080/")
    with qemu.Boot(bios(site_dir, MACS["local"], "pxelinux.0")) as boot:
        boot.wait_for(LOCAL_MARK, WAIT)
    assert "PXELINUX" in boot.output and "Command line" not in boot.output


# ---- shim + GRUB ------------------------------------------------------

def test_grub_through_shim_boots_a_machines_job(site_dir, tmp_path):
    lease = build(site_dir, "http://10.0.2.2:8080/")
    with qemu.Boot(uefi(site_dir, tmp_path, MACS["job"],
                        "shimx64.efi")) as boot:
        line = command_line(boot)
    assert "Fetching Netboot Image grubx64.efi" in boot.output
    assert f"rd.pxeconf.lease={lease}" in line
    assert "rd.job=http://10.0.2.2:8080/jobs/restore.sh" in line


def test_secure_boot_shim_and_grub_boot_a_machines_job(site_dir,
                                                       tmp_path):
    """OVMF with Secure Boot on and Microsoft's keys: shim (signed by
    Microsoft) loads Debian's signed GRUB, which loads Debian's signed
    kernel with the job's command line."""
    code = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
    variables = tmp_path / "OVMF_VARS.ms.fd"
    shutil.copyfile("/usr/share/OVMF/OVMF_VARS_4M.ms.fd", variables)
    lease = build(site_dir, "http://10.0.2.2:8080/")
    args = [qemu.QEMU, "-accel", "tcg", "-m", "1024", "-nographic",
            "-no-reboot", "-smp", "1", "-machine", "q35,smm=on",
            "-global", "driver=cfi.pflash01,property=secure,value=on",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
            "-netdev", f"user,id=n0,tftp={site_dir / 'boot'},"
                       f"bootfile=shimx64.efi",
            "-device", f"virtio-net-pci,romfile=,netdev=n0,"
                       f"mac={MACS['job']}"]
    with qemu.Boot(args) as boot:
        line = command_line(boot)
        boot.wait_for("Secure boot enabled", WAIT)    # the kernel says so
    assert "Fetching Netboot Image grubx64.efi" in boot.output
    assert "Access Denied" not in boot.output
    assert f"rd.pxeconf.lease={lease}" in line


def test_grub_finds_the_older_colon_name_too(site_dir, tmp_path):
    build(site_dir, "http://10.0.2.2:8080/")
    dashed, colons = macaddr.grub_names(MACS["rescue"])
    os.unlink(site_dir / "boot" / dashed)
    assert (site_dir / "boot" / colons).is_file()
    with qemu.Boot(uefi(site_dir, tmp_path, MACS["rescue"],
                        "grubx64.efi")) as boot:
        line = command_line(boot)
    assert "rd.on_success=shell" in line


def test_grub_menu_boots_its_default_for_an_unknown_machine(site_dir,
                                                           tmp_path):
    build(site_dir, "http://10.0.2.2:8080/")
    with qemu.Boot(uefi(site_dir, tmp_path, MACS["none"],
                        "grubx64.efi")) as boot:
        line = command_line(boot)
    assert "Imaging shell" in boot.output
    assert "rd.on_success=shell" in line and "rd.pxeconf" not in line


def test_grub_local_boot_exits_to_the_firmware(site_dir, tmp_path):
    build(site_dir, "http://10.0.2.2:8080/")
    with qemu.Boot(uefi(site_dir, tmp_path, MACS["local"],
                        "grubx64.efi")) as boot:
        boot.wait_for("Booting `Boot from the local disk'", WAIT)
        after = len(boot.output)
        # the firmware goes on with its next boot option
        for _ in range(WAIT * 10):
            if "BdsDxe: loading" in boot.output[after:]:
                break
            time.sleep(0.1)
        assert "BdsDxe: loading" in boot.output[after:]
    assert "Command line" not in boot.output


@pytest.mark.needs("grub-mkstandalone", "mkfs.fat", "mcopy", "sfdisk")
def test_grub_local_boot_chains_the_disks_uefi_loader(site_dir, tmp_path):
    """--uefi=shim: shim, GRUB, the machine's local entry; GRUB finds the
    disk's /EFI/BOOT/BOOTX64.EFI by file and chain-loads it (GRUB 2.06's
    `exit` returns success, after which OVMF may stop in its menu)."""
    disk = esp_disk(tmp_path / "disk.img", tmp_path)
    build(site_dir, "http://10.0.2.2:8080/")
    args = uefi(site_dir, tmp_path, MACS["local"], "shimx64.efi",
                nic="virtio-net-pci,romfile=,bootindex=0") + [
        "-drive", f"file={disk},format=raw,if=none,id=d0,snapshot=on",
        "-device", "virtio-blk-pci,drive=d0,bootindex=1"]
    with qemu.Boot(args) as boot:
        boot.wait_for("Booting `Boot from the local disk'", WAIT)
        after = len(boot.output)
        boot.wait_for(LOCAL_MARK, WAIT)
    assert "Fetching Netboot Image grubx64.efi" in boot.output
    assert "BdsDxe: loading" not in boot.output[after:]


# ---- iPXE -------------------------------------------------------------

def test_ipxe_chains_a_machines_own_script(site_dir):
    with http_server(site_dir / "boot") as port:
        url = f"http://10.0.2.2:{port}/"
        lease = build(site_dir, url)
        with qemu.Boot(bios(site_dir, MACS["job"], f"{url}boot.ipxe",
                            tftp=False)) as boot:
            line = command_line(boot)
    assert f"ipxe/{macaddr.dashes(MACS['job'])}.ipxe" in boot.output
    assert f"rd.pxeconf.lease={lease}" in line
    assert f"rd.job={url}jobs/restore.sh" in line
    assert "initrd=initrd.img" not in line          # BIOS: not needed


def test_ipxe_menu_boots_its_default_for_an_unknown_machine(site_dir):
    with http_server(site_dir / "boot") as port:
        url = f"http://10.0.2.2:{port}/"
        build(site_dir, url)
        with qemu.Boot(bios(site_dir, MACS["none"], f"{url}boot.ipxe",
                            tftp=False)) as boot:
            line = command_line(boot)
    assert "No file for this machine" in boot.output
    assert "rd.on_success=shell" in line and "rd.pxeconf" not in line


def test_ipxe_local_boot_exits_to_the_bios(site_dir):
    with http_server(site_dir / "boot") as port:
        url = f"http://10.0.2.2:{port}/"
        build(site_dir, url)
        with qemu.Boot(bios(site_dir, MACS["local"], f"{url}boot.ipxe",
                            tftp=False)) as boot:
            boot.wait_for(LOCAL_MARK, WAIT)
    assert "Command line" not in boot.output


def test_ipxe_under_uefi_names_the_initrd_on_the_command_line(site_dir,
                                                              tmp_path):
    with http_server(site_dir / "boot") as port:
        url = f"http://10.0.2.2:{port}/"
        lease = build(site_dir, url)
        with qemu.Boot(uefi(site_dir, tmp_path, MACS["job"],
                            f"{url}boot.ipxe", nic="e1000")) as boot:
            line = command_line(boot)
    assert re.search(r"(^|\s)initrd=initrd\.img(\s|$)", line), line
    assert f"rd.pxeconf.lease={lease}" in line
