"""rdeploy swarm seed / receive for real, on loopback: a seeder process
(with opentracker beside it) and receivers, each `rdeploy` as a
subprocess on its own 127.0.0.x address, each writing its own disk file;
a web seed served by tests/rangeserver.py; a magnet link; a receiver
killed half way and started again; the refusals.  Every target is judged
by verify-target against the image, e2fsck and fsck.fat, and its bytes
against a plain `rdeploy restore` of the image on the host."""

import hashlib
import os
import re
import signal
import socket
import subprocess
import time

import pytest

import demodisk
from diskimage.fs.fat.mtools import MTOOLS_ENV
from diskimage.swarm import bencode
from tests.fleet.room import Run
from tests.rangeserver import RangeServer
from tests.rdeploy_helpers import check, rdeploy
from tests.smalldisk import sfdisk

pytestmark = pytest.mark.needs("opentracker", "mkfs.ext4", "e2fsck",
                               "mkfs.fat", "fsck.fat", "mcopy", "sfdisk",
                               "debugfs")
lt = pytest.importorskip("libtorrent")

MiB = 1 << 20
DISK = 64 * MiB
EXT = (MiB, 28 * MiB)                   # partition 1: ext4
FAT = (30 * MiB, 24 * MiB)              # partition 2: FAT16
SEED = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Local:
    """tests/fleet/room.py's Run on this host (no namespace)."""

    @staticmethod
    def start(ns, cmd, **kw):
        return subprocess.Popen(cmd, **kw)


def start(*args):
    return Run(Local, None, [str(a) for a in args])


def sha256_head(path, size):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left:
            block = f.read(min(left, 4 * MiB))
            assert block, f"{path} ends before {size} bytes"
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def build_golden(d):
    """A 64 MiB GPT disk: ext4 and FAT16 with files (6 MiB of random bytes
    each), made by mkfs.ext4 -d, mkfs.fat and mcopy."""
    disk = d / "golden.img"
    with open(disk, "wb") as f:
        f.truncate(DISK)
    sfdisk(disk, f"label: gpt\nstart={EXT[0] // 512}, size={EXT[1] // 512}, "
                 f"name=sys\nstart={FAT[0] // 512}, size={FAT[1] // 512}, "
                 f"type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=data\n")
    trees = {}
    for name in ("ext", "fat"):
        trees[name] = demodisk.make_tree(d / name, 40, seed=len(name),
                                         names=False)
        with open(d / name / "blob.bin", "wb") as f:
            f.write(os.urandom(6 * MiB))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", d / "ext", "-E",
                    f"offset={EXT[0]}", disk, f"{EXT[1] // 1024}k"],
                   check=True, capture_output=True)
    subprocess.run(["mkfs.fat", "-F", "16", "--offset", str(FAT[0] // 512),
                    disk, str(FAT[1] // 1024)], check=True,
                   capture_output=True)
    entries = sorted(str(p) for p in (d / "fat").iterdir())
    subprocess.run(["mcopy", "-s", "-Q", "-i", f"{disk}@@{FAT[0]}",
                    *entries, "::/"], check=True, capture_output=True,
                   env=dict(os.environ, **MTOOLS_ENV))
    return disk


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The golden disk, its image, the host's restore of it (the bytes
    every receiver must end with), a torrent with the seeder and the
    tracker in it, and the seeder (rdeploy swarm seed --run-tracker)."""
    d = tmp_path_factory.mktemp("swarm")
    disk = build_golden(d)
    image = d / "golden.rdi"
    assert rdeploy("capture", disk, image, "-q").returncode == 0
    host = d / "host.img"
    result = rdeploy("restore", image, host, "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    port, tracker = free_port(), free_port()
    torrent = d / "lab.torrent"
    result = rdeploy("swarm", "prepare", image, "-o", torrent,
                     f"--peer={SEED}:{port}",
                     f"--tracker=http://{SEED}:{tracker}/announce")
    assert result.returncode == 0, result.stderr.decode()
    magnet = result.stdout.decode().strip()
    seeder = start("swarm", "seed", torrent, f"--listen={SEED}:{port}",
                   f"--run-tracker={tracker}", "--progress=json")
    seeder.until(lambda r: r.of("ready"), what="the seeder ready")
    try:
        yield {"dir": d, "image": image, "torrent": torrent,
               "magnet": magnet, "port": port, "seeder": seeder,
               "digest": sha256_head(host, DISK)}
    finally:
        seeder.proc.send_signal(signal.SIGTERM)
        assert seeder.wait(30) == 143, seeder.stderr
        summary = seeder.of("summary")[0]["result"]
        assert summary["uploaded_bytes"] > 0, summary
        fed = summary["torrents"][0]["peers_fed"]
        assert 1 <= fed <= summary["torrents"][0]["peers_seen"], summary
        out = subprocess.run(["pgrep", "-f", f"opentracker -p {tracker}"],
                             capture_output=True, text=True).stdout
        assert out == "", "opentracker outlived its seeder"


def restored(target, lab):
    """verify-target's exit, both fsck clean, the host restore's bytes."""
    result = rdeploy("verify-target", target, lab["image"])
    assert result.returncode == 0, result.stderr.decode()
    for (start, size), fs in ((EXT, "ext4"), (FAT, "fat16")):
        clean, output = demodisk.fsck(target, start, size, fs)
        assert clean, output
    assert sha256_head(target, DISK) == lab["digest"]


def receive(n, source, target, *options):
    return start("swarm", "receive", source, target, "--yes",
                 f"--listen=127.0.0.{10 + n}:{free_port()}",
                 "--progress=json", *options)


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
    # each saw the others whole (or stayed its 20 s)
    assert all(r["receivers_complete"] == 3 or r["seed_seconds"] >= 19
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


def test_what_a_seeder_serves_and_a_busy_target_are_refused(lab, tmp_path):
    """TARGET = the torrent's own NAME.raw (by the torrent beside it, or
    from a magnet: the seeder holds it) or the torrent: refused (5), not
    a byte changed.  A target another receive holds: refused (5) too."""
    raw = lab["dir"] / "lab.raw"
    before = sha256_head(raw, DISK), lab["torrent"].read_bytes()
    listen = f"--listen=127.0.0.53:{free_port()}"
    for source, target, why in (
            (lab["torrent"], raw, "the torrent's own NAME.raw"),
            (lab["torrent"], lab["torrent"], "the torrent itself"),
            (lab["magnet"], raw, "in use")):
        check(rdeploy("swarm", "receive", source, target, "--yes", listen,
                      "--wait=5", "-q"), 5, why)
    assert (sha256_head(raw, DISK), lab["torrent"].read_bytes()) == before
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
