"""The built-in TFTP server with real clients (tftp-hpa's `tftp`, atftp,
curl) on 127.0.0.1 and a free port: files arrive byte for byte, options are
negotiated as the clients' own output shows, a missing file is an error,
20 clients at once from 20 addresses are all served."""

import subprocess
import threading

import pytest

from tests.tftp_helpers import (FILES, atftp, curl, make_root, running, sha,
                                tftp_hpa)

pytestmark = pytest.mark.needs("tftp", "atftp", "curl")

SMALL = [name for name in FILES if name != "big.bin"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One root (40 MiB file included) and one server for the module."""
    root, digests = make_root(tmp_path_factory.mktemp("tftp"))
    with running(root) as server:
        yield server, digests


def fetched(path):
    return sha(path.read_bytes()) if path.exists() else None


@pytest.mark.parametrize("name", SMALL)
def test_tftp_hpa(site, tmp_path, name):
    server, digests = site
    tftp_hpa(server.port, name, "out", tmp_path)
    assert fetched(tmp_path / "out") == digests[name]


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("blksize", [None, 1428])
def test_curl(site, tmp_path, name, blksize):
    server, digests = site
    proc = curl(server.port, name, "out", tmp_path, blksize=blksize)
    assert proc.returncode == 0, proc.stdout
    assert fetched(tmp_path / "out") == digests[name]
    if blksize:
        assert f"blksize parsed from OACK ({blksize})" in proc.stdout


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("blksize,window", [(512, 1), (1428, 4), (8, 64),
                                            (65464, 3)])
def test_atftp_options(site, tmp_path, name, blksize, window):
    server, digests = site
    proc = atftp(server.port, name, "out", tmp_path,
                 [("blksize", blksize), ("windowsize", window),
                  ("tsize", 0)])
    assert fetched(tmp_path / "out") == digests[name], proc.stdout
    oack = [line for line in proc.stdout.splitlines()
            if line.startswith("received OACK")]
    assert len(oack) == 1, proc.stdout
    for option in (f"blksize: {blksize}", f"windowsize: {window}"):
        assert option in oack[0]
    # tsize of an empty file is left out (curl refuses "tsize 0")
    assert (f"tsize: {FILES[name]}," in oack[0]) == (FILES[name] > 0)


def test_pxelinux_cfg(site, tmp_path):
    """A name in a directory, with the leading / loaders send."""
    server, digests = site
    proc = curl(server.port, "/pxelinux.cfg/default", "out", tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert fetched(tmp_path / "out") == digests["pxelinux.cfg/default"]


def test_symlink_inside_the_root(site, tmp_path):
    server, digests = site
    tftp_hpa(server.port, "inside-link", "out", tmp_path)
    assert fetched(tmp_path / "out") == digests["small.bin"]


# Past block 65535 the block number rolls over (to 0): 40 MiB at 512 bytes
# is 81920 blocks; a window of 7 makes a window straddle the rollover.
ROLLOVER = [
    ("tftp-hpa, 512", lambda p, o, c: tftp_hpa(p, "big.bin", o, c)),
    ("curl, 512", lambda p, o, c: curl(p, "big.bin", o, c)),
    ("curl, 1428", lambda p, o, c: curl(p, "big.bin", o, c, blksize=1428)),
    ("atftp, 512, window 7", lambda p, o, c: atftp(
        p, "big.bin", o, c, [("blksize", 512), ("windowsize", 7)])),
]


@pytest.mark.parametrize("client", [c for _, c in ROLLOVER],
                         ids=[n for n, _ in ROLLOVER])
def test_rollover(site, tmp_path, client):
    server, digests = site
    client(server.port, "out", tmp_path)
    assert fetched(tmp_path / "out") == digests["big.bin"]
    (tmp_path / "out").unlink()


def test_missing_file(site, tmp_path):
    server, _ = site
    before = len(server.lines("no-such-file", "not found"))
    hpa = tftp_hpa(server.port, "no-such-file", "a", tmp_path)
    assert "Error code 1: file not found" in hpa.stdout
    assert not (tmp_path / "a").exists() or \
        (tmp_path / "a").stat().st_size == 0
    proc = curl(server.port, "no-such-file", "b", tmp_path)
    assert proc.returncode == 68, proc.stdout     # curl: TFTP not found
    at = atftp(server.port, "no-such-file", "c", tmp_path)
    assert "file not found" in at.stdout
    assert len(server.lines("no-such-file", "not found")) == before + 3


def test_twenty_clients_at_once(tmp_path):
    """20 curl clients from 127.0.0.10-29, with the server's default
    bounds: the request hook holds every transfer until all 20 have
    arrived, so they are all running at the same time."""
    root, digests = make_root(tmp_path, big=False)
    data = bytes(range(256)) * 8192                  # 2 MiB
    (root / "env.img").write_bytes(data)
    barrier = threading.Barrier(20, timeout=60)
    seen = []

    def hook(name, client):
        seen.append((name, client[0]))
        barrier.wait()

    with running(root, on_request=hook) as server:
        procs = []
        for i in range(20):
            address = f"127.0.0.{10 + i}"
            out = tmp_path / f"out{i}"
            procs.append(subprocess.Popen(
                ["curl", "-sS", "--interface", address, "--tftp-blksize",
                 "1428", "-o", str(out),
                 f"tftp://127.0.0.1:{server.port}/env.img"],
                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL))
        codes = [p.wait(timeout=120) for p in procs]
        errors = [p.stderr.read() for p in procs]
        for p in procs:
            p.stderr.close()
    assert codes == [0] * 20, errors
    assert not barrier.broken
    for i in range(20):
        assert sha((tmp_path / f"out{i}").read_bytes()) == sha(data)
    assert sorted(address for _, address in seen) == sorted(
        f"127.0.0.{10 + i}" for i in range(20))
    assert {name for name, _ in seen} == {"env.img"}
    assert len(server.lines("sent env.img")) == 20


def test_netascii(site, tmp_path):
    """tftp-hpa in netascii mode gets the text back as it is: the server
    sends CR LF and CR NUL, the client turns them back."""
    server, digests = site
    text = b"DEFAULT local\nbare\rcarriage return\r\n\n"
    root = tmp_path / "boot"
    root.mkdir()
    (root / "text.cfg").write_bytes(text)
    with running(root) as own:
        proc = _run_netascii(own.port, tmp_path)
        assert (tmp_path / "out").read_bytes() == text, proc.stdout
        assert own.lines(f"sent text.cfg ({len(text) + 5} bytes")


def _run_netascii(port, cwd):
    return subprocess.run(["tftp", "-v", "-m", "netascii", "127.0.0.1",
                           str(port), "-c", "get", "text.cfg", "out"],
                          cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)
