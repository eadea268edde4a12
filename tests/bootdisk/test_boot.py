"""The initramfs boots in QEMU (TCG, serial console) and runs its job: a
real restore of a captured demo disk fetched over HTTP, checked from the
host with fsck and file digests; a failing job is reported and reboots or
drops to a shell as asked."""

import subprocess

import pytest

from bootdisk import qemu
from bootdisk.cli import main as bootdisk_main
import demodisk

from tests.bootdisk_helpers import (CMDLINE, DIST, GUEST_HOST, console_tail,
                                    host_kernel, http_server, need_qemu, toolkit,
                                    user_net, virtio_disk)

BOOT_TIMEOUT = 300
pytestmark = pytest.mark.boot


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A captured demo disk and two job scripts, served over HTTP."""
    need_qemu()
    toolkit()
    root = tmp_path_factory.mktemp("served")
    disk = root / "source.img"
    manifest = demodisk.make_gpt_demo(disk, files=120)
    subprocess.run([DIST / "rdeploy", "capture", disk, root / "img.rdi",
                    "--quiet"], check=True)
    (root / "fail.sh").write_text("echo 'job: about to fail'\nexit 3\n")
    with http_server(root) as port:
        yield {"root": root, "port": port, "manifest": manifest,
               "size": disk.stat().st_size}


def _boot(initrd, extra, cmdline=CMDLINE):
    return qemu.Boot(qemu.base_args() + [
        "-kernel", host_kernel(), "-initrd", initrd, "-append", cmdline,
        *extra])


def test_job_restores_image_fetched_over_http(served, tmp_path):
    job = tmp_path / "restore.sh"
    job.write_text(
        "set -e\n"
        f"wget -q -O - http://{GUEST_HOST}:{served['port']}/img.rdi | "
        "rdeploy restore --yes --quiet - /dev/vda\n"
        "sync\n")
    initrd = tmp_path / "restore.initrd"
    assert bootdisk_main(["initrd", "-o", str(initrd), f"--job={job}"]) == 0
    target = tmp_path / "target.img"
    with open(target, "wb") as f:
        f.truncate(served["size"])
    with _boot(initrd, virtio_disk(target) + user_net()) as boot:
        code = boot.wait(BOOT_TIMEOUT)
        out = boot.output
    assert "bootdisk: job finished: exit 0" in out, console_tail(boot)
    assert "bootdisk: network: eth0 10.0.2.15/24" in out
    assert "reboot: Power down" in out and code == 0
    assert demodisk.check_disk(target, served["manifest"]) == []


@pytest.fixture(scope="module")
def no_job_initrd(served, tmp_path_factory):
    """An initramfs without a job, rebooting on failure."""
    initrd = tmp_path_factory.mktemp("nojob") / "nojob.initrd"
    assert bootdisk_main(["initrd", "-o", str(initrd),
                          "--on-failure=reboot"]) == 0
    return initrd


def test_failing_job_from_url_reports_and_reboots(served, no_job_initrd):
    url = f"http://{GUEST_HOST}:{served['port']}/fail.sh"
    with _boot(no_job_initrd, user_net(),
               f"{CMDLINE} rd.job={url}") as boot:
        code = boot.wait(BOOT_TIMEOUT)
        out = boot.output
    assert f"bootdisk: fetching job {url}" in out, console_tail(boot)
    assert "job: about to fail" in out
    assert "bootdisk: job FAILED: exit 3" in out
    assert "reboot: Restarting system" in out, console_tail(boot)
    assert "Power down" not in out and code == 0


def test_failed_job_drops_to_a_working_shell(served, no_job_initrd):
    url = f"http://{GUEST_HOST}:{served['port']}/fail.sh"
    cmdline = f"{CMDLINE} rd.job={url} rd.on_failure=shell"
    with _boot(no_job_initrd, user_net(), cmdline) as boot:
        boot.wait_for("bootdisk: job FAILED: exit 3", BOOT_TIMEOUT)
        boot.wait_for("bootdisk: starting a shell", 60)
        boot.send("echo SHELL-$((40 + 2)); rdeploy --version\n")
        boot.wait_for("SHELL-42", 60)
        boot.wait_for("rdeploy 0.", 60)
        boot.send("poweroff -f\n")
        code = boot.wait(60)
    assert "Restarting system" not in boot.output and code == 0


def test_missing_job_url_fails_the_boot_cleanly(served, no_job_initrd):
    """No network answer for the job: one FAILED line, then the failure
    action (reboot), not a hang."""
    url = f"http://{GUEST_HOST}:{served['port']}/no-such-job.sh"
    with _boot(no_job_initrd, user_net(), f"{CMDLINE} rd.job={url}") as boot:
        boot.wait(BOOT_TIMEOUT)
    out = boot.output
    assert f"bootdisk: cannot fetch the job from {url}" in out
    assert "bootdisk: job FAILED: exit 1" in out
    assert "reboot: Restarting system" in out


def test_screen_shows_the_job_and_its_status(served, tmp_path):
    """The screen (tty0), not only the serial port: the VGA text memory,
    read through QEMU's monitor, holds the job's output and status line
    (the boot-time console here is vgacon, text mode)."""
    job = tmp_path / "job.sh"
    job.write_text("echo on-screen-$((6 * 7))\n")
    initrd = tmp_path / "screen.initrd"
    assert bootdisk_main(["initrd", "-o", str(initrd), f"--job={job}",
                          "--on-success=shell"]) == 0
    sock = tmp_path / "monitor.sock"
    with _boot(initrd, qemu.monitor_args(sock),
               "console=tty0 console=ttyS0,115200 panic=10") as boot:
        boot.wait_for("bootdisk: starting a shell", BOOT_TIMEOUT)
        screen = qemu.screen_text(str(sock))
        boot.send("poweroff -f\n")
        boot.wait(60)
    assert any("bootdisk: job finished: exit 0" in row for row in screen), \
        "\n".join(screen)
    assert "on-screen-42" in screen
