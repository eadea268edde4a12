"""A machine boots bootdisk's PXE bundle into a pxeconf job that joins a
multicast session from the server and restores its disk (issue 17).

The room of the pxeconf boot tests (tests/pxeconf/room.py: the site's
own DHCP server, `pxeconf serve --proxy-dhcp`, a BIOS QEMU on a tap of
the bridge) gets one more job, the one docs/pxeconf.md shows:

    rdeploy multicast receive /dev/vda --yes --interface=eth0 --progress=json

and the server's namespace runs `rdeploy multicast send lab.rdi`
(udp-sender under it).  The machine boots, DHCP gives its eth0 an
address with a broadcast address (udpcast needs one), the job joins the
session and restores; its progress reaches pxeconf (the API's machine
object and the serial console); the sender ends by itself once the one
receiver has the image, and leaves no udp-sender behind.  The guest's
disk then passes fsck, the file digest of the golden disk and `rdeploy
verify-target` against the image, and equals, byte for byte, a restore
of the same image onto a blank disk on the host.

Whatever happens, every process of the test's namespaces is stopped:
the Lan stops what it started (the sender, serve, dnsmasq, QEMU), then
anything still running that was in those namespaces (an orphaned
udp-sender, say) is killed by its pid, and the test fails if there was
one.
"""

import ctypes
import signal
import subprocess
import sys
import time

import pytest

from tests.bootdisk.jobboot import (give_job, identity, job_done, ns_pids,
                                    restored_as_on_host, room_of)
from tests.bootdisk_helpers import ROOT, host_kernel, need_qemu, toolkit
from tests.pxeconf import netboot_helpers as nb

pytestmark = [pytest.mark.boot,
              pytest.mark.needs("dnsmasq", "qemu-system-x86_64", "ip", "curl",
                                "sfdisk", "mkfs.fat", "mkfs.ext4", "syslinux",
                                "mcopy", "grub-mkstandalone", "udp-sender",
                                "udp-receiver", root=True)]

MAC = "52:54:00:77:17:01"
JOB_BOOT = 300       # PXE, kernel and initrd over HTTP, the session (TCG)
SESSION_END = 60     # the sender's end after the job's

WRITTEN = "multicast: /dev/vda written"


def docs_job():
    """The job of docs/pxeconf.md ("A room at once"), taken from the page
    itself (so the page shows what was booted), on QEMU's disk (vda)."""
    text = (ROOT / "docs" / "pxeconf.md").read_text()
    start = text.index("#!/bin/sh\n# Join the server's multicast session")
    job = text[start:text.index("```", start)]
    assert "rdeploy multicast receive /dev/sda --yes" in job, job
    return job.replace("/dev/sda", "/dev/vda")


JOB = docs_job()


def sender_args(image):
    """The server's side: one session, started by the first receiver."""
    return [sys.executable, "-m", "rdeploy", "multicast", "send", image,
            "--interface=eth0", "--min-receivers=1"]


def _die_with_us():
    """Popen's preexec_fn: the child gets SIGTERM when this test process
    dies, even by SIGKILL (PR_SET_PDEATHSIG, kept across the exec of `ip
    netns exec`); rdeploy then stops its udp-sender."""
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)


def test_pxe_job_joins_a_multicast_session_and_restores(tmp_path):
    need_qemu()
    toolkit()
    host_kernel()
    with room_of(tmp_path / "room") as room:
        give_job(room, "multicast", JOB, "Join the multicast session", MAC,
                 "pc-mcast")
        image = room.boot / "images" / "lab.rdi"
        sender = nb.Logged(room.lan.start(
            room.srv, sender_args(image), cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_us), "sender")
        disk = nb.blank_disk(tmp_path / "disk.img")
        vm = room.vm("bios", disk, MAC)
        vm.servers = room.logs + [sender]
        start = time.monotonic()
        vm.start()
        vm.wait_for("bootdisk: reporting to " + room.url, JOB_BOOT)
        vm.wait_for(WRITTEN, JOB_BOOT)
        vm.wait_for("bootdisk: job finished: exit 0", 120)
        vm.wait_end(120)
        took = time.monotonic() - start
        try:
            code = sender.proc.wait(SESSION_END)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, f"sender: exit {code}\n{sender.tail()}"
        network = [line for line in vm.boot.plain().splitlines()
                   if "bootdisk: network: eth0 " in line]
        assert network, vm.why()
        guest = network[0].split("eth0 ", 1)[1].split("/")[0].strip()
        # its summary names who finished and who was dropped
        assert f"finished: {guest}; dropped: none" in sender.text(), \
            sender.tail()
        left = [identity(p) for p in ns_pids(room.srv)]
        assert not any(i and i[0].startswith("udp-sender") for i in left), \
            f"udp-sender outlived its rdeploy: {left}"

        # The job's --progress=json reached pxeconf (relayed as restore's
        # is) and every console.
        end = job_done(room, vm, MAC, "multicast receive")
        assert end["summary"].startswith(
            f"rdeploy: restored multicast session of {room.server} -> "
            f"/dev/vda: "), end
        vm.off()

    assert room.leftovers == [], room.leftovers
    restored_as_on_host(disk, room.digest, image, tmp_path)
    print(f"\nPXE boot, multicast session, restore: {took:.0f} s", end="")
