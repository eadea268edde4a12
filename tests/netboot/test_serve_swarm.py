"""`pxeconf serve` as the swarm's first seed, on loopback, with a real
client: `rdeploy swarm receive` (libtorrent) of a torrent that `rdeploy
swarm prepare` wrote into the boot root.

- The site's swarm-seed, added by an edit while serve runs, starts the
  seeder (serve's own process); a receiver given only that peer gets
  every byte from it; the disk passes fsck and the files' digests,
  verify-target against the image, and equals a host restore.
- An edit naming a torrent that does not load keeps what was seeded.
- SIGTERM stops the seeder with serve: its last line counts the upload,
  and its port is free again.
- With no seeder at all, the NAME.raw that serve's HTTP server publishes
  is a web seed (BEP 19 Range requests) a receiver completes from.
- A swarm-seed torrent that does not load stops serve before it serves.
"""

import contextlib
import json
import os
import signal
import socket
import time
import urllib.parse
import urllib.request

import pytest

import demodisk
from diskimage.swarm import bencode, descriptor
from tests.rdeploy_helpers import rdeploy
from tests.servehelpers import Serve, free_port, make_site
from tests.smalldisk import sha256

pytestmark = pytest.mark.needs("tftp", "curl", "e2fsck", "fsck.fat",
                               "mcopy")
pytest.importorskip("libtorrent")

HOST = "127.0.0.1"
#: The receiver's own address: libtorrent keeps one connection per
#: address, so a receiver on the seeder's would lose the connection the
#: seeder opens to it (from the tracker) against its own to the seeder.
RECEIVER = "127.0.0.9"


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    d = tmp_path_factory.mktemp("golden")
    disk, image = d / "golden.img", d / "golden.rdi"
    manifest = demodisk.make_gpt_demo(disk, files=60)
    result = rdeploy("capture", disk, image, "--quiet")
    assert result.returncode == 0, result.stderr.decode()
    return image, manifest, disk.stat().st_size


@pytest.fixture
def serve():
    """Serve(site, ...) for the test, each one closed after it."""
    with contextlib.ExitStack() as stack:
        yield lambda *args, **kw: stack.enter_context(
            contextlib.closing(Serve(*args, **kw)))


def _prepare(image, boot, *options):
    (boot / "images").mkdir(exist_ok=True)
    torrent = boot / "images" / "lab.torrent"
    result = rdeploy("swarm", "prepare", image, "-o", torrent, "--quiet",
                     *options)
    assert result.returncode == 0, result.stderr.decode()
    return torrent


def _edit(site, keys):
    text = site.read_text()
    site.write_text(text.replace("[site]\n", f"[site]\n{keys}", 1))


def _receive(url, target, size):
    """`rdeploy swarm receive URL TARGET --yes` onto a blank disk file of
    `size` bytes: its end event's result."""
    with open(target, "wb") as f:
        f.truncate(size)
    result = rdeploy("swarm", "receive", url, target, "--yes",
                     f"--listen={RECEIVER}:{free_port()}", "--wait=30",
                     "--progress=json")
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 0, "\n".join(lines[-5:])
    end = json.loads(lines[-1])
    assert end["event"] == "end" and end["exit_code"] == 0, end
    assert end["result"]["verified"] is True, end
    return end["result"]


def _fetched(result):
    """The bytes a receiver had to fetch: the wanted pieces but those it
    zeroed itself (no DATA byte in them)."""
    return result["wanted_bytes"] - result["zeroed_bytes"]


def _judge(target, image, manifest, scratch):
    """fsck and the files' digests, verify-target, a host restore."""
    assert demodisk.check_disk(target, manifest) == []
    result = rdeploy("verify-target", target, image)
    assert result.returncode == 0, result.stderr.decode()
    host = scratch / "host.img"
    with open(host, "wb") as f:
        f.truncate(target.stat().st_size)
    result = rdeploy("restore", image, host, "--yes", "--quiet")
    assert result.returncode == 0, result.stderr.decode()
    assert sha256(target) == sha256(host)


def _port_free(port):
    """Nothing listens on `port` (SO_REUSEADDR: connections the seeder
    closed may linger in TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        s.listen()


def test_serve_seeds_the_site_torrents_and_stops_with_them(
        golden, serve, tmp_path):
    image, manifest, size = golden
    site = make_site(tmp_path / "site")
    boot = site.parent / "boot"
    port = free_port()
    _prepare(image, boot, f"--peer={HOST}:{port}")    # no web seed
    server = serve(site)
    server.ready()
    _edit(site, f"swarm-seed = images/lab.torrent\nswarm-port = {port}\n")
    server.wait_for(f"swarm: seeding images/lab.torrent on {HOST}:{port}")

    got = _receive(server.url + "images/lab.torrent", tmp_path / "disk.img",
                   size)
    assert got["web_seed_bytes"] == 0, got
    assert got["peer_bytes"] >= _fetched(got) > 0, got
    _judge(tmp_path / "disk.img", image, manifest, tmp_path)

    # an edit whose torrent does not load: logged, the seeder stays
    (boot / "images" / "bad.torrent").write_bytes(b"d4:infoi1ee")
    (boot / "images" / "bad.raw").write_bytes(b"")
    text = site.read_text()
    site.write_text(text.replace("swarm-seed = images/lab.torrent",
                                 "swarm-seed = images/bad.torrent"))
    said = server.wait_for("swarm: the site's torrents do not load")
    assert "still seeding what was seeded" in said and "bad.torrent" in said

    assert server.stop(signal.SIGTERM) == 143, server.text()
    last = server.wait_for("swarm: stopped seeding: ")
    assert "images/lab.torrent " in last and "(peers seen: " in last, last
    assert "(peers seen: 0)" not in last, last
    uploaded = last.split("images/lab.torrent ", 1)[1].split(" uploaded")[0]
    assert uploaded != "0 B", last
    _port_free(port)


def _tracker_counts(port, infohash):
    """opentracker's answer to one announce for `infohash` (a leecher
    that has nothing): its bencoded dict, or None when it does not
    answer.  Encoded with quote, not urlencode's default quote_plus: that
    sends a 0x20 byte as "+", which opentracker reads as itself, so an
    infohash with one (one in 13) would be asked as another, never
    whitelisted."""
    query = urllib.parse.urlencode({
        "info_hash": bytes.fromhex(infohash),
        "peer_id": b"-TEST00-" + b"0" * 12,
        "port": 1, "uploaded": 0, "downloaded": 0, "left": 1, "compact": 1},
        quote_via=urllib.parse.quote)
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/announce?{query}",
                                    timeout=5) as answer:
            return bencode.decode(answer.read(), "tracker")
    except OSError:
        return None


def _tracker_dir(port):
    """The directory (its -d) of the opentracker serving `port`, found
    from the processes' command lines."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode("utf-8", "surrogateescape").split("\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == "opentracker" and \
                argv[1:3] == ["-p", str(port)]:
            return argv[argv.index("-d") + 1]
    return None


@pytest.mark.needs("opentracker")
def test_swarm_tracker_runs_opentracker_with_the_seeder(
        golden, serve, tmp_path):
    """swarm-tracker: serve runs opentracker, its seeder announces there
    (the tracker counts one complete peer), a receiver given only the
    tracker (no peer, no web seed) finds the seeder through it and
    completes, and the tracker ends with serve, its directory removed."""
    image, manifest, size = golden
    site = make_site(tmp_path / "site")
    boot = site.parent / "boot"
    port, tracker = free_port(), free_port()
    torrent = _prepare(image, boot,
                       f"--tracker=http://{HOST}:{tracker}/announce")
    _edit(site, f"swarm-seed = images/lab.torrent\nswarm-port = {port}\n"
                f"swarm-tracker = {tracker}\nswarm-upload-rate = 800\n")
    server = serve(site)
    server.ready()
    said = server.wait_for("swarm: seeding images/lab.torrent")
    assert said.endswith(f"on {HOST}:{port}, upload at most 800 Mbit/s, "
                         f"opentracker on port {tracker}"), said
    infohash = descriptor.parse_torrent(torrent.read_bytes(),
                                        torrent).infohash
    deadline = time.monotonic() + 60
    while True:
        counts = _tracker_counts(tracker, infohash)
        if counts and counts.get(b"complete", 0) >= 1:
            break
        assert time.monotonic() < deadline, \
            f"the seeder never announced to opentracker: {counts}"
        time.sleep(1)
    got = _receive(server.url + "images/lab.torrent", tmp_path / "disk.img",
                   size)
    assert got["peer_bytes"] >= _fetched(got) > 0, got
    _judge(tmp_path / "disk.img", image, manifest, tmp_path)
    where = _tracker_dir(tracker)
    assert where and os.path.isfile(os.path.join(where, "whitelist")), where
    assert server.stop(signal.SIGTERM) == 143, server.text()
    assert _tracker_counts(tracker, infohash) is None   # it ended with serve
    assert not os.path.exists(where)        # and took its directory along
    _port_free(port)


def _refused(server, code, words):
    """serve ended with `code` before it served, in one error line
    holding `words`."""
    ended = server.proc.wait(60)
    server.close()
    errors = [line for line in server.lines
              if line and line.startswith("pxeconf: error: ")]
    assert ended == code, server.text()
    assert len(errors) == 1 and words in errors[0], server.text()
    assert not any("serving " in line for line in server.lines if line)


def test_a_taken_swarm_port_stops_serve_before_it_serves(
        serve, tmp_path, golden):
    """A swarm-port another program holds: serve does not start (exit 15,
    one line naming the address), rather than seed where no torrent's
    --peer points."""
    site = make_site(tmp_path / "site")
    _prepare(golden[0], site.parent / "boot")
    with socket.socket() as taken, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as also:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        also.bind((HOST, port))
        _edit(site, f"swarm-seed = images/lab.torrent\n"
                    f"swarm-port = {port}\n")
        _refused(serve(site), 15, f"{HOST}:{port}")


def test_the_raw_file_in_the_root_is_a_web_seed(golden, serve, tmp_path):
    image, manifest, size = golden
    site = make_site(tmp_path / "site")
    boot = site.parent / "boot"
    http_port = free_port()
    _prepare(image, boot, f"--web-seed=http://{HOST}:{http_port}/images/")
    server = serve(site, http_port=http_port)
    server.ready()
    got = _receive(server.url + "images/lab.torrent", tmp_path / "disk.img",
                   size)
    assert got["peer_bytes"] == 0, got
    assert got["web_seed_bytes"] >= _fetched(got) > 0, got
    assert "swarm:" not in server.text()          # no seeder was asked for
    _judge(tmp_path / "disk.img", image, manifest, tmp_path)
    assert any(f"images/lab.raw to {RECEIVER}: 206" in line
               for line in server.lines if line), server.text()


def test_a_torrent_that_does_not_load_stops_serve_before_it_serves(
        serve, tmp_path):
    site = make_site(tmp_path / "site")
    images = site.parent / "boot" / "images"
    images.mkdir()
    (images / "lab.torrent").write_bytes(b"not bencode")
    (images / "lab.raw").write_bytes(b"")
    _edit(site, "swarm-seed = images/lab.torrent\n")
    _refused(serve(site), 3, "lab.torrent")
