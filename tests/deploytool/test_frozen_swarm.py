"""libtorrent inside the frozen toolkit (deploytool/recipe/deploytool.spec
collects it), run as boot media run it: `env -i dist/rdeploy swarm ...`.

A frozen `swarm seed` serves a torrent that a frozen `swarm prepare`
wrote, on loopback, and a frozen `swarm receive` gets the disk from it
alone (no web seed): both ends opened libtorrent sessions, so the
extension module and the libraries beside it load from the binary.  A
hostile torrent is refused with its own exit code (3 or 4), never 10
(libtorrent missing).  `make test` freezes dist/ first; without it these
tests fail rather than skip, as tests/bootdisk/test_frozen.py does."""

import json
import signal
import socket
import subprocess

import pytest

import demodisk
from tests.bootdisk_helpers import DIST, toolkit
from tests.bootdisk_helpers import bare as _bare

pytestmark = pytest.mark.needs("e2fsck", "fsck.fat", "mcopy")


@pytest.fixture(scope="module")
def frozen():
    toolkit()
    return DIST / "rdeploy"


def bare(*args, **kw):
    """bootdisk_helpers.bare, ended after 120 s."""
    return _bare(*args, timeout=120, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_frozen_seed_and_receive_through_libtorrent(frozen, tmp_path):
    disk, image = tmp_path / "golden.img", tmp_path / "golden.rdi"
    manifest = demodisk.make_gpt_demo(disk, files=40)
    assert bare(frozen, "capture", disk, image, "--quiet").returncode == 0
    port = free_port()
    torrent = tmp_path / "lab.torrent"
    made = bare(frozen, "swarm", "prepare", image, "-o", torrent,
                f"--peer=127.0.0.1:{port}", "--quiet")
    assert made.returncode == 0, made.stderr.decode()
    seeder = subprocess.Popen(
        ["env", "-i", frozen, "swarm", "seed", torrent,
         f"--listen=127.0.0.1:{port}", "--progress=none"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        target = tmp_path / "disk.img"
        with open(target, "wb") as f:
            f.truncate(disk.stat().st_size)
        got = bare(frozen, "swarm", "receive", torrent, target, "--yes",
                   f"--listen=127.0.0.1:{free_port()}", "--wait=30",
                   "--progress=json")
    finally:
        seeder.send_signal(signal.SIGTERM)
        out, err = seeder.communicate(timeout=60)
    lines = got.stderr.decode().splitlines()
    assert got.returncode == 0, "\n".join(lines[-5:]) + err.decode()
    end = json.loads(lines[-1])["result"]
    fetched = end["wanted_bytes"] - end["zeroed_bytes"]   # not zeroed
    assert end["verified"] is True and end["peer_bytes"] >= fetched > 0, end
    assert seeder.returncode == 143, err.decode()
    assert demodisk.check_disk(target, manifest) == []
    check = bare(frozen, "verify-target", target, image)
    assert check.returncode == 0, check.stderr.decode()


@pytest.mark.parametrize("data", [b"not bencode", b"d4:infoi1ee",
                                  b"d4:infod4:name3:abcee"])
def test_frozen_receive_refuses_a_hostile_torrent(frozen, tmp_path, data):
    torrent, target = tmp_path / "bad.torrent", tmp_path / "disk.img"
    torrent.write_bytes(data)
    target.write_bytes(b"\0" * 65536)
    got = bare(frozen, "swarm", "receive", torrent, target, "--yes")
    said = got.stderr.decode()
    assert got.returncode in (3, 4), said
    assert said.count("\n") == 1 and "bad.torrent" in said, said
    assert target.read_bytes() == b"\0" * 65536     # not touched
