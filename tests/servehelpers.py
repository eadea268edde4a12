"""`pxeconf serve` as a program for the tests: a site of its own in a
tmp directory (a job on a bundle of stand-in files: the TFTP and HTTP
tests need bytes, not a kernel), started on 127.0.0.1 (or inside a
namespace) with free high ports, read until it says it serves, stopped by
the test with a signal."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.signals import default_signals

ROOT = Path(__file__).resolve().parent.parent
MAC = "52:54:00:12:34:56"

SITE = """\
# a test site
[site]
root = boot
timeout = 3
default = local
retries = 1
fallback = local

[menu local]
label = Boot from the local disk
local = yes

[job restore]
label = Restore the lab image
bundle = env
script = jobs/restore.sh

[host {mac}]
name = pc01
job = restore
once = yes
assigned = 2026-12-01T16:30:00Z
"""


def make_site(directory, mac=MAC):
    directory = Path(directory)
    boot = directory / "boot"
    for name, data in (("env/vmlinuz", b"kernel " * 1000),
                       ("env/initrd.img", os.urandom(100_000)),
                       ("jobs/restore.sh", b"echo restoring\n")):
        (boot / name).parent.mkdir(parents=True, exist_ok=True)
        (boot / name).write_bytes(data)
    site = directory / "pxeconf.site"
    site.write_text(SITE.format(mac=mac))
    return site


def free_port(kind=socket.SOCK_STREAM, address="127.0.0.1"):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class Serve:
    """A running `pxeconf serve`; .lines holds its stderr lines."""

    def __init__(self, site, *extra, address="127.0.0.1", prefix=(),
                 http_port=None, tftp_port=None, port_from_site=False):
        """`port_from_site`: give no --http-port (the site file's
        http-port must then be `http_port`)."""
        self.address = address
        self.http_port = http_port or free_port()
        self.tftp_port = tftp_port or free_port(socket.SOCK_DGRAM)
        self.site = Path(site)
        self.lines = []
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "pxeconf", "serve",
             f"--listen={address}",
             *([] if port_from_site else [f"--http-port={self.http_port}"]),
             f"--tftp-port={self.tftp_port}", f"--site={site}", *extra],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()
        with self._seen:
            self.lines.append(None)     # the end
            self._seen.notify_all()

    def wait_for(self, words, timeout=60):
        """The first stderr line holding `words`; AssertionError if serve
        ends first."""
        end = time.monotonic() + timeout
        with self._seen:
            while True:
                for line in self.lines:
                    if line is not None and words in line:
                        return line
                assert None not in self.lines, \
                    f"serve ended: {self.text()}"
                left = end - time.monotonic()
                assert left > 0, f"no {words!r} from serve: {self.text()}"
                self._seen.wait(left)

    def ready(self):
        return self.wait_for("pxeconf: serving ")

    def text(self):
        return "\n".join(line for line in self.lines if line is not None)

    @property
    def url(self):
        return f"http://{self.address}:{self.http_port}/"

    def machines(self):
        with urllib.request.urlopen(self.url + "api/machines",
                                    timeout=10) as answer:
            return {m["mac"]: m for m in json.load(answer)["machines"]}

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._reader.join(10)


def tftp_get(address, port, name, dest):
    """tftp-hpa's client; its exit status says nothing (DESIGN facts):
    the content tells.  Returns the bytes got, or None."""
    Path(dest).unlink(missing_ok=True)
    subprocess.run(["tftp", "-m", "binary", address, str(port), "-c", "get",
                    name, str(dest)], capture_output=True, timeout=60)
    try:
        data = Path(dest).read_bytes()
    except FileNotFoundError:
        return None
    return data or None


def curl(url, *args):
    return subprocess.run(["curl", "-sS", "--max-time", "30", *args, url],
                          capture_output=True, timeout=60)
