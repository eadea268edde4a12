"""The network-boot harness itself, with today's pieces only: a LAN of
namespaces, a plain dnsmasq doing full DHCP and TFTP of a `bootdisk pxe`
directory, QEMU on a tap.  A SeaBIOS client (its NIC's ROM is iPXE, given
pxelinux.0) and an OVMF client (its own PXE, arch 7, given GRUB's
bootx64.efi) PXE-boot the bundle, restore
an image over HTTP onto its disk, and the restored disk boots by itself to
its marker.  If this fails, the pxeconf boots cannot pass either."""

import subprocess
import time

import pytest

from tests.bootdisk_helpers import DIST, host_kernel, need_qemu, toolkit
from tests.netns import Lan
from tests.pxeconf import netboot_helpers as nb

pytestmark = [pytest.mark.boot,
              pytest.mark.needs("dnsmasq", "qemu-system-x86_64", "ip",
                                "sfdisk", "mkfs.fat", "mkfs.ext4", "syslinux",
                                "mcopy", "grub-mkstandalone", root=True)]

HTTP_PORT = 8080
MAC = "52:54:00:77:00:01"


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_plain_dnsmasq_pxe_boots_the_bundle_and_restores(firmware, tmp_path):
    need_qemu()
    toolkit()
    host_kernel()
    source = tmp_path / "source.img"
    digest = nb.local_disk(source, tmp_path)
    served = tmp_path / "served"
    (served / "images").mkdir(parents=True)
    subprocess.run([DIST / "rdeploy", "capture", source,
                    served / "images" / "x.rdi", "--quiet"], check=True)
    job = tmp_path / "job.sh"
    with Lan() as lan:
        server = lan.address(2)
        job.write_text(
            "set -e\n"
            f"wget -q -O- http://{server}:{HTTP_PORT}/images/x.rdi | "
            "rdeploy restore - /dev/vda --yes --quiet\n"
            "sync\necho restore-ok\n")
        env = served / "env"
        subprocess.run([DIST / "bootdisk", "pxe", "-o", env, f"--job={job}",
                        "--timeout=1", "--on-success=poweroff",
                        f"--cmdline={nb.CONSOLE}", "--quiet"], check=True)
        srv = lan.host("srv", 2)
        dhcp = nb.site_dhcp(lan, srv, tmp_path, extra=[
            "--dhcp-match=set:efi,option:client-arch,7",
            "--dhcp-boot=tag:efi,bootx64.efi",
            "--dhcp-boot=tag:!efi,pxelinux.0",
            "--enable-tftp", f"--tftp-root={env}"])
        http = nb.http_files(lan, srv, server, HTTP_PORT, served)
        tap = lan.tap()
        disk = nb.blank_disk(tmp_path / "target.img")
        vm = nb.VM(lan, tap, firmware, disk, MAC, tmp_path)
        vm.servers = [dhcp, http]
        start = time.monotonic()
        vm.start()
        vm.wait_for("bootdisk: network: eth0 192.168.77.1", 600)
        vm.wait_for("restore-ok", 300)
        vm.wait_for("bootdisk: job finished: exit 0", 60)
        vm.wait_end(60)
        took = time.monotonic() - start
        vm.start(disk_first=True)
        vm.wait_for(f"{nb.MARKER} booted ({'bios' if firmware == 'bios' else 'efi'})", 120)
        vm.off()
        loader = {"bios": "pxelinux.0", "uefi": "bootx64.efi"}[firmware]
        assert f"sent {env}/{loader}" in dhcp.text(), dhcp.tail()
    assert nb.check_restored(disk, digest, tmp_path / "check") == [], \
        vm.why()
    print(f"{firmware}: PXE boot + restore: {took:.0f} s")
