"""One seeder of two torrents feeds the receivers of both at once, on
loopback: `rdeploy swarm seed A.torrent B.torrent` (opentracker beside
it, its upload held to SEED_MBIT so the run lasts some seconds), and
RECEIVERS receivers of each torrent started together.  The seeder serves
stepback.SLOTS peers of each torrent at a time (its session's limit is
SLOTS for each torrent, each torrent's max_uploads SLOTS): at some tick
it unchoked more peers than one torrent's share, which a limit of SLOTS
for the whole session (round one's) never allowed (SLOTS and an
optimistic unchoke at most), and never more than SLOTS and an optimistic
unchoke of one torrent.  Every receiver verifies, and its disk equals
the host's restore of the image.  The two torrents are of the lab's
image at piece sizes no other test uses: infohashes of their own."""

import signal

import pytest

from diskimage.swarm.stepback import SLOTS
from tests.rdeploy_helpers import rdeploy
from tests.swarm.swarmlab import SEED, free_port, receive, restored, start

pytestmark = pytest.mark.needs("opentracker", "mkfs.ext4", "e2fsck",
                               "mkfs.fat", "fsck.fat", "mcopy", "sfdisk",
                               "debugfs")
lt = pytest.importorskip("libtorrent")

RECEIVERS = SLOTS
SEED_MBIT = 24
PIECES = ("2M", "4M")


def test_a_seeder_of_two_torrents_feeds_both_at_once(golden, tmp_path):
    port, tracker = free_port(), free_port()
    torrents = []
    for piece in PIECES:
        folder = tmp_path / piece
        folder.mkdir()
        torrent = folder / "two.torrent"
        result = rdeploy("swarm", "prepare", golden["image"], "-o", torrent,
                         "-q", f"--piece-size={piece}",
                         f"--peer={SEED}:{port}",
                         f"--tracker=http://{SEED}:{tracker}/announce")
        assert result.returncode == 0, result.stderr.decode()
        torrents.append(torrent)
    seeder = start("swarm", "seed", *torrents, f"--listen={SEED}:{port}",
                   f"--run-tracker={tracker}", f"--upload-rate={SEED_MBIT}",
                   "--progress=json")
    try:
        seeder.until(lambda r: r.of("ready"), what="the seeder ready")
        targets, runs = [], []
        for t, torrent in enumerate(torrents):
            for i in range(RECEIVERS):
                target = tmp_path / f"pc{t}{i}.img"
                targets.append(target)
                runs.append(receive(60 + 10 * t + i, torrent, target,
                                    f"--seed-until={RECEIVERS}",
                                    "--seed-time=20"))
        for run in runs:
            assert run.wait(120) == 0, run.stderr[-3000:]
    finally:
        seeder.proc.send_signal(signal.SIGTERM)
        code = seeder.wait(30)
    assert code == 143, seeder.stderr[-2000:]
    told = seeder.of("summary")[-1]["result"]
    served = told["torrents"]
    print(f"\nswarm seed of two torrents, {RECEIVERS} receivers each: the "
          f"most peers unchoked at one tick {told['unchoked_most']} "
          f"(each torrent: {[t['unchoked_most'] for t in served]}), "
          f"uploaded {[t['uploaded_bytes'] for t in served]} bytes, "
          f"peers fed {[t['peers_fed'] for t in served]}")
    for t in served:
        assert t["unchoke_slots"] == SLOTS, t
        assert 1 <= t["unchoked_most"] <= SLOTS + 1, t
        assert t["peers_fed"] >= 1 and t["uploaded_bytes"] > 0, t
    # both torrents' receivers served at one tick, beyond one share
    assert told["unchoked_most"] >= SLOTS + 2, told
    for target in targets:
        restored(target, golden)
