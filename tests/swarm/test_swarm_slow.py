"""One slow machine slows only itself (issue 18): a room
(tests/swarm/room.py) of 5 receivers, 2 on subnet A and 2 behind the
router on B at 160 Mbit/s each way, and a fifth on A whose links are an
eighth of that (20 Mbit/s each way).  The same 4 fast receivers image
their disks twice from the same seeder: with the slow one beside them,
then alone (in that order: the one run measured the other way round was
slower first, 24.8 s against 19.3, so this order does not flatter it), every receiver staying to seed until all of its run hold the
disk (--seed-until, as a site runs it).  Each fast receiver's time to
verified (its summary's seconds less its seed_seconds) with the slow one
must stay within MARGIN of the run without it; the slow one finishes and
verifies too.  Every disk equals a local restore of the image.
"""

import os

import pytest

from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import sha256
from tests.swarm import labdisk, times
from tests.swarm.room import Room, blank_disks

pytestmark = pytest.mark.needs("ip", "tc", "ss", "opentracker", "sfdisk",
                               "mkfs.ext4", "mkfs.fat", "mcopy", root=True)

DATA_MIB = 48
SERVER_MBIT, HOST_MBIT = 40, 160
SLOW, SLOW_MBIT = 2, 10         # on subnet A
FAST = (0, 1, 3, 4)
#: The fast receivers' slowest time to verified with the slow one, over
#: their slowest without it, may be at most this.  Measured 1.05 and 1.16
#: (0.96 with a 20 Mbit/s slow one, 0.78 with the runs the other way
#: round); two runs of one room differ by up to 1.3, hence 1.5.  A fast
#: receiver held to the slow one's pace would be at 2.5 (the slow one
#: takes 50 s, its line rate, against 20).
MARGIN = 1.5


def one_run(room, torrent, lab, folder, chosen, name):
    disks = blank_disks(folder, len(chosen), lab["size"], prefix=name)
    runs = {i: room.receive(i, torrent, disk, f"--seed-until={len(chosen)}",
                            "--seed-time=100")
            for i, disk in zip(chosen, disks)}
    for i, run in runs.items():
        assert times.finished(run, 150, f"{name} receiver {i}") == 0, \
            f"{name} receiver {i}: " + run.stderr[-3000:]
    summaries = {i: run.of("end")[-1]["result"] for i, run in runs.items()}
    return summaries, dict(zip(chosen, disks))


def test_one_slow_machine_slows_only_itself(tmp_path):
    lab = labdisk.build(tmp_path, DATA_MIB)
    folder = tmp_path / "served"
    folder.mkdir()
    want = times.reference(lab, tmp_path)
    with Room(on_a=3, on_b=2, server_mbit=SERVER_MBIT, host_mbit=HOST_MBIT,
              links={SLOW: SLOW_MBIT}) as room:
        torrent, web, seeder = room.serve(lab["image"], folder)
        mixed, disks = one_run(room, torrent, lab, tmp_path,
                               (*FAST, SLOW), "mixed")
        sent = [room.sent_by_server()]
        for i, disk in disks.items():
            assert sha256(disk) == want, f"receiver {i}'s disk differs"
            result = rdeploy("verify-target", disk, lab["image"])
            assert result.returncode == 0, f"{i}: {result.stderr.decode()}"
            os.unlink(disk)
        alone, disks = one_run(room, torrent, lab, tmp_path, FAST, "alone")
        sent.append(room.sent_by_server() - sent[0])
        for i, disk in disks.items():
            assert sha256(disk) == want, f"receiver {i}'s disk differs"
    wanted = alone[FAST[0]]["wanted_bytes"]
    before = max(times.verified_seconds(alone[i]) for i in FAST)
    after = max(times.verified_seconds(mixed[i]) for i in FAST)
    print(f"\nswarm, one slow machine: {wanted / 1e6:.1f} MB wanted, server "
          f"{SERVER_MBIT} Mbit/s, receivers {HOST_MBIT} Mbit/s, the slow "
          f"one {SLOW_MBIT} Mbit/s")
    for name, summaries in (("alone", alone), ("with the slow one", mixed)):
        for i, s in sorted(summaries.items()):
            print(f"  {name}: receiver {i}{' (slow)' if i == SLOW else ''}:"
                  f" verified at {times.verified_seconds(s):.1f} s, peers "
                  f"{s['peer_bytes'] / 1e6:.1f} MB, web seed "
                  f"{s['web_seed_bytes'] / 1e6:.1f} MB, uploaded "
                  f"{s['uploaded_bytes'] / 1e6:.1f} MB, hash failures "
                  f"{s['hash_failures']}, web seeds added "
                  f"{s.get('web_seeds_why')}")
    print(f"  the server's uplink carried {sent[0] / wanted:.2f} images' "
          f"worth with the slow one, {sent[1] / wanted:.2f} without (tc's "
          f"count)")
    print(f"  the fast ones' slowest: {before:.1f} s alone, {after:.1f} s "
          f"with the slow one ({after / before:.2f})")
    assert mixed[SLOW]["verified"] is True
    # its link was slow: no faster than its line rate allows for what
    # crossed it (the pieces it downloaded: zero pieces are written, not
    # fetched, so "wanted" over-counts; CI saw 49.7 s for 62.9 MB wanted
    # of which 59.1 MB came over the link, 47.3 s at the line rate)
    crossed = mixed[SLOW]["downloaded_bytes"]
    assert crossed > 0
    assert times.verified_seconds(mixed[SLOW]) >= \
        crossed * 8 / (SLOW_MBIT * 1e6)
    assert after <= MARGIN * before, (before, after)
