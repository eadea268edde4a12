"""rdeploy swarm across two subnets, for real: a server namespace on
subnet A (a web seed over HTTP that counts what it sends, and `rdeploy
swarm seed --run-tracker`), 9 receiver namespaces on subnets A and B
joined by a router, every link shaped by tc (tests/swarm/room.py), each
receiver restoring onto its own disk file.

One run: 7 receivers start at once with an eighth, which is SIGKILLed
half way; a ninth starts late (once the killed one is gone).  The 8 that
live (they stay and seed until 8 machines hold the disk) verify against
the image, their filesystems are clean, their disks equal a local
restore's; the killed one's disk is marked (verify-target 13).  What the
server uploaded is counted three ways (the web seed's own count, the
seeder's summary, the server's tc qdisc) and printed.
"""

import signal
import time

import pytest

import demodisk
from diskimage.swarm.stepback import SLOTS, TRICKLE
from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import sha256
from tests.swarm import labdisk, times
from tests.swarm.room import Room, blank_disks

pytestmark = pytest.mark.needs("ip", "tc", "ss", "opentracker", "sfdisk",
                               "mkfs.ext4", "mkfs.fat", "mcopy", "e2fsck",
                               "fsck.fat", "debugfs", root=True)

DATA_MIB = 64
#: The server's uplink, and every receiver's link each way (tc tbf): a
#: server's port shared by the lab, the receivers' ports of the switch
SERVER_MBIT, HOST_MBIT = 40, 160
VICTIM, LATE = 8, 4         # on subnet B; on subnet A
LIVE = 8
#: What the server may upload for the 8 live receivers (and the killed
#: one's half), in images' worth.  Receivers take from the web seed only
#: as a fallback (diskimage/swarm/webseeds.py); the seeder serves 3 peers
#: at a time and steps back to a trickle once the peers hold every piece
#: (diskimage/swarm/stepback.py).  Measured 1.45, 1.35, 1.36 and 1.38
#: (1.71-2.18 when it served every peer all the time); since the fallback
#: waits while the seeder is connected, 1.38, 1.56 and 1.49 with no byte
#: from the web seed; 1.75 stays (1.56 with a fifth's margin is 1.87,
#: above it).  Unicast would be 8.5 images.
SERVER_BOUND = 1.75


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return labdisk.build(tmp_path_factory.mktemp("swarm-lab"), DATA_MIB)


def seeder_summary(seeder):
    """The summary event the seeder tells when stopped."""
    told = seeder.of("summary")
    assert told, seeder.stderr[-2000:]
    return told[-1].get("result", {})


def test_eight_receivers_on_two_subnets(lab, tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    disks = blank_disks(tmp_path, LIVE + 1, lab["size"])
    want = times.reference(lab, tmp_path)
    with Room(on_a=5, on_b=4, server_mbit=SERVER_MBIT,
              host_mbit=HOST_MBIT) as room:
        torrent, web, seeder = room.serve(lab["image"], folder)
        policy = (f"--seed-until={LIVE}", "--seed-time=150")
        began = time.monotonic()
        runs = {i: room.receive(i, torrent, disks[i], *policy)
                for i in range(LIVE + 1) if i != LATE}
        victim = runs[VICTIM]
        victim.until(lambda r: r.percent() >= 50, timeout=120,
                     what="half of the victim's disk")
        victim.proc.send_signal(signal.SIGKILL)
        victim.wait()
        assert room.pids(room.receivers[VICTIM]) == []
        others = [runs[i].percent() for i in runs if i != VICTIM]
        runs[LATE] = room.receive(LATE, torrent, disks[LATE], *policy)
        for i, run in sorted(runs.items()):
            if i != VICTIM:
                assert times.finished(run, 180, f"receiver {i}") == 0, \
                    f"receiver {i}: " + run.stderr[-3000:]
        uplink = room.sent_by_server()
        took = time.monotonic() - began
        seeder.proc.send_signal(signal.SIGTERM)
        assert seeder.wait(30) in (0, 143), seeder.stderr[-2000:]
        assert room.pids(room.server) == []     # opentracker gone too
        web_bytes = web.sent
    for i, run in runs.items():     # for a look after a slow run
        (tmp_path / f"rx{i}.log").write_text(run.stderr)
    told = seeder_summary(seeder)
    seeded = told["uploaded_bytes"]
    served = told["torrents"][0]
    summaries = {i: runs[i].of("end")[-1]["result"] for i in runs
                 if i != VICTIM}
    wanted = summaries[0]["wanted_bytes"]
    print(f"\nswarm room: {LIVE} receivers on 2 subnets, server "
          f"{SERVER_MBIT} Mbit/s, receivers {HOST_MBIT} Mbit/s, "
          f"{wanted / 1e6:.1f} MB wanted of a {lab['size'] / 1e6:.1f} MB "
          f"disk\n  the server's uplink carried {uplink / 1e6:.1f} MB "
          f"({uplink / wanted:.2f} images' worth; tc's count, headers "
          f"included): the seeder told {seeded / 1e6:.1f} MB, the web seed "
          f"wrote {web_bytes / 1e6:.1f} MB into its sockets (what a client "
          f"that cancels a request never gets is counted there too)\n  "
          f"the others were at {min(others):.0f}-{max(others):.0f} % when "
          f"the victim died; the last receiver done after {took:.1f} s\n"
          f"  the seeder stepped back {served.get('stepped_back')} times "
          f"(raised again {served.get('raised_again')}), "
          f"{served.get('back_seconds')} s in all, sending "
          f"{served.get('back_bytes', 0) / 1e6:.1f} MB meanwhile")
    for i, s in sorted(summaries.items()):
        print(f"  receiver {i} ({room.subnet_of(i)}): "
              f"{s['seconds']:.1f} s, web seed "
              f"{s['web_seed_bytes'] / 1e6:.1f} MB, peers "
              f"{s['peer_bytes'] / 1e6:.1f} MB, uploaded "
              f"{s['uploaded_bytes'] / 1e6:.1f} MB, seeded "
              f"{s['seed_seconds']:.1f} s seeing "
              f"{s['receivers_complete']} whole, web seeds added "
              f"{s.get('web_seeds_added')} times "
              f"({s.get('web_seeds_why')}), retries "
              f"{s.get('retries')}")
    assert seeded <= uplink
    assert wanted <= uplink <= SERVER_BOUND * wanted, uplink / wanted
    # the web seed is a fallback, not used while the seeder is connected
    # and pieces keep coming: 0 MB measured in 3 runs (11-25 MB of 81
    # before, when a receiver the seeder choked fell back in 3 s); 0.2
    # leaves room for a receiver starved 5 s
    assert web_bytes <= 0.2 * wanted, web_bytes / wanted
    # the others got the rest from each other
    assert sum(s["peer_bytes"] for s in summaries.values()) >= \
        LIVE * wanted - uplink
    assert summaries[LATE]["peer_bytes"] > 0
    # the seeder stepped back once the peers held the disk, and sent no
    # more than a trickle meanwhile (a margin for the tick it noticed)
    assert served["stepped_back"] >= 1, served
    assert served["back_bytes"] <= \
        TRICKLE * served["back_seconds"] + 4 * 2 ** 20, served
    assert served["unchoke_slots"] == SLOTS, served
    for i, disk in enumerate(disks):
        if i == VICTIM:
            result = rdeploy("verify-target", disk)
            assert result.returncode == 13, result.stderr.decode()
            continue
        result = rdeploy("verify-target", disk, lab["image"])
        assert result.returncode == 0, f"{i}: {result.stderr.decode()}"
        assert labdisk.fsck_clean(disk, lab["manifest"]) == []
        assert sha256(disk) == want, f"receiver {i}'s disk differs"
    assert demodisk.check_disk(disks[0], lab["manifest"]) == []
