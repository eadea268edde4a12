"""The swarm's fleet row of the benchmark (issues 18 and 19): the time to
image 2, 4 and 8 machines with `rdeploy swarm`, with HTTP unicast from the
same server and with multicast (within one subnet), and what the server
uploaded, on the room of tests/swarm/room.py: a server namespace on subnet
A, 8 receivers on A and 4 on B behind a router, the server's uplink shaped
by tc tbf to --swarm-rate, every receiver's link (each way) to HOSTS times
that, as in tests/swarm.  The disk is tests/swarm/labdisk.py's (GPT,
FAT16 ESP and ext4 of random files) holding --swarm-data MiB; the rows and
their checks are tests/swarm/times.py's (every restored disk's sha256
against a local restore).  The seeder and the web seed run before the rows
and through them; unicast reads the image from the same web server.

    lines = section(work, data_mib, rate_mbit, say)

The Markdown section goes between the markers below (sidecases.run_swarm);
the rows also go to swarm-times.json in the work directory.
"""

import os
import shutil
import time

from tests import needs
from tests.swarm import labdisk, times
from tests.swarm.room import Room

BEGIN = "<!-- bench-swarm:begin (written by bench/run.py; do not edit) -->"
END = "<!-- bench-swarm:end -->"
HOSTS = 4
TOOLS = ("ip", "tc", "ss", "opentracker", "udp-sender", "udp-receiver",
         "sfdisk", "mkfs.ext4", "mkfs.fat", "mcopy")


def missing():
    """Why the swarm rows cannot run here, or None."""
    try:
        import libtorrent  # noqa: F401
    except ImportError:
        return "the libtorrent Python module (pip install .[swarm])"
    return needs.missing(*TOOLS, root=True)


def section(work, data_mib, rate_mbit, say, counts=(2, 4, 8), keep=False):
    folder = os.path.join(work, "swarm")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "served"))
    began = time.monotonic()
    try:
        say(f"swarm: building a disk holding {data_mib} MiB")
        lab = labdisk.build(folder, data_mib)
        image_bytes = os.path.getsize(lab["image"])
        served = os.path.join(folder, "served")
        with Room(on_a=max(counts), on_b=max(counts) // 2,
                  server_mbit=rate_mbit, host_mbit=HOSTS * rate_mbit) as room:
            torrent, web, seeder = room.serve(lab["image"], served)
            timeout = 60 + 3 * max(counts) * image_bytes * 8 / \
                (rate_mbit * 1e6)
            rows = times.measure(room, lab, torrent, web.url("lab.rdi"),
                                 folder, web, counts=counts,
                                 rate_mbit=rate_mbit, timeout=timeout,
                                 say=lambda text: say("  " + text))
        times.write(rows, os.path.join(work, "swarm-times.json"),
                    mbit=rate_mbit, host_mbit=HOSTS * rate_mbit,
                    image_bytes=image_bytes,
                    disk_bytes=lab["size"])
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    swarm8 = next(r for r in rows if r["method"] == "swarm"
                  and r["machines"] == max(counts))
    return [
        "### Fleet: the swarm against unicast and multicast, across a "
        "router", "",
        f"A disk of {lab['size'] / 1e6:.0f} MB holding {data_mib} MiB of "
        f"random files (GPT, FAT16 ESP, ext4; image {image_bytes / 1e6:.1f} "
        f"MB) laid onto N machines at once, each in its own network "
        f"namespace onto its own disk file; the server on subnet A, swarm "
        f"and unicast machines half on A and half on subnet B behind a "
        f"router namespace, multicast machines all on A (it does not cross "
        f"the router).  The server's uplink limited to {rate_mbit} Mbit/s by "
        f"tc tbf, each machine's link (up and down) to "
        f"{HOSTS * rate_mbit} Mbit/s.  Swarm: `swarm "
        f"seed --run-tracker` and a web seed on the server, receivers with "
        f"`--seed-until=N`; unicast: `rdeploy restore http://...` of the "
        f"image from the same web server; multicast: `multicast send "
        f"--rate={int(rate_mbit * 0.9)}`.  Seconds from the launch of the "
        f"N receivers to the exit of the last; server bytes as its "
        f"uplink's qdisc counted them (headers included).  One round.", ""
    ] + times.table(rows, image_bytes) + [
        "", f"- The swarm's {max(counts)} machines got "
        f"{swarm8.get('peer_bytes', 0) / 1e6:.1f} MB from each other; the "
        f"slowest took {swarm8.get('verified_seconds', 0):.1f} s from its "
        f"own start to verified (the rest of the row's time: starting, "
        f"seeding until --seed-until, exiting).",
        f"- The swarm rows took {(time.monotonic() - began) / 60:.1f} "
        f"minutes, building the disk included.", ""]
