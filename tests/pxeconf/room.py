"""A room for the pxeconf boot tests: a LAN of namespaces (tests.netns)
with the site's own DHCP server (a plain dnsmasq, no PXE options) in one
namespace and `pxeconf serve --proxy-dhcp` in another, over a site made
from an empty directory as docs/pxeconf.md tells a person to:

    pxeconf init SITE
    bootdisk pxe -o SITE/boot/env ...          (the frozen toolkit)
    rdeploy capture DISK SITE/boot/images/lab.rdi
    SITE/boot/jobs/restore.sh, restore-pause.sh
    pxeconf job add restore --bundle=env --script=jobs/restore.sh ...
    pxeconf menu default local --timeout=1

Machines are tests.pxeconf.netboot_helpers.VM on taps of the bridge.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.bootdisk_helpers import DIST, ROOT
from tests.netns import Lan
from tests.pxeconf import netboot_helpers as nb

HTTP_PORT = 8080
TOKEN = "room-token-for-the-boot-tests"
SERVE_START = 60

#: The job of the docs' walk-through: the server it booted from is on the
#: kernel command line (rd.pxeconf=URL), the image below it.
RESTORE = """\
#!/bin/sh
# Lay the lab image onto the machine's disk, from the server it booted from.
set -e
server=$(sed -n 's/.*rd\\.pxeconf=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
wget -q -O- "${server}images/lab.rdi" |
    rdeploy restore - /dev/vda --yes --progress=json
sync
echo "restore: /dev/vda written"
"""

#: The same, then a pause: the window in which a test cuts the job short
#: (the disk written, the job not ended).
RESTORE_PAUSE = RESTORE + "sleep 15\necho 'restore: pause over'\n"


def pxeconf(*args, check=True):
    """`pxeconf ARGS` of this tree, as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "pxeconf",
                           *map(os.fspath, args)], cwd=ROOT,
                          capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, \
            f"pxeconf {' '.join(map(str, args))}: exit {proc.returncode}\n" \
            f"{proc.stderr}"
    return proc


class Room:
    def __init__(self, scratch):
        self.scratch = Path(scratch)
        self.lan = Lan()
        try:
            self._setup()
        except BaseException:
            self.lan.close()
            raise

    def _setup(self):
        lan = self.lan
        self.site_dir = self.scratch / "site"
        self.site = self.site_dir / "pxeconf.site"
        self.boot = self.site_dir / "boot"
        self.server = lan.address(2)
        self.url = f"http://{self.server}:{HTTP_PORT}/"
        pxeconf("init", self.site_dir)
        source = self.scratch / "golden.img"
        self.digest = nb.local_disk(source, self.scratch)
        (self.boot / "images").mkdir()
        subprocess.run([DIST / "rdeploy", "capture", source,
                        self.boot / "images" / "lab.rdi", "--quiet"],
                       check=True)
        subprocess.run([DIST / "bootdisk", "pxe", "-o", self.boot / "env",
                        f"--cmdline={nb.CONSOLE}", "--on-success=reboot",
                        "--on-failure=reboot", "--quiet"], check=True)
        (self.boot / "jobs").mkdir()
        (self.boot / "jobs" / "restore.sh").write_text(RESTORE)
        (self.boot / "jobs" / "restore-pause.sh").write_text(RESTORE_PAUSE)
        for name, label in (("restore", "Restore the lab image"),
                            ("restore-pause", "Restore, then pause")):
            pxeconf("job", "add", name, "--bundle=env",
                    f"--script=jobs/{name}.sh", f"--label={label}",
                    f"--cmdline={nb.CONSOLE} rd.on_success=reboot "
                    f"rd.on_failure=reboot", f"--site={self.site}")
        pxeconf("menu", "default", "local", "--timeout=1",
                f"--site={self.site}")
        token = self.scratch / "token"
        token.write_text(TOKEN + "\n")
        token.chmod(0o600)
        site_ns = lan.host("site", 1)
        self.srv = lan.host("srv", 2)
        self.dhcp = nb.site_dhcp(lan, site_ns, self.scratch)
        proc = lan.start(self.srv, [
            sys.executable, "-m", "pxeconf", "serve",
            f"--listen={self.server}", f"--proxy-dhcp={lan.network}",
            "--interface=eth0", f"--http-port={HTTP_PORT}",
            f"--token-file={token}", f"--site={self.site}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.serve = nb.Logged(proc, "serve")
        self.serve.wait_for("serving ", SERVE_START)
        self.serve.wait_for("proxy on subnet", SERVE_START)
        self.taps = 0

    @property
    def logs(self):
        return [self.dhcp, self.serve]

    def vm(self, firmware, disk, mac):
        tap = self.lan.tap(f"tap{self.taps}")
        self.taps += 1
        vm = nb.VM(self.lan, tap, firmware, disk, mac,
                   self.scratch / f"vm-{mac.replace(':', '')}")
        vm.servers = self.logs
        return vm

    def curl(self, path, *args):
        """curl inside the server's namespace; (HTTP status, body)."""
        proc = self.lan.run(self.srv, [
            "curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time",
            "20", *args, self.url + path], check=False, text=True)
        body, _, status = proc.stdout.rpartition("\n")
        return int(status or 0), body

    def machine(self, mac):
        status, body = self.curl("api/machines")
        assert status == 200, f"api/machines: {status} {body}"
        for machine in json.loads(body)["machines"]:
            if machine["mac"] == mac:
                return machine
        return None

    def wait_machine(self, mac, what, test, timeout=60):
        """Wait until the API's machine object passes `test`; return it."""
        deadline = time.monotonic() + timeout
        machine = None
        while time.monotonic() < deadline:
            machine = self.machine(mac)
            if machine is not None and test(machine):
                return machine
            time.sleep(0.5)
        raise AssertionError(f"{mac}: not {what} within {timeout} s: "
                             f"{json.dumps(machine)}\n{self.serve.tail()}")

    def close(self):
        self.lan.close()
