"""The time to image N machines, on one room's links (tests/swarm/room.py),
with the swarm, with HTTP unicast and (within subnet A) with multicast:
what tests/swarm/test_swarm_times.py prints and bench/swarmbench.py writes
into docs/BENCHMARKS.md.

    rows = measure(room, lab, torrent, url, folder, counts=(2, 4, 8))

A row: {"method", "machines", "seconds" (launch of the N receivers, at
once, to the exit of the last; the multicast sender is launched just
before them, the seeder and web seed already run), "server_bytes" (what
left the server's uplink meanwhile, as its tc qdisc counts: headers
included), "web_seed_bytes", "seeder_bytes", "each" (when this side saw
each receiver exit, in launch order)}; a swarm row adds "verified_seconds"
(the slowest receiver's own seconds to verified, from its summary),
"seed_seconds" (each one's seeding) and "peer_bytes".  Every disk of
every row is checked: its sha256 equals that of a local `rdeploy
restore` of the image onto a blank disk of its size.
"""

import json
import os
import subprocess
import time

from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import sha256
from tests.swarm.room import blank_disks

METHODS = ("swarm", "unicast", "multicast")


def reference(lab, folder):
    """sha256 of a plain restore of the image onto a blank disk."""
    disk = blank_disks(folder, 1, lab["size"], prefix="reference")[0]
    result = rdeploy("restore", lab["image"], disk, "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    digest = sha256(disk)
    os.unlink(disk)
    return digest


def machines(room, method, n):
    """Which receivers image N machines: half on each subnet (the router
    between them and the server for half), all on A for multicast."""
    if method == "multicast":
        assert n <= room.on_a, "multicast stays within subnet A"
        return list(range(n))
    half = n // 2
    assert half <= len(room.receivers) - room.on_a
    return list(range(n - half)) + \
        list(range(room.on_a, room.on_a + half))


def verified_seconds(summary):
    """A receiver's own seconds to verified: its summary's seconds less
    its seeding."""
    return float(summary["seconds"]) - float(summary["seed_seconds"])


def _summary(run):
    ends = run.of("end")
    return ends[-1].get("result", {}) if ends else {}


def one_row(room, method, n, lab, torrent, url, folder, web, *,
            rate_mbit, timeout, swarm_options=()):
    """Run one row; returns it (see the module's docstring)."""
    chosen = machines(room, method, n)
    disks = blank_disks(folder, n, lab["size"], prefix=f"{method}-")
    web_before, sent_before = web.sent, room.sent_by_server()
    began = time.monotonic()
    sender = None
    if method == "multicast":
        sender = room.multicast_send(lab["image"], n,
                                     f"--rate={int(rate_mbit * 0.9)}")
        runs = [room.multicast_receive(i, d) for i, d in zip(chosen, disks)]
    elif method == "unicast":
        runs = [room.restore(i, url, d) for i, d in zip(chosen, disks)]
    else:
        runs = [room.receive(i, torrent, d, f"--seed-until={n}",
                             f"--seed-time={int(timeout)}", *swarm_options)
                for i, d in zip(chosen, disks)]
    each = []
    for run in runs:
        code = finished(run, timeout, f"{method} to {n}")
        each.append(time.monotonic() - began)
        assert code == 0, f"{method} to {n}: {run.stderr[-2000:]}"
    if sender is not None:
        assert sender.wait(timeout) == 0, sender.stderr[-2000:]
    seconds = max(each)
    row = {"method": method, "machines": n, "seconds": round(seconds, 2),
           "each": [round(s, 2) for s in each],
           "server_bytes": room.sent_by_server() - sent_before,
           "web_seed_bytes": web.sent - web_before}
    if method == "swarm":
        summaries = [_summary(run) for run in runs]
        # each receiver's own seconds to verified: `each` is when this
        # loop saw it exit, after the ones before it, so a receiver that
        # left early would be counted at the exit of a slower one
        for run, summary in zip(runs, summaries):
            assert "seconds" in summary and "seed_seconds" in summary, \
                f"swarm to {n}: no summary: {run.stderr[-2000:]}"
        row["verified_seconds"] = round(max(
            verified_seconds(summary) for summary in summaries), 2)
        row["seed_seconds"] = [round(float(summary["seed_seconds"]), 2)
                               for summary in summaries]
        row["peer_bytes"] = sum(int(summary.get("peer_bytes", 0))
                                for summary in summaries)
    return row, disks


def measure(room, lab, torrent, url, folder, web, *, counts=(2, 4, 8),
            methods=METHODS, rate_mbit, timeout=120, say=None, want=None,
            swarm_options=()):
    """Every method for every count, one after the other; each row's disks
    checked against `want` (reference()'s digest) then removed."""
    want = want or reference(lab, folder)
    rows = []
    for n in counts:
        for method in methods:
            row, disks = one_row(room, method, n, lab, torrent, url, folder,
                                 web, rate_mbit=rate_mbit, timeout=timeout,
                                 swarm_options=swarm_options)
            for disk in disks:
                assert sha256(disk) == want, f"{method} to {n}: {disk}"
                os.unlink(disk)
            rows.append(row)
            if say:
                say(f"{method} to {n}: {row['seconds']:.1f} s, server sent "
                    f"{row['server_bytes'] / 1e6:.1f} MB")
    return rows


def table(rows, image_bytes):
    """The rows as a Markdown table (seconds, and server bytes in images)."""
    lines = ["| machines | method | seconds (last done) | server sent MB | "
             "server sent / image |",
             "| ---: | --- | ---: | ---: | ---: |"]
    for row in sorted(rows, key=lambda r: (r["machines"],
                                           METHODS.index(r["method"]))):
        lines.append(
            f"| {row['machines']} | {row['method']} | {row['seconds']:.1f} |"
            f" {row['server_bytes'] / 1e6:.1f} | "
            f"{row['server_bytes'] / image_bytes:.2f} |")
    return lines


def write(rows, path, **extra):
    with open(path, "w") as f:
        json.dump({"rows": rows, **extra}, f, indent=1)
    return path



def find(obj, key):
    """A number `key` in a nested summary, summed over its dicts (the
    seeder's holds one per torrent); None when there is none."""
    if isinstance(obj, dict):
        if isinstance(obj.get(key), (int, float)):
            return obj[key]
        obj = list(obj.values())
    if not isinstance(obj, list):
        return None
    found = [v for v in (find(o, key) for o in obj) if v is not None]
    return sum(found) if found else None


def finished(run, timeout, what):
    """`run`'s exit code; a run still going after `timeout` s fails the
    test with what it told (stopped by the room's close)."""
    try:
        return run.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what} still running after {timeout} s: "
                             f"{run.stderr[-3000:]}") from None
