"""The compute limit of disk (c) and the issue's targets, checked against
the measured medians."""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import lz4.block

from diskimage.image.format import content_digest, stored_crc

import digestcost

CHUNK = 4 << 20
MB = 1e6


def lz4_rate(path, offset, with_crc=False, seconds=3.0, chunks=16):
    """Bytes per second python-lz4 (lz4.block.compress, level 1) turns
    through on all cores: `chunks` 4 MiB chunks read from `path` at
    `offset`, compressed over and over by a pool of one thread per core
    for about `seconds`.  With `with_crc`, each chunk's checks too, by the
    functions rdeploy uses (format 1.1: BLAKE3-256 of the chunk, CRC-32 of
    the compressed bytes)."""
    with open(path, "rb") as f:
        data = [os.pread(f.fileno(), CHUNK, offset + i * CHUNK)
                for i in range(chunks)]

    def work(block):
        if with_crc:
            content_digest(block)
        packed = lz4.block.compress(block, store_size=False)
        if with_crc:
            stored_crc(packed)
        return len(packed)

    cores = len(os.sched_getaffinity(0))
    done = 0
    with ThreadPoolExecutor(cores) as pool:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for _ in pool.map(work, data):
                pass
            done += sum(len(b) for b in data)
        elapsed = time.perf_counter() - started
    return done / elapsed


def _find(results, prefix):
    """The first result named `prefix`... that has samples (a contender
    that failed every round has none)."""
    return next((r for r in results if r.name.startswith(prefix)
                 and r.samples), None)


def compute_lines(disk, results, seconds=3.0):
    """Lines for disk (c): python-lz4's rate beside rdeploy's; and the
    limit with the bytes captured, for the targets."""
    part = disk["partitions"][0]
    limit = lz4_rate(disk["path"], part["start"], seconds=seconds)
    with_crc = lz4_rate(disk["path"], part["start"], with_crc=True,
                        seconds=seconds)
    lines = [f"Compute limit on {len(os.sched_getaffinity(0))} cores: "
             f"python-lz4 alone compresses {limit / MB:.0f} MB/s "
             f"(lz4.block.compress of 4 MiB chunks, one thread per core); "
             f"with the checks rdeploy adds per chunk (format 1.1: BLAKE3-256 "
             f"and the stored CRC-32), {with_crc / MB:.0f} MB/s.  rdeploy's "
             f"rows include "
             f"starting Python (about 0.1 s).", "",
             "| what | MB/s | share of the python-lz4 limit |",
             "| --- | ---: | ---: |",
             f"| python-lz4 alone | {limit / MB:.0f} | 100% |",
             f"| python-lz4 + BLAKE3 + CRC-32 | {with_crc / MB:.0f} | "
             f"{with_crc / limit:.0%} |"]
    for prefix in ("rdeploy capture (file)", "rdeploy capture (loop)",
                   "rdeploy capture to a pipe", "cat > file"):
        res = _find(results, prefix)
        if res and res.median("wall"):
            rate = part["size"] / res.median("wall")
            lines.append(f"| {res.name} ({res.source}) | {rate / MB:.0f} | "
                         f"{rate / limit:.0%} |")
    lines += digestcost.digest_lines(disk, results, seconds=seconds)
    return lines, {"limit": limit, "bytes": part["size"]}


def _wall(results, name):
    res = _find(results, name)
    return res.median("wall") if res else None


def targets(all_results, compute=None, paired=None):
    """(ok, text) for each target the run measured; `paired` holds the
    captures of disks (a) and (b) run in the same rounds, which the disk
    (b) target then uses."""
    out = []
    a, b, c = (all_results.get(k) for k in "abc")
    if a:
        peer = _find(a, "partclone")
        for kind in ("file", "loop"):
            ours = _find(a, f"rdeploy capture ({kind})")
            if peer and ours:
                ratio = ours.median("wall") / peer.median("wall")
                out.append((ratio <= 0.5 and ours.size <= peer.size,
                            f"capture of disk (a) from the {kind}: "
                            f"{ratio:.2f}x the wall time of partclone | lz4 "
                            f"(target <= 0.5x), image {ours.size / MB:.0f} "
                            f"MB vs {peer.size / MB:.0f} MB (no larger)"))
        ours, peer = _find(a, "rdeploy restore"), _find(a, "lz4 -d | partc")
        if ours and peer:
            ratio = ours.median("wall") / peer.median("wall")
            out.append((ratio <= 0.5, f"restore of disk (a): {ratio:.2f}x "
                        f"the wall time of lz4 -d | partclone -r (target "
                        f"<= 0.5x)"))
    if a and b:
        for kind in ("file", "loop"):
            if paired:
                wa, wb = (next((r.median("wall") for r in paired
                                if r.samples and r.source == kind and
                                r.name.endswith(f"({n})")), None)
                          for n in "ab")
                how = "paired rounds"
            else:
                wa = _wall(a, f"rdeploy capture ({kind})")
                wb = _wall(b, f"rdeploy capture ({kind})")
                how = "each disk's own rounds"
            if wa and wb:
                out.append((wb <= 1.2 * wa, f"capture of disk (b) from the "
                            f"{kind}: {wb / wa:.2f}x the time of disk (a) "
                            f"({how}; target <= 1.2x)"))
    if c and compute:
        for kind in ("file", "loop"):
            wall = _wall(c, f"rdeploy capture ({kind})")
            if wall:
                rate = compute["bytes"] / wall
                out.append((rate >= 0.8 * compute["limit"],
                            f"capture of disk (c) from the {kind}: "
                            f"{rate / MB:.0f} MB/s, "
                            f"{rate / compute['limit']:.0%} of python-lz4's "
                            f"{compute['limit'] / MB:.0f} MB/s on all cores "
                            f"(target >= 80%)"))
    rows = [(k, r) for k, rs in list(all_results.items()) +
            [("paired", paired or [])] for r in rs
            if r.name.startswith("rdeploy") and r.samples]
    if rows:
        worst = max(r.median("rss_kib") for _, r in rows) / 1024
        out.append((worst < 150, f"peak memory of rdeploy: at most "
                    f"{worst:.0f} MB over every disk and operation "
                    f"(target < 150 MB)"))
    if a and b:
        ra = max((r.median("rss_kib") for r in a if r.samples and
                  r.name.startswith("rdeploy")), default=0) / 1024
        rb = max((r.median("rss_kib") for r in b if r.samples and
                  r.name.startswith("rdeploy")), default=0) / 1024
        out.append((rb <= ra * 1.1 + 5, f"peak memory independent of disk "
                    f"size: {ra:.0f} MB on disk (a), {rb:.0f} MB on the "
                    "larger disk (b)"))
    return out
