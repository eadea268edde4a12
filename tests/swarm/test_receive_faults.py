"""rdeploy swarm against what a new user's trial did wrong or found
wrong, on the lab of tests/swarm/conftest.py: receiving onto what a
seeder serves, two receives on one target, a tracker port in use, an
interrupt while seeding, a web seed that ignores Range, a magnet nobody
serves, and the messages for wrong sources and values."""

import signal
import socket

import pytest

import demodisk
from tests.rangeserver import RangeServer
from tests.rdeploy_helpers import check, rdeploy
from tests.swarm.swarmlab import (DISK, EXT, FAT, SEED, free_port, receive,
                                  sha256_head)

pytestmark = pytest.mark.needs("opentracker", "mkfs.ext4", "e2fsck",
                               "mkfs.fat", "fsck.fat", "mcopy", "sfdisk",
                               "debugfs")
lt = pytest.importorskip("libtorrent")


def test_what_a_seeder_serves_and_a_busy_target_are_refused(lab, tmp_path):
    """TARGET = the torrent's own NAME.raw (by the torrent beside it, or
    from a magnet: the seeder holds it) or the torrent: refused (5), not
    a byte changed.  A target another receive holds: refused (5) too."""
    raw = lab["dir"] / "lab.raw"
    before = sha256_head(raw, DISK), lab["torrent"].read_bytes(), \
        lab["image"].read_bytes()
    listen = f"--listen=127.0.0.53:{free_port()}"
    for source, target, why in (
            (lab["torrent"], raw, "the torrent's own NAME.raw"),
            (lab["torrent"], lab["torrent"], "the torrent itself"),
            (lab["torrent"], lab["image"], "an rdeploy image, not a disk"),
            (lab["magnet"], raw, "in use")):
        check(rdeploy("swarm", "receive", source, target, "--yes", listen,
                      "--wait=5", "-q"), 5, why)
    assert (sha256_head(raw, DISK), lab["torrent"].read_bytes(),
            lab["image"].read_bytes()) == before
    target = tmp_path / "pc.img"
    first = receive(54, lab["torrent"], target, "--download-rate=4")
    first.until(lambda r: r.percent() > 0, what="the first receive started")
    check(rdeploy("swarm", "receive", lab["torrent"], target, "--yes",
                  f"--listen=127.0.0.55:{free_port()}"), 5, "in use")
    assert first.proc.poll() is None
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait(30) == 143, first.stderr


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM],
                         ids=["tcp", "udp"])
def test_a_tracker_port_in_use(lab, kind):
    """--run-tracker on a port taken (TCP or UDP: another tracker) is
    refused (15) before the seeder starts."""
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("0.0.0.0", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        result = rdeploy("swarm", "seed", lab["torrent"],
                         f"--listen={SEED}:{free_port()}",
                         f"--run-tracker={port}")
    check(result, 15, f"port {port} is in use", "--run-tracker")


def test_an_interrupt_while_seeding_still_finishes(lab, tmp_path):
    """SIGINT in the seed phase: the verified target is still finished
    (new identities, marker gone) before exit 130, and the line says so."""
    target = tmp_path / "pc.img"
    run = receive(56, lab["torrent"], target, "--seed-time=60", "--new-ids")
    run.until(lambda r: any(e["phase"] == "seed" for e in r.of("swarm")),
              what="the seed phase")
    run.proc.send_signal(signal.SIGINT)
    assert run.wait(30) == 130, run.stderr
    message = run.of("error")[0]["message"]
    assert "verified; seeding stopped by SIGINT after" in message, message
    assert "new identities given" in message, message
    result = rdeploy("verify-target", target)
    assert result.returncode == 0, result.stderr.decode()
    for (start, size), fs in ((EXT, "ext4"), (FAT, "fat16")):
        clean, output = demodisk.fsck(target, start, size, fs)
        assert clean, output


def test_the_wrong_sources_and_values_say_what(lab, tmp_path):
    """An image as SOURCE, a torrent URL the server does not have, a
    piece size that is no power of two, a negative --seed-time."""
    target = tmp_path / "pc.img"
    listen = f"--listen=127.0.0.57:{free_port()}"
    check(rdeploy("swarm", "receive", lab["image"], target, "--yes",
                  listen, "--seed-time=0"), 3,
          "an rdeploy image, not a torrent", "rdeploy restore")
    with RangeServer(tmp_path) as server:
        check(rdeploy("swarm", "receive", server.url("nope.torrent"),
                      target, "--yes", listen), 3,
              "no such torrent on the server")
    check(rdeploy("swarm", "receive", lab["torrent"], target, "--yes",
                  listen, "--seed-time=-1"), 2, "must be 0 or more")
    check(rdeploy("swarm", "prepare", lab["image"], "-o",
                  tmp_path / "x.torrent", "--piece-size=3M"), 2,
          "power of two", "64K", "64M")
    assert not target.exists() and not (tmp_path / "x.torrent").exists()


def test_a_web_seed_that_ignores_range(lab, tmp_path):
    """A web seed answering 200 with the whole file (python3 -m
    http.server does): prepare warns, the receive warns once naming it
    (without its query), then gives up at --wait (15)."""
    (tmp_path / "srv").mkdir()
    with RangeServer(tmp_path, ranges=False) as server:
        torrent = tmp_path / "srv" / "plain.torrent"
        url = server.url("srv/plain.raw?sig=secret")
        result = rdeploy("swarm", "prepare", lab["image"], "-o", torrent,
                         "--piece-size=128K", f"--web-seed={url}")
        assert result.returncode == 0, result.stderr.decode()
        assert "Range" in result.stderr.decode(), result.stderr.decode()
        result = rdeploy("swarm", "receive", torrent, tmp_path / "pc.img",
                         "--yes", "--wait=8",
                         f"--listen=127.0.0.58:{free_port()}")
    text = result.stderr.decode()
    assert result.returncode == 15, text
    warned = [line for line in text.splitlines()
              if "warning: web seed" in line]
    assert len(warned) == 1 and server.url("srv/plain.raw") in warned[0], \
        text
    assert "secret" not in text, text


def test_a_magnet_nobody_serves_ends_at_wait(tmp_path):
    """A magnet link whose metadata no peer has: the wait is told, and
    --wait ends it (15), nothing written."""
    target = tmp_path / "pc.img"
    result = rdeploy("swarm", "receive", f"magnet:?xt=urn:btih:{'ab' * 20}",
                     target, "--yes", "--wait=3",
                     f"--listen=127.0.0.59:{free_port()}")
    text = result.stderr.decode()
    assert result.returncode == 15, text
    first, *_, last = text.strip().splitlines()
    assert "fetching the torrent's metadata from 0 peers" in first, text
    assert "no peer gave the torrent's metadata within 3 s" in last, text
    assert not target.exists()


def test_a_torrent_url_that_fails_first_is_retried_aloud(lab, tmp_path):
    """A torrent URL answered 503 at first: each retry is a warning; once
    the server answers, SOURCE is read (here an .rdi: exit 3 saying so)."""
    import threading
    import time
    with RangeServer(lab["dir"], fail=503) as server:
        def heal():         # after two failed tries (the third comes 2 s
            while len(server.requests) < 2:     # after the second)
                time.sleep(0.02)
            time.sleep(0.5)
            server.fail = None
        threading.Thread(target=heal, daemon=True).start()
        result = rdeploy("swarm", "receive", server.url("golden.rdi"),
                         tmp_path / "pc.img", "--yes",
                         f"--listen=127.0.0.60:{free_port()}")
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 3, lines
    retries = [line for line in lines if "retrying in" in line]
    assert len(retries) == 2 and all(
        line.startswith("rdeploy: warning: ") for line in retries), lines
    assert "an rdeploy image, not a torrent" in lines[-1], lines
