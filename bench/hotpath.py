"""Issue 19's hot paths on their own: rdeploy capture and restore of disk
(c) (one partition of seeded random bytes) against the copy floor
(bench/floor.py), best of N rounds.  As in bench/run.py, the outputs are
removed and the page cache dropped (sync; drop_caches) before every run,
unless --warm (then the disk file is read into the cache first).

    .venv/bin/python bench/hotpath.py [--size=MiB] [--rounds=N] [--warm]
                                      [--tree=DIR]... [WORKDIR]

With two --tree (source trees, such as main's checkout and a branch's
worktree) their rdeploy rows alternate in the same rounds: an A/B
comparison under the same load.

Prints, for each of floor capture, rdeploy capture, floor restore and
rdeploy restore, the best wall time and the CPU time (user and system,
all threads) of that best round, and rdeploy's ratios to the floor.
Made for before/after comparisons of a change to the chunk path on a shared
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


def _timed(argv, tree=None):
    """(wall seconds, user seconds, system seconds) of one run of `argv`,
    with the library of source tree `tree` when given."""
    env = None
    if tree:
        env = dict(os.environ, PYTHONPATH=tree)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env,
                   cwd=tree)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime, \
        after.ru_stime - before.ru_stime


def _gone(*paths):
    for path in paths:
        if os.path.exists(path):
            os.unlink(path)


def _cases(work, disk, ranges, trees):
    """{name: (argv, tree, input, outputs)}, in the order they run."""
    path = disk["path"]
    copy = os.path.join(work, "floor.bin")
    target = os.path.join(work, "target.img")
    cases = {"floor capture": ([sys.executable, "-S", floor.ME, "capture",
                                ranges, path, copy], None, path, [copy])}
    for tree in trees:
        image = os.path.join(work, f"c-{len(cases)}.rdi")
        tag = f" [{tree}]" if len(trees) > 1 else ""
        cases[f"rdeploy capture{tag}"] = (
            RDEPLOY + ["capture", path, image, "-q"], tree, path, [image])
        cases[f"rdeploy restore{tag}"] = (
            RDEPLOY + ["restore", image, target, "--yes", "-q"], tree,
            image, [target])
    cases["floor restore"] = ([sys.executable, "-S", floor.ME, "restore",
                               ranges, copy, target, str(disk["size"])],
                              None, copy, [target])
    return cases


def main(argv):
    size, rounds, work, warm, trees = 512, 5, "/tmp/hotpath", False, []
    for arg in argv:
        if arg == "--warm":
            warm = True
        elif arg.startswith("--size="):
            size = int(arg[7:])
        elif arg.startswith("--rounds="):
            rounds = int(arg[9:])
        elif arg.startswith("--tree="):
            trees.append(os.path.abspath(arg[7:]))
        else:
            work = arg
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, f"disk-c-{size}.img")
    disk = dict(diskbuild.build_c(path, {"c_part": size * MiB}, 1),
                path=path)
    ranges, total = floor.ranges_file(disk, work)
    cases = _cases(work, disk, ranges, trees or [os.path.dirname(HERE)])
    best = {}
    for _ in range(rounds):
        for name, (cmd, tree, source, outputs) in cases.items():
            _gone(*outputs)
            if warm:
                os.sync()
                preread(source, os.path.getsize(source))
            elif not drop_caches():
                raise SystemExit("hotpath.py: needs root to drop the page "
                                 "cache (or give --warm)")
            sample = _timed(cmd, tree)
            if name not in best or sample[0] < best[name][0]:
                best[name] = sample
    print(f"disk (c): {total / MiB:.0f} MiB of random bytes, best of "
          f"{rounds}, {'warm' if warm else 'cold'} cache")
    for name, (wall, user, system) in best.items():
        op = "capture" if "capture" in name else "restore"
        ratio = wall / best[f"floor {op}"][0] \
            if f"floor {op}" in best else 0
        print(f"  {name}: wall {wall:.3f} s ({ratio:.2f}x the floor), "
              f"user {user:.3f} s, system {system:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
