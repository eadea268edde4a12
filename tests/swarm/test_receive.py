"""rdeploy swarm seed / receive for real, on loopback: a seeder process
(with opentracker beside it) and receivers, each `rdeploy` as a
subprocess on its own 127.0.0.x address, each writing its own disk file;
a web seed served by tests/rangeserver.py; a magnet link; a receiver
killed half way and started again; the refusals.  Every target is judged
by verify-target against the image, e2fsck and fsck.fat, and its bytes
against a plain `rdeploy restore` of the image on the host."""

import re
import signal
import subprocess
import time

import pytest

from diskimage.swarm import bencode
from tests.rangeserver import RangeServer
from tests.rdeploy_helpers import check, rdeploy
from tests.swarm.swarmlab import (DISK, MiB, SEED, free_port, receive,
                                  restored, start)

pytestmark = pytest.mark.needs("opentracker", "mkfs.ext4", "e2fsck",
                               "mkfs.fat", "fsck.fat", "mcopy", "sfdisk",
                               "debugfs")
lt = pytest.importorskip("libtorrent")


def test_three_receivers_and_a_seeder(lab, tmp_path):
    targets = [tmp_path / f"pc{i}.img" for i in range(3)]
    runs = [receive(i, lab["torrent"], t, "--seed-until=3",
                    "--seed-time=20") for i, t in enumerate(targets)]
    for run in runs:
        assert run.wait(60) == 0, run.stderr
    for target in targets:
        restored(target, lab)
    results = [run.of("end")[0]["result"] for run in runs]
    for result in results:
        assert result["verified"] and not result["resumed"], result
        assert result["peer_bytes"] >= result["wanted_bytes"] // 2
    # each saw the others whole, and left then, not at its 20 s limit
    # (over uTP a pair could lose its connection and never meet again)
    assert all(r["receivers_complete"] == 3 and r["seed_seconds"] < 19
               for r in results), results
    assert runs[0].of("swarm"), "no swarm status events"
    assert lab["seeder"].proc.poll() is None


@pytest.mark.parametrize("tail", ["srv/", "srv/solo.raw?X-Amz-Signature=0f"])
def test_a_web_seed_alone(lab, tmp_path, tail):
    """No seeder, no peers: the web seed (a Range-honouring HTTP server of
    NAME.raw) is the only source, and its bytes are counted at it.  Its
    own piece size makes its own infohash, so the lab's seeder is not
    found (LSD, DHT) and cannot help.  The URL with a query string (as a
    presigned one has) on loopback is one libtorrent's ssrf_mitigation
    refuses: the receiver turns it off for it."""
    served = tmp_path / "srv"
    served.mkdir()
    with RangeServer(served.parent) as server:
        torrent = served / "solo.torrent"
        result = rdeploy("swarm", "prepare", lab["image"], "-o", torrent,
                         "--piece-size=512K",
                         f"--web-seed={server.url(tail)}")
        assert result.returncode == 0, result.stderr.decode()
        target = tmp_path / "pc.img"
        run = receive(20, torrent, target, "--wait=20")
        assert run.wait(60) == 0, run.stderr
        result = run.of("end")[0]["result"]
        fetched = result["wanted_bytes"] - result["zeroed_bytes"]
        bar = [e for e in run.of("progress") if e["task"] == "swarm receive"]
        assert bar[0]["total"] == fetched and bar[0]["done"] < fetched, bar
        assert result["web_seed_bytes"] == fetched, result
        assert result["downloaded_bytes"] == fetched, result
        assert result["peer_bytes"] == 0, result
        assert fetched <= server.sent < fetched * 1.25, server.sent
        assert all(path == "/srv/solo.raw" for _, path, _ in
                   server.requests), server.requests
    restored(target, lab)


def test_a_magnet_link_from_the_seeder(lab, tmp_path):
    target = tmp_path / "pc.img"
    assert "x.pe=" in lab["magnet"]
    run = receive(30, lab["magnet"], target, "--wait=30")
    assert run.wait(60) == 0, run.stderr
    assert run.of("end")[0]["result"]["infohash"] in lab["magnet"]
    restored(target, lab)


def test_killed_half_way_then_received_again(lab, tmp_path):
    target = tmp_path / "pc.img"
    run = receive(40, lab["torrent"], target, "--download-rate=12")
    run.until(lambda r: 25 <= r.percent() < 90, what="a quarter received")
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait(30) == 143, run.stderr
    message = run.of("error")[0]["message"]
    assert "marked incomplete" in message and "SIGTERM" in message, message
    result = rdeploy("verify-target", target)
    assert result.returncode == 13, result.stderr.decode()
    said = re.search(r"(\d+) of (\d+) bytes received",
                     result.stdout.decode() + result.stderr.decode())
    assert said and 0 < int(said[1]) < int(said[2]), result
    again = receive(41, lab["torrent"], target)
    assert again.wait(60) == 0, again.stderr
    assert again.of("end")[0]["result"]["resumed"] is True
    restored(target, lab)


def test_a_target_smaller_than_the_disk(lab, tmp_path):
    target = tmp_path / "small.img"
    with open(target, "wb") as f:
        f.truncate(DISK - MiB)
    result = rdeploy("swarm", "receive", lab["torrent"], target, "--yes",
                     f"--listen=127.0.0.50:{free_port()}")
    check(result, 5, "too small")
    assert open(target, "rb").read(MiB) == bytes(MiB)     # nothing written


def hostile(lab, tmp_path, change):
    top = bencode.decode(lab["torrent"].read_bytes(), "lab")
    change(top)
    bad = tmp_path / "bad.torrent"
    bad.write_bytes(bencode.encode(top))
    return bad


def test_hostile_torrents_are_refused(lab, tmp_path):
    target = tmp_path / "pc.img"
    listen = f"--listen=127.0.0.51:{free_port()}"
    garbage = tmp_path / "garbage.torrent"
    garbage.write_bytes(b"d4:infod4:name")
    check(rdeploy("swarm", "receive", garbage, target, "--yes", listen), 3)

    def no_rdeploy(top):
        del top[b"info"][b"rdeploy"]
    check(rdeploy("swarm", "receive", hostile(lab, tmp_path, no_rdeploy),
                  target, "--yes", listen), 3)

    def flipped(top):
        skeleton = bytearray(top[b"info"][b"rdeploy"][b"skeleton"])
        skeleton[100] ^= 1
        top[b"info"][b"rdeploy"][b"skeleton"] = bytes(skeleton)
    check(rdeploy("swarm", "receive", hostile(lab, tmp_path, flipped),
                  target, "--yes", listen), 4)
    assert not target.exists()


def test_no_peers_gives_up_after_wait(lab, tmp_path):
    """A torrent with no seeder, tracker or web seed: nothing comes, and
    --wait=5 ends it (15), the target left marked incomplete."""
    alone = tmp_path / "alone.torrent"
    result = rdeploy("swarm", "prepare", lab["image"], "-o", alone,
                     "--piece-size=256K")
    assert result.returncode == 0, result.stderr.decode()
    assert "names no peer (--peer) and no tracker" in \
        result.stderr.decode(), result.stderr.decode()
    target = tmp_path / "pc.img"
    result = rdeploy("swarm", "receive", alone, target, "--yes",
                     "--wait=5", f"--listen=127.0.0.52:{free_port()}")
    check(result, 15, "no data for 5 s", "marked incomplete")
    result = rdeploy("verify-target", target)
    assert result.returncode == 13, result.stderr.decode()


def test_a_listen_address_in_use(lab, tmp_path):
    """--listen is where the peers are told to look: a port in use (the
    seeder's) is refused (15), not swapped for the next free one."""
    target = tmp_path / "pc.img"
    result = rdeploy("swarm", "receive", lab["torrent"], target, "--yes",
                     f"--listen={SEED}:{lab['port']}")
    check(result, 15, "cannot listen", f"{SEED}:{lab['port']}")
    assert not target.exists()


def test_opentracker_dies_with_a_killed_seeder(lab):
    """SIGKILL gives the seeder no clean-up: the kernel's death signal
    ends its opentracker (started as nobody, so dropping root does not
    clear it)."""
    tracker = free_port()
    seeder = start("swarm", "seed", lab["torrent"],
                   f"--listen={SEED}:{free_port()}",
                   f"--run-tracker={tracker}", "--progress=json")
    seeder.until(lambda r: r.of("ready"), what="the seeder ready")
    pattern = f"opentracker -p {tracker} "

    def trackers():
        return subprocess.run(["pgrep", "-f", pattern], capture_output=True,
                              text=True).stdout.split()

    assert len(trackers()) == 1
    seeder.proc.kill()
    seeder.wait(10)
    for _ in range(50):
        if not trackers():
            break
        time.sleep(0.1)
    assert trackers() == [], "opentracker outlived a killed seeder"
