"""A machine boots bootdisk's PXE bundle into a pxeconf job that joins a
BitTorrent swarm seeded by `pxeconf serve` and restores its disk (issue
18).

The room of the pxeconf boot tests (tests/pxeconf/room.py: the site's
own DHCP server, `pxeconf serve --proxy-dhcp`, a QEMU on a tap of the
bridge, BIOS (SeaBIOS, iPXE) or UEFI (OVMF's own PXE, then snponly.efi)
gets the swarm job that docs/pxeconf.md shows:

    rdeploy swarm receive "${server}images/lab.torrent" /dev/vda --yes ...

The torrent is prepared into the boot root with `--peer=SERVER:6881` and
no web seed, so every byte the guest gets comes over libtorrent's peer
protocol from serve's seeder (tests/netboot/test_serve_swarm.py has the
web seed).  The seeder is started the way a person would: an edit of
the running site file (`swarm-seed = images/lab.torrent`), which serve
reloads.  The machine boots; the job's receive (the frozen toolkit's
libtorrent, in the initramfs) writes the disk, checks every chunk and
the root digest, and reports `done`, its progress having reached
pxeconf (the API's machine object) and the serial console.  The guest's
disk then passes fsck, the file digest of the golden disk and `rdeploy
verify-target` against the image, and equals, byte for byte, a restore
of the same image onto a blank disk on the host; serve's seeder says
what it uploaded when the room is closed.
"""

import subprocess
import time

import pytest

from tests.bootdisk.jobboot import (give_job, job_done, restored_as_on_host,
                                    room_of)
from tests.bootdisk_helpers import (DIST, ROOT, host_kernel, need_qemu,
                                    toolkit)
from tests.pxeconf import netboot_helpers as nb

pytestmark = [pytest.mark.boot,
              pytest.mark.needs("dnsmasq", "qemu-system-x86_64", "ip", "curl",
                                "sfdisk", "mkfs.fat", "mkfs.ext4", "syslinux",
                                "mcopy", "grub-mkstandalone", root=True)]

#: BIOS: SeaBIOS, its e1000 ROM's iPXE; UEFI: OVMF's own PXE (arch 7),
#: snponly.efi, then the same boot.ipxe (tests/pxeconf/netboot_helpers.VM)
MACS = {"bios": "52:54:00:77:18:01", "uefi": "52:54:00:77:18:02"}
PORT = 6881
JOB_BOOT = 240       # PXE, kernel and initrd over HTTP (TCG)
RECEIVE = 180        # the receive, its check and the report

WRITTEN = "swarm: /dev/vda written"


def docs_job():
    """The job of docs/pxeconf.md ("a job that joins a swarm"), taken
    from the page itself (so the page shows what was booted), on QEMU's
    disk (vda), serving 2 s after its check instead of 30."""
    text = (ROOT / "docs" / "pxeconf.md").read_text()
    start = text.index("#!/bin/sh\n# Join the server's swarm")
    job = text[start:text.index("```", start)]
    assert "/dev/sda --yes" in job and "--seed-time=30" in job, job
    return job.replace("/dev/sda", "/dev/vda").replace("--seed-time=30",
                                                       "--seed-time=2")


JOB = docs_job()


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_pxe_job_joins_the_swarm_of_serve_and_restores(tmp_path, firmware):
    mac = MACS[firmware]
    need_qemu()
    toolkit()
    host_kernel()
    with room_of(tmp_path / "room") as room:
        image = room.boot / "images" / "lab.rdi"
        subprocess.run([DIST / "rdeploy", "swarm", "prepare", image, "-o",
                        room.boot / "images" / "lab.torrent",
                        f"--peer={room.server}:{PORT}", "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        text = room.site.read_text()
        room.site.write_text(text.replace(
            "[site]\n", "[site]\nswarm-seed = images/lab.torrent\n", 1))
        room.serve.wait_for(f"swarm: seeding images/lab.torrent on "
                            f"{room.server}:{PORT}", 30)
        give_job(room, "swarm", JOB, "Join the swarm", mac,
                 f"pc-swarm-{firmware}")
        disk = nb.blank_disk(tmp_path / "disk.img")
        vm = room.vm(firmware, disk, mac)
        start = time.monotonic()
        vm.start()
        vm.wait_for("bootdisk: reporting to " + room.url, JOB_BOOT)
        booted = time.monotonic() - start
        vm.wait_for(WRITTEN, RECEIVE)
        vm.wait_for("bootdisk: job finished: exit 0", 60)
        vm.wait_end(120)
        took = time.monotonic() - start

        # The job's --progress=json reached pxeconf and the console.
        end = job_done(room, vm, mac, "swarm receive")
        result = end["result"]
        # booted the way asked: pxeconf saw the firmware's PXE arch
        assert room.machine(mac)["firmware"].endswith(
            "bios" if firmware == "bios" else "efi"), room.machine(mac)
        assert result["verified"] is True, result
        # every byte over the peer protocol, from serve's seeder
        assert result["web_seed_bytes"] == 0, result
        assert result["peer_bytes"] >= \
            result["wanted_bytes"] - result["zeroed_bytes"] > 0, result
        vm.off()

    assert room.leftovers == [], room.leftovers
    stopped = [line for line in room.serve.text().splitlines()
               if "swarm: stopped seeding: images/lab.torrent " in line]
    assert stopped and " 0 B uploaded" not in stopped[-1], \
        room.serve.tail()
    restored_as_on_host(disk, room.digest, image, tmp_path)
    print(f"\n{firmware}: PXE boot {booted:.0f} s, swarm receive and report: "
          f"{took - booted:.0f} s ({result['peer_bytes']} bytes from the "
          f"seeder)", end="")
