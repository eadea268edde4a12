"""What the built-in TFTP server refuses, and how it keeps going: names
out of the root (real clients, and raw packets for what no client sends),
writes, floods from one address, a client that stops answering, duplicate
ACKs, strangers on a transfer's port, and shutdown in the middle of
transfers."""

import threading

import pytest

from diskimage.errors import BusyError, InputError
from diskimage.netboot.tftp import TftpServer
from tests.tftp_helpers import (Raw, ack, atftp, curl, make_root, rrq,
                                running, tftp_hpa)

CLIENTS = pytest.mark.needs("tftp", "atftp", "curl")


@pytest.fixture
def root(tmp_path):
    return make_root(tmp_path, big=False)[0]


@CLIENTS
@pytest.mark.parametrize("name,reason", [
    ("../secret", "traversal"),
    ("pxelinux.cfg/../../secret", "traversal"),
    ("//etc/passwd", "absolute path"),
    ("outside-link", "leads out of the boot root"),
    ("pxelinux.cfg", "is a directory"),
])
def test_refused_names_tftp_hpa(root, tmp_path, name, reason):
    with running(root) as server:
        proc = tftp_hpa(server.port, name, "out", tmp_path)
        assert "Error code 2: refused" in proc.stdout, proc.stdout
        lines = server.lines("refused", reason)
    assert not (tmp_path / "out").exists() or \
        (tmp_path / "out").stat().st_size == 0
    assert len(lines) == 1 and "127.0.0.1:" in lines[0], lines


@CLIENTS
def test_refused_symlink_curl_atftp(root, tmp_path):
    with running(root) as server:
        proc = curl(server.port, "outside-link", "a", tmp_path)
        assert proc.returncode == 69, proc.stdout    # access violation
        at = atftp(server.port, "outside-link", "b", tmp_path)
        assert "refused" in at.stdout
        assert len(server.lines("outside-link", "out of the boot root")) == 2
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("name,reason", [
    (b"small.bin\0../secret", "mode"),             # a NUL ends the name
    (b"pxelinux.cfg/de\x01fault", "control character"),
    (b"a" * 600, "longer than 512 bytes"),
    (b"d/" + b"b" * 300, "component longer than 255"),
    (b"\xff\xfe.bin", "not UTF-8"),
    (b"C:\\boot.ini", "backslash"),
])
def test_refused_raw_names(root, name, reason):
    with running(root) as server:
        raw = Raw(server.port)
        try:
            raw.send(rrq(name))
            (kind, code, message), sender = raw.receive()
        finally:
            raw.close()
        lines = server.lines("refused", reason)
    assert kind == "error" and code in (2, 4), message
    assert len(lines) == 1, server.log


@CLIENTS
def test_write_refused(root, tmp_path):
    (tmp_path / "upload").write_bytes(b"new contents\n")
    with running(root) as server:
        proc = tftp_hpa(server.port, "upload", "new.bin", tmp_path,
                        command="put")
        assert "Error code 2: read-only server" in proc.stdout, proc.stdout
        at = atftp(server.port, "new.bin", "upload", tmp_path, put=True)
        assert "read-only" in at.stdout, at.stdout
        assert len(server.lines("refused to write", "read-only")) == 2
    assert not (root / "new.bin").exists()


def test_bad_packets(root):
    with running(root) as server:
        raw = Raw(server.port)
        try:
            for packet, code in ((b"\x00", 4), (ack(1), 4),
                                 (rrq("small.bin", b"mail"), 4),
                                 (rrq("small.bin") + b"blksize\0", 8),
                                 (rrq("small.bin")[:-1], 4)):
                raw.send(packet)
                (kind, got, message), sender = raw.receive()
                assert (kind, got) == ("error", code), message
                assert sender == raw.server
        finally:
            raw.close()
        assert len(server.lines("refused a packet")) == 5


def test_options_clamped_and_ignored(root):
    """blksize and windowsize above the RFC's ceiling are clamped, a
    timeout out of 1-255, an unknown option and a bad value are left out;
    tsize is the size."""
    with running(root) as server:
        raw = Raw(server.port)
        try:
            raw.send(rrq("small.bin", options=[
                ("BLKSIZE", 100000), ("windowsize", 99999),
                ("timeout", 300), ("tsize", 0), ("foo", 1),
                ("blksize", 8)]))
            (kind, options), _ = raw.receive()
            assert kind == "oack"
            assert options == {"blksize": "65464", "windowsize": "65535",
                               "tsize": "1000"}
            raw.send(ack(0))
            (kind, block, data), _ = raw.receive()
            assert (kind, block, len(data)) == ("data", 1, 1000)
            raw.send(ack(1))
        finally:
            raw.close()
        raw = Raw(server.port)
        try:
            raw.send(rrq("small.bin", options=[("blksize", 7),
                                               ("timeout", "x")]))
            (kind, block, data), _ = raw.receive()   # no OACK: plain 512
            assert (kind, block, len(data)) == ("data", 1, 512)
        finally:
            raw.close()


def test_duplicate_acks_resend_nothing(root):
    """No sorcerer's apprentice: an ACK that comes twice gets one DATA, so
    the packet after DATA 2 is DATA 3, not DATA 2 again."""
    with running(root) as server:
        raw = Raw(server.port)
        try:
            raw.send(rrq("exact512.bin"))
            got = [raw.receive()[0][:2]]
            raw.send(ack(1))
            raw.send(ack(1))
            got.append(raw.receive()[0][:2])
            raw.send(ack(2))
            got.append(raw.receive()[0][:2])
        finally:
            raw.close()
    assert got == [("data", 1), ("data", 2), ("data", 3)]


def test_retransmits_then_gives_up(root):
    """A client that stops answering gets the block `retries` times more,
    then an error, and the session is freed."""
    with running(root, timeout=0.05, retries=3, per_address=1) as server:
        raw = Raw(server.port)
        try:
            raw.send(rrq("small.bin"))
            got = [raw.receive()[0] for _ in range(5)]
        finally:
            raw.close()
        assert [g[:2] for g in got] == [("data", 1)] * 4 + [("error", 0)]
        assert len(server.lines("gave up", "after 3 retries")) == 1
        server.wait_idle()
        again = Raw(server.port)          # per_address=1: the slot is free
        try:
            again.send(rrq("small.bin"))
            assert again.receive()[0][:2] == ("data", 1)
        finally:
            again.close()


def test_stranger_gets_unknown_tid(root):
    with running(root) as server:
        raw, stranger = Raw(server.port), Raw(server.port)
        try:
            raw.send(rrq("small.bin"))
            (kind, block, _), tid = raw.receive()
            stranger.send(ack(1), to=tid)
            (kind, code, _), _ = stranger.receive()
            assert (kind, code) == ("error", 5)
            raw.send(ack(1))
            assert raw.receive()[0][:2] == ("data", 2)   # not disturbed
            raw.send(ack(2))
        finally:
            raw.close()
            stranger.close()


@CLIENTS
def test_flood_from_one_address(root, tmp_path):
    """50 requests from 127.0.0.1 while per_address=4 transfers from it
    are held: 4 run, 46 get a busy error, 6 log lines (1st, 2nd, 4th ...
    refusal); 127.0.0.2 is still served, by curl."""
    release = threading.Event()

    def hook(name, client):
        if client[0] == "127.0.0.1":
            release.wait(60)

    with running(root, on_request=hook, per_address=4) as server:
        flood = [Raw(server.port, wait=30) for _ in range(50)]
        try:
            for raw in flood:
                raw.send(rrq("small.bin"))
            busy = 0
            for raw in flood[4:]:
                (kind, code, message), sender = raw.receive()
                assert (kind, code, sender) == ("error", 0, raw.server)
                assert "busy" in message
                busy += 1
            proc = curl(server.port, "small.bin", "out", tmp_path,
                        interface="127.0.0.2")
            assert proc.returncode == 0, proc.stdout
            assert (tmp_path / "out").read_bytes() == \
                (root / "small.bin").read_bytes()
            release.set()
            for raw in flood[:4]:
                assert raw.receive()[0][:2] == ("data", 1)
        finally:
            release.set()
            for raw in flood:
                raw.close()
        assert busy == 46
        lines = server.lines("busy", "from 127.0.0.1 running")
        assert [line.split("(")[-1].split()[0] for line in lines] == \
            ["1", "2", "4", "8", "16", "32"], lines


def test_total_bound(root):
    release = threading.Event()
    with running(root, on_request=lambda n, c: release.wait(60),
                 max_sessions=3) as server:
        held = [Raw(server.port) for _ in range(3)]
        other = Raw(server.port, address="127.0.0.2")
        try:
            for raw in held:       # the listener takes requests in order
                raw.send(rrq("small.bin"))
            other.send(rrq("small.bin"))
            (kind, code, message), _ = other.receive()
            assert (kind, code) == ("error", 0) and "3 transfers" in message
        finally:
            release.set()
            for raw in held + [other]:
                raw.close()


def test_shutdown_ends_running_transfers(root):
    with running(root) as server:
        raws = [Raw(server.port) for _ in range(3)]
        for raw in raws:
            raw.send(rrq("small.bin"))
            assert raw.receive()[0][:2] == ("data", 1)   # and no ACK
        server.stop()
        assert server.server.active == 0
        assert len(server.lines("stopped by shutdown")) == 3
        for raw in raws:
            assert raw.receive()[0][:2] == ("error", 0)
            raw.close()


def test_bind_errors(root):
    with running(root) as server:
        with pytest.raises(BusyError, match="in use"):
            TftpServer(root, "127.0.0.1", server.port)
    with pytest.raises(InputError, match="not an IP address"):
        TftpServer(root, "no-such-host.invalid", 0)
    with pytest.raises(InputError, match="not an address of this machine"):
        TftpServer(root, "192.0.2.77", 0)
