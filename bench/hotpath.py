"""Issue 19's hot paths on their own: rdeploy capture and restore of disk
(c) (one partition of seeded random bytes) against the copy floor
(bench/floor.py), best of N rounds.  As in bench/run.py, the outputs are
removed and the page cache dropped (sync; drop_caches) before every run,
unless --warm (then the disk file is read into the cache first).

    .venv/bin/python bench/hotpath.py [--size=MiB] [--rounds=N] [--warm]
                                      [WORKDIR]

Prints, for each of floor capture, rdeploy capture, floor restore and
rdeploy restore, the best wall time and the CPU time (user + system, all
threads) of that best round, and rdeploy's ratios to the floor.  Made for
before/after comparisons of a change to the chunk path on a shared
machine: the best of N hides most of the others' load, and CPU time
shows work saved even when the wall does not.  The full benchmark
(bench/run.py) stays the judge.
"""

import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import disks as diskbuild  # noqa: E402
import floor  # noqa: E402
from measure import drop_caches, preread  # noqa: E402

MiB = 1 << 20
RDEPLOY = [sys.executable, "-m", "rdeploy"]


def _timed(argv):
    """(wall seconds, CPU seconds) of one run of `argv`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime +
                  after.ru_stime - before.ru_stime)


def _gone(*paths):
    for path in paths:
        if os.path.exists(path):
            os.unlink(path)


def main(argv):
    size, rounds, work, warm = 512, 5, "/tmp/hotpath", False
    for arg in argv:
        if arg == "--warm":
            warm = True
        elif arg.startswith("--size="):
            size = int(arg[7:])
        elif arg.startswith("--rounds="):
            rounds = int(arg[9:])
        else:
            work = arg
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, f"disk-c-{size}.img")
    disk = dict(diskbuild.build_c(path, {"c_part": size * MiB}, 1),
                path=path)
    ranges, total = floor.ranges_file(disk, work)
    copy, image = os.path.join(work, "floor.bin"), \
        os.path.join(work, "c.rdi")
    target = os.path.join(work, "target.img")
    cases = {
        "floor capture": ([sys.executable, "-S", floor.ME, "capture",
                           ranges, path, copy], path, [copy]),
        "rdeploy capture": (RDEPLOY + ["capture", path, image, "-q"],
                            path, [image]),
        "floor restore": ([sys.executable, "-S", floor.ME, "restore",
                           ranges, copy, target, str(disk["size"])],
                          copy, [target]),
        "rdeploy restore": (RDEPLOY + ["restore", image, target, "--yes",
                                       "-q"], image, [target]),
    }
    best = {}
    for _ in range(rounds):
        for name, (cmd, source, outputs) in cases.items():
            _gone(*outputs)
            if warm:
                os.sync()
                preread(source, os.path.getsize(source))
            elif not drop_caches():
                raise SystemExit("hotpath.py: needs root to drop the page "
                                 "cache (or give --warm)")
            wall, cpu = _timed(cmd)
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu)
    print(f"disk (c): {total / MiB:.0f} MiB of random bytes, best of "
          f"{rounds}, {'warm' if warm else 'cold'} cache")
    for name, (wall, cpu) in best.items():
        print(f"  {name:16} wall {wall:6.3f} s  cpu {cpu:6.3f} s")
    for op in ("capture", "restore"):
        ratio = best[f"rdeploy {op}"][0] / best[f"floor {op}"][0]
        print(f"  {op}: {ratio:.2f}x the copy floor")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
