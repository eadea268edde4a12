"""The time to image 2, 4 and 8 machines on the same shaped links (the
server's uplink 40 Mbit/s, every receiver's link 160 Mbit/s each way, as
test_swarm_room.py's; tests/swarm/room.py): `rdeploy swarm receive` (seeder
and web seed on the server, half the machines behind the router), `rdeploy
restore URL` from the same server all at once (HTTP unicast), and `rdeploy
multicast send/receive` within subnet A.  Prints the table (pytest -s)
and writes it as JSON in the test's tmp dir; every disk of every row is
checked against a local restore (tests/swarm/times.py).

What must hold, from the physics of the links: unicast sends N images
from the server, multicast about one; at 8 machines the swarm is faster
than unicast and its server sends less than unicast's.  Not "about one
image" for the swarm here: on this small image its fixed costs (starting,
the final check, waiting for --seed-until) are most of its time, and the
server's uplink stays busy all that time (every receiver's web seed
connection asks the server for pieces that peers could give it): measured
2.9, 4.8 and 5.8 images' worth for 2, 4 and 8 machines before the web
seeds were a fallback, 1.81, 2.39 and 2.64 with the seeder serving 3
peers at a time and stepping back (docs/swarm.md, "The seeder's
upload"), 2.60-3.72 for 8 once the peers spoke TCP only while the disk
was cut in 1 MiB pieces (40, 22 of them wanted), 1.57-2.11 in 64 KiB
pieces (docs/swarm.md, "Pieces"); on the 64 MiB image of
test_swarm_room.py it is 1.35-1.45 for 8 (docs/SCALE.md).
"""

import os

import pytest

from tests.swarm import labdisk, times
from tests.swarm.room import Room
from tests.swarm.test_swarm_room import HOST_MBIT, SERVER_MBIT

pytestmark = pytest.mark.needs("ip", "tc", "ss", "opentracker",
                               "udp-sender", "udp-receiver", "sfdisk",
                               "mkfs.ext4", "mkfs.fat", "mcopy", root=True)

DATA_MIB = 16
#: The swarm's server bytes for 8 machines, in images' worth: 1.57-2.11
#: in 7 runs since this 40 MiB disk is cut in 64 KiB pieces (640; in the
#: 1 MiB pieces it had before, 2.60-3.72 in 8 runs, and the bound then,
#: 3.2, failed 3 of them), with the seeder serving 3 peers at a time and
#: stepping back (diskimage/swarm/stepback.py; 3.5-4.5 when it served
#: every peer), about a fifth's margin (2.11 x 1.2 = 2.53).
SWARM8_BOUND = 2.5


def test_time_to_image_2_4_8_machines(tmp_path):
    lab = labdisk.build(tmp_path, DATA_MIB)
    folder = tmp_path / "served"
    folder.mkdir()
    image_bytes = os.path.getsize(lab["image"])
    with Room(on_a=8, on_b=4, server_mbit=SERVER_MBIT,
              host_mbit=HOST_MBIT) as room:
        torrent, web, seeder = room.serve(lab["image"], folder)
        rows = times.measure(room, lab, torrent, web.url("lab.rdi"),
                             tmp_path, web, rate_mbit=SERVER_MBIT,
                             timeout=90)
    out = times.write(rows, tmp_path / "swarm-times.json", mbit=SERVER_MBIT,
                      host_mbit=HOST_MBIT,
                      image_bytes=image_bytes, disk_bytes=lab["size"])
    print(f"\ntime to image N machines, {image_bytes / 1e6:.1f} MB image, "
          f"server {SERVER_MBIT} Mbit/s, receivers {HOST_MBIT} Mbit/s "
          f"({out}):")
    print("\n".join(times.table(rows, image_bytes)))
    got = {(r["method"], r["machines"]): r for r in rows}
    for n in (2, 4, 8):
        assert got["unicast", n]["server_bytes"] >= 0.95 * n * image_bytes
        assert got["multicast", n]["server_bytes"] < 1.5 * image_bytes
    assert got["swarm", 8]["seconds"] < got["unicast", 8]["seconds"]
    assert got["swarm", 8]["server_bytes"] < \
        got["unicast", 8]["server_bytes"]
    # 3 slots and the step-back, 64 KiB pieces: 1.57-2.11 measured
    assert got["swarm", 8]["server_bytes"] < SWARM8_BOUND * image_bytes
