"""The environment's /init under a lease of a real `pxeconf serve` (on
127.0.0.1, which QEMU's user network shows the guest as 10.0.2.2): the
kernel command line is the one serve wrote into the machine's pxelinux
config, the initramfs is bootdisk's with the frozen toolkit.  The job's
start is acknowledged before it runs, its progress lines reach the server
and the console, `done` switches the machine to local boot; a lease the
server no longer knows keeps the job from running at all."""

import re

import pytest

from bootdisk import qemu
from bootdisk.cli import main as bootdisk_main
from diskimage.netboot import macaddr

from tests.bootdisk_helpers import (CMDLINE, GUEST_HOST, console_tail,
                                    host_kernel, need_qemu, toolkit, user_net)
from tests.servehelpers import MAC, Serve, make_site

BOOT_TIMEOUT = 300
pytestmark = [pytest.mark.boot, pytest.mark.needs("curl")]

JOB = """\
echo "job: begins"
i=0
while [ $i -le 4 ]; do
    printf '{"event": "progress", "task": "restore", "done": %d, "total": 4}\\n' $i
    i=$((i + 1))
done
echo "job: RAN-$((6 * 7))"
"""


@pytest.fixture(scope="module")
def initrd(tmp_path_factory):
    need_qemu()
    toolkit()
    path = tmp_path_factory.mktemp("env") / "env.initrd"
    assert bootdisk_main(["initrd", "-o", str(path),
                          "--on-failure=reboot", "--on-success=reboot"]) == 0
    return path


@pytest.fixture
def served(tmp_path):
    site = make_site(tmp_path / "site")
    site.write_text(site.read_text().replace(
        "fallback = local\n", f"fallback = local\naddress = {GUEST_HOST}\n"))
    (tmp_path / "site/boot/jobs/restore.sh").write_text(JOB)
    server = Serve(site)
    try:
        server.ready()
        yield server
    finally:
        server.close()


def _cmdline(server):
    own = server.site.parent / "boot" / macaddr.pxelinux_name(MAC)
    append = [line for line in own.read_text().splitlines()
              if line.strip().startswith("APPEND ")]
    assert append, own.read_text()
    words = append[0].split(None, 1)[1]
    assert f"rd.pxeconf=http://{GUEST_HOST}:{server.http_port}/" in words
    return f"{CMDLINE} {words}"


def _boot(initrd, cmdline):
    return qemu.Boot(qemu.base_args() + [
        "-kernel", host_kernel(), "-initrd", initrd, "-append", cmdline,
        *user_net()])


def test_a_leased_job_reports_started_progress_and_done(initrd, served):
    cmdline = _cmdline(served)
    with _boot(initrd, cmdline) as boot:
        boot.wait(BOOT_TIMEOUT)
        out = boot.output
    assert "job: RAN-42" in out, console_tail(boot)
    assert '"done": 4' in out           # the relay passes every line on
    assert "bootdisk: job finished: exit 0" in out
    machine = served.machines()[MAC]
    assert machine["state"] == "done", served.text()
    assert machine["result"]["exit"] == 0 and machine["next"] == "local"
    assert machine["progress"]["done"] == 4
    assert any("job: RAN-42" in line for line in machine["log"])
    # the machine's config now boots the local disk
    assert "rd.pxeconf" not in (served.site.parent / "boot" /
                                macaddr.pxelinux_name(MAC)).read_text()


def test_a_stale_lease_keeps_the_job_from_running(initrd, served):
    cmdline = re.sub(r"rd\.pxeconf\.lease=\S+", "rd.pxeconf.lease=gone",
                     _cmdline(served))
    with _boot(initrd, cmdline) as boot:
        boot.wait(BOOT_TIMEOUT)
        out = boot.output
    assert "no job fetched, or its start not acknowledged: the job does " \
        "not run" in out, console_tail(boot)
    assert "does not know lease gone" in out
    assert "job: begins" not in out and "running job" not in out
    assert "bootdisk: job FAILED: exit 1" in out
    assert "reboot: Restarting system" in out
    assert served.machines()[MAC]["state"] == "assigned"
