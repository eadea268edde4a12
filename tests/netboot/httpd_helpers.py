"""A real HttpServer on loopback, with a boot root and Machines of its own,
for the httpd tests; stopped at the end of each test."""

import os
import subprocess
import threading

import pytest

from diskimage.netboot.httpd import HttpServer
from diskimage.netboot.jobs import Machines
from tests.netboot.jobsite import MAC1, T0, Host, make_site

TOKEN = "s3cret-token-for-tests"


class Served:
    def __init__(self, tmp_path, **kw):
        self.root = tmp_path / "boot"
        (self.root / "ipxe").mkdir(parents=True)
        (self.root / "env").mkdir()
        (tmp_path / "secret").write_text("outside the root\n")
        os.symlink(tmp_path / "secret", self.root / "out-link")
        os.symlink("env/small.bin", self.root / "in-link")
        self.small = bytes(range(256)) * 4                  # 1 KiB
        (self.root / "env" / "small.bin").write_bytes(self.small)
        (self.root / "ipxe" / "52-54-00-12-34-56.ipxe").write_text(
            "#!ipxe\nexit\n")
        site = make_site(tmp_path, hosts=[
            Host(MAC1, name="pc01", job="restore", assigned=T0)])
        self.machines = Machines(site, tmp_path / "state" / "journal.jsonl")
        self.logs = []
        kw.setdefault("page", b"<!doctype html><title>console</title>\n")
        self.server = HttpServer(self.root, "127.0.0.1", 0, self.machines,
                                 TOKEN, self.logs.append, **kw)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.port}/"

    def stop(self):
        self.server.shutdown()
        self.thread.join(10)
        self.machines.close()
        assert not self.thread.is_alive()


@pytest.fixture
def served(tmp_path):
    s = Served(tmp_path)
    yield s
    s.stop()


def curl(*args, check=True):
    """curl's output, with -w's status code as the last line."""
    out = subprocess.run(["curl", "-sS", "--max-time", "60", *args],
                         capture_output=True, check=False)
    if check and out.returncode not in (0, 22):
        raise AssertionError(f"curl {args}: {out.returncode} {out.stderr}")
    return out
