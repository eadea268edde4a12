"""What the bootdisk tests share: the frozen toolkit, the host kernel, an
HTTP server on 127.0.0.1 (QEMU's user network shows it to the guest as
10.0.2.2), and QEMU command lines."""

import contextlib
import functools
import http.server
import os
import subprocess
import threading
from pathlib import Path

import pytest

from bootdisk import kernel as kernels, qemu
from tests import needs

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
GUEST_HOST = "10.0.2.2"
CMDLINE = "console=ttyS0,115200 panic=10"


def toolkit():
    """dist/deploytool; the test fails (not skips) when it is missing, so
    CI cannot pass on an unfrozen tree."""
    binary = DIST / "deploytool"
    assert binary.is_file(), "dist/deploytool is missing: run `make freeze`"
    return binary


def bare(*args, **kw):
    """Run a command with an empty environment (env -i), as boot media run
    the frozen tools; stdin is /dev/null unless `input` is given."""
    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(["env", "-i", *map(str, args)], capture_output=True,
                          **kw)


def host_kernel():
    try:
        return kernels.default_kernel()
    except Exception as exc:  # noqa: BLE001 - reported as the skip reason
        pytest.skip(f"no kernel to boot ({exc}); install linux-image-amd64")


def need_qemu():
    needs.require(qemu.QEMU)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_server(directory):
    """Serve `directory` on 127.0.0.1; yields the port."""
    handler = functools.partial(_Quiet, directory=os.fspath(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def user_net(tftp=None, bootfile=None, model="virtio-net-pci"):
    netdev = "user,id=n0"
    if tftp:
        netdev += f",tftp={tftp}"
    if bootfile:
        netdev += f",bootfile={bootfile}"
    return ["-netdev", netdev, "-device", f"{model},netdev=n0"]


def virtio_disk(path):
    return ["-drive", f"file={path},if=virtio,format=raw"]


def console_tail(boot, lines=40):
    return "\n".join(boot.output.splitlines()[-lines:])
