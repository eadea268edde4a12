"""Benchmark rdeploy against the tools users would use instead.

Usage:
  run.py [--work=DIR] [--rounds=N] [--quick] [--disks=LIST] [--seed=N]
         [--out=FILE] [--full] [--warm] [--profile] [--keep]
         [--scale-data=GIB]
  run.py --tftp [--work=DIR] [--rounds=N] [--out=FILE] [--keep]
  run.py --fs-sizes [--work=DIR] [--out=FILE] [--keep]
  run.py --encrypt [--work=DIR] [--rounds=N] [--quick] [--seed=N]
         [--out=FILE] [--warm] [--keep]
  run.py --fleet [--work=DIR] [--rounds=N] [--quick] [--seed=N]
         [--fleet-rate=MBIT] [--out=FILE] [--warm] [--keep]
  run.py --swarm [--work=DIR] [--swarm-data=MIB] [--swarm-rate=MBIT]
         [--out=FILE] [--keep]
  run.py --scale [--work=DIR] [--rounds=N] [--quick] [--seed=N]
         [--out=FILE] [--warm] [--scale-data=GIB]
  run.py (-h | --help)

Builds the benchmark disks (cached in the work directory, rebuilt when
their recipe changes), then on each disk runs every contender in
alternation for several rounds: rdeploy capture and restore; partclone.<fs>
| lz4 -1 per partition and lz4 -d | partclone.<fs> -r; lz4 -1 and zstd -1
-T0 over the whole disk; e2image -ra | lz4 -1 for ext4; qemu-img convert.
Sources are the disk file and a loop device over it (partclone and e2image
read loop devices over the partitions, made with losetup -o --sizelimit).
Restores write new disk files.  Last, rdeploy's captures of disks (a) and
(b) run again in the same rounds (at least 5), for the target that (b) costs
no more than (a).  Peak memory is measured by GNU time.  Then the TFTP
case (bench/tftpbench.py): a 64 MiB file fetched by curl and by atftp from
the built-in TFTP server, dnsmasq's and tftpd-hpa's, in a network
namespace.  Prints the tables and writes them between the markers in
docs/BENCHMARKS.md (the TFTP case between markers of its own).  Needs root
(loop devices, mounts, dropping the page cache, a network namespace).

Options:
  --work=DIR     Where disks, images and logs go (needs ~25 GB free)
                 [default: /var/tmp/rdeploy-bench].
  --rounds=N     Rounds of every contender [default: 3].
  --quick        Small disks (320 MiB, 4 GiB, 64 MiB): a smoke test.
  --disks=LIST   Which disks: a (4 GiB), b (64 GiB sparse), c (random)
                 [default: a,b,c].
  --seed=N       Seed of the file choice and random data [default: 1].
  --out=FILE     Markdown file to write the results into, "-" for none
                 [default: docs/BENCHMARKS.md].
  --full         Also run lz4, zstd and qemu-img over the whole 64 GiB of
                 disk (b) from the loop device (adds minutes).
  --warm         Do not drop the page cache: each run's input is read into
                 it first (for tests, and machines where dropping it is not
                 allowed).
  --profile      Also sample rdeploy with py-spy (make bench installs it):
                 a capture and a restore of disk (a), a capture of disk (c)
                 to a pipe; the busiest lines of every thread go into the
                 results.
  --keep         Keep the images and logs in the work directory.
  --tftp         Only the TFTP case (no disks), about a minute.
  --fs-sizes     Only the filesystem sizes case (bench/fsbench.py), into
                 docs/filesystems/fleet.md unless --out says otherwise.
  --encrypt      Only the encryption case (bench/cryptbench.py): capture
                 and restore of disk (a) with --encrypt and without, in
                 the same rounds; the full run has it too.
  --fleet        Only the fleet rows (bench/fleetbench.py): multicast to
                 4 receivers against unicast HTTP restores on the bench's
                 own bridge, and delta restore against full restore of
                 disk (a)'s image; the full run has them too.
  --fleet-rate=MBIT  The fleet rows' server link, limited by tc tbf (0:
                 no limit) [default: 200].
  --swarm        Only the swarm rows (bench/swarmbench.py): the time to
                 image 2, 4 and 8 machines with rdeploy swarm, unicast HTTP
                 and multicast, across a router namespace; the full run
                 has them too.
  --swarm-data=MIB  The swarm rows' disk holds this much [default: 256].
  --swarm-rate=MBIT  Every link of the swarm rows, limited by tc tbf
                 [default: 200].
  --scale        Only the scale case (bench/hugedisk.py): capture and
                 restore of a 1 TiB sparse disk holding 10 GiB against a
                 12 GiB disk holding the same, and the used maps of a
                 4 TiB ext4 and NTFS (peak memory); the full run has it
                 too (not --quick runs: it builds 20 GiB of disks).
  --scale-data=GIB  The data the scale case's disks hold, in GiB; the
                 small disk is 2 GiB larger [default: 10].
  -h --help      Show this text.

Examples:
  .venv/bin/python bench/run.py                 # the full run, ~15 min
  .venv/bin/python bench/run.py --quick --rounds=1 --out=-
  .venv/bin/python bench/run.py --tftp --out=-  # only TFTP, printed
  make bench BENCH_ARGS="--rounds=5"
"""

import os
import shlex
import sys
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]

from docopt import docopt  # noqa: E402

import contenders  # noqa: E402
import cryptbench  # noqa: E402
import disks as diskbuild  # noqa: E402
import floor  # noqa: E402
import peers19  # noqa: E402
import limits  # noqa: E402
import sampling  # noqa: E402
import report  # noqa: E402
import sidecases  # noqa: E402
from measure import (Result, StepFailed, drop_caches,  # noqa: E402
                     machine, preread, run_steps, sizes)


def say(text):
    print(text, file=sys.stderr, flush=True)


def measure_rows(rows, rounds, warm, log):
    """Run `rows` in alternation for `rounds`; the page cache is dropped
    before each run, or, when `warm` lists (path, length), those bytes are
    read first.  Returns a Result per row."""
    results = [Result(r["name"], r["op"], r["source"], r["versus"])
               for r in rows]
    for rnd in range(rounds):
        shift = rnd % len(rows)
        for i in list(range(shift, len(rows))) + list(range(shift)):
            row = rows[i]
            if row.get("setup"):
                row["setup"]()
            try:
                if warm:
                    for path, length in warm(row):
                        preread(path, length)
                else:
                    drop_caches()
                sample = run_steps(row["steps"], log)
            except StepFailed as exc:      # one broken peer spoils no run
                results[i].note = "failed"
                say(f"  round {rnd + 1}/{rounds}: {row['name']} failed: "
                    f"{exc} (its stderr: {log}, kept with --keep)")
                continue
            finally:
                if row.get("teardown"):
                    row["teardown"]()
            results[i].samples.append(sample)
            if row["op"] == "capture":
                results[i].size = sizes(row["outputs"])
            say(f"  round {rnd + 1}/{rounds}: {row['op']} {row['name']} "
                f"({row['source']}): {sample.wall:.2f} s")
    return results


def run_disk(name, disk, args, work):
    """Capture and restore rows of one disk, and extra lines (limits)."""
    say(f"disk ({name}): {disk['path']}")
    devs = {"disk": contenders.losetup(disk["path"])}
    made = []

    def out(file):
        made.append(os.path.join(work, f"{name}-{file}"))
        return made[-1]
    log = out("tools.log")
    try:
        for p in disk["partitions"]:
            if p["fs"]:
                devs[f"p{p['number']}"] = contenders.losetup(
                    disk["path"], p["start"], p["size"])
        caps = contenders.captures(disk, devs, out, full=args["--full"]) \
            + floor.captures(disk, devs, out, work) \
            + peers19.captures(disk, devs, out)
        warm_cap = warm_rest = None
        if name == "c" or args["--warm"]:   # the input in the page cache
            def warm_cap(row):
                return [(disk["path"], disk["size"])]

            def warm_rest(row):
                return [(out("rdeploy-file.rdi"), 1 << 62)] + [
                    (p, 1 << 62) for c in caps if c.get("restore")
                    for p in c["outputs"][:1]] + [
                    (p, 1 << 62) for p in row.get("warm", [])]
        results = measure_rows(caps, args["rounds"], warm_cap, log)
        rests = contenders.restores(disk, caps, out) \
            + floor.restores(disk, out, work) \
            + peers19.restores(disk, caps, out)
        results += measure_rows(rests, args["rounds"], warm_rest, log)
        extra, compute = floor.lines(name, disk, results, work) + \
            peers19.lines(name, results), None
        if name == "c":
            more, compute = limits.compute_lines(
                disk, results, seconds=0.5 if args["--quick"] else 3.0)
            extra += more
        if args["--profile"] and name in ("a", "c"):
            extra += [""] + profiles(name, disk, out, work, args["--warm"])
        return results, extra, compute
    finally:
        contenders.detach(*devs.values())
        if not args["--keep"]:
            for path in made:
                if os.path.exists(path):
                    os.unlink(path)


PAIRED_ROUNDS = 5


def run_paired(built, args, work):
    """rdeploy's captures of disks (a) and (b) in the same rounds (at least
    PAIRED_ROUNDS, unless --quick): the (b)/(a) target compares these, not
    medians taken minutes apart on a machine whose load drifts."""
    pair = {name: built[name] for name in ("a", "b")}
    say("disks (a) and (b), paired")
    devs = {name: contenders.losetup(disk["path"])
            for name, disk in pair.items()}
    made = []

    def out(file):
        made.append(os.path.join(work, f"paired-{file}"))
        return made[-1]
    try:
        rows = contenders.paired_captures(pair, devs, out)
        rounds = args["rounds"] if args["--quick"] else \
            max(args["rounds"], PAIRED_ROUNDS)
        warm = None
        if args["--warm"]:
            def warm(row):
                return [(row["input"], 1 << 62)]
        results = measure_rows(rows, rounds, warm, out("tools.log"))
    finally:
        contenders.detach(*devs.values())
        for path in made:
            if os.path.exists(path):
                os.unlink(path)
    return results, rounds


def run_encrypt(disk, args, work):
    """cryptbench's rows on disk (a): (results, section lines)."""
    say("disk (a) with --encrypt and without")
    return cryptbench.run(disk, args, work, measure_rows, say)


def profiles(name, disk, out, work, warm):
    """py-spy summaries of rdeploy on `disk`: capture and restore of disk
    (a) from a dropped cache; of disk (c), warm, a capture to a pipe, then
    a capture to a file and its restore."""
    image, target = out("profiled.rdi"), out("profiled-target.img")
    runs = [("capture", contenders.RDEPLOY + ["capture", disk["path"],
                                              image, "-q"]),
            ("restore", contenders.RDEPLOY + ["restore", image, target,
                                              "--yes", "-q"])]
    if name == "c":     # issue 19: all three, against the copy floor
        warm = True
        runs = [("capture to a pipe", contenders.RDEPLOY + [
            "capture", disk["path"], "-", "-q"])] + runs
    result = [f"### Profiles of disk ({name}) (py-spy, every thread, idle "
              f"included)", "",
              "Share of each thread's samples per (Python line, native "
              "leaf); the raw stacks are in the work directory "
              "(profile-*.txt, for flamegraph.pl or speedscope).", ""]
    for what, argv in runs:
        raw = os.path.join(work, f"profile-{name}-"
                           f"{what.replace(' ', '-')}.txt")
        if warm:
            preread(disk["path"], disk["size"])
            if os.path.exists(image):
                preread(image, 1 << 62)
        else:
            drop_caches()
        if not sampling.record(argv, raw, ROOT):
            return result + ["py-spy is not installed (`make bench` "
                             "installs the bench extra)."]
        result += sampling.lines(f"rdeploy {what} of disk ({name}), "
                                 f"{'warm' if warm else 'cold'} cache", raw)
    return result


def main(argv=None):
    args = docopt(__doc__, argv=argv)
    try:
        args["rounds"] = int(args["--rounds"])
        seed = int(args["--seed"])
        assert args["rounds"] >= 1
    except (ValueError, AssertionError):
        print("run.py: --rounds and --seed take whole numbers (rounds >= 1)",
              file=sys.stderr)
        return 2
    which = [d.strip() for d in args["--disks"].split(",") if d.strip()]
    if not which or set(which) - {"a", "b", "c"}:
        print("run.py: --disks takes a list of a, b, c", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("run.py: needs root (loop devices, mounts, drop_caches)",
              file=sys.stderr)
        return 3
    work = os.path.abspath(args["--work"])
    if args["--tftp"]:
        return sidecases.run_tftp(args, work, _command())
    if args["--fs-sizes"]:
        return sidecases.run_fs_sizes(args, work, _command())
    if args["--fleet"]:
        return sidecases.run_fleet(args, work, seed, _command())
    if args["--swarm"]:
        return sidecases.run_swarm(args, work, _command())
    if args["--scale"]:
        return sidecases.run_scale(args, work, _command(), measure_rows)
    if args["--encrypt"]:
        built = diskbuild.build_all(work, args["--quick"], seed, ["a"])
        results, lines = run_encrypt(built["a"], args, work)
        text = "\n".join([cryptbench.BEGIN, "", f"Command: `{_command()}`",
                          ""] + lines + [cryptbench.END]) + "\n"
        print(text)
        if args["--out"] != "-":
            out = args["--out"] if os.path.isabs(args["--out"]) else \
                os.path.join(ROOT, args["--out"])
            report.write(out, text, cryptbench.BEGIN, cryptbench.END)
            say(f"written into {out}")
        return 0
    meta = {"machine": machine(), "rounds": args["rounds"],
            "started": datetime.now(timezone.utc).strftime(
                "%Y-%m-%d %H:%M"),
            "command": _command()}
    started = time.monotonic()
    say("building or reusing the disks in " + work)
    built = diskbuild.build_all(work, args["--quick"], seed, which)
    dropped = not args["--warm"] and drop_caches()
    meta["cache"] = "never dropped (--warm): every run's input is read " \
        "into it first" if args["--warm"] else (
        "dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every "
        "run on disks (a) and (b); on disk (c) the source (and for restores "
        "the image) is read into the cache first, so (c) measures compute"
        if dropped else "could NOT be dropped (no permission): warm runs")
    sections, all_results, compute = [], {}, None
    for name in which:
        results, extra, limit = run_disk(name, built[name], args, work)
        compute = compute or limit
        all_results[name] = results
        sections.append(report.disk_section(name, built[name], results,
                                            extra))
    paired = None
    if {"a", "b"} <= set(which):
        paired, rounds = run_paired(built, args, work)
        sections.append(report.paired_section(paired, rounds))
    crypt = []
    if "a" in which:
        crypt, lines = run_encrypt(built["a"], args, work)
        sections.append(lines)
    scale = []
    if "a" in which and not args["--quick"]:
        scale = sidecases.run_scale(args, work, meta["command"],
                                    measure_rows, alone=False)
    meta["elapsed"] = time.monotonic() - started
    meta["load_end"] = os.getloadavg()
    text = report.render(meta, sections,
                         limits.targets(all_results, compute, paired) +
                         cryptbench.targets(crypt) +
                         floor.targets(all_results) + scale +
                         peers19.targets(all_results))
    print(text)
    if args["--out"] != "-":
        out = args["--out"] if os.path.isabs(args["--out"]) else \
            os.path.join(ROOT, args["--out"])
        report.write(out, text)
        say(f"written into {out}")
    code = sidecases.run_tftp(args, work, meta["command"], alone=False)
    if "a" in which and not args["--quick"]:    # --quick: tests/bench
        code = code or sidecases.run_fleet(args, work, seed, meta["command"],
                                 alone=False)
        code = code or sidecases.run_swarm(args, work, meta["command"],
                                           alone=False)
    return code


def _command():
    return shlex.join([os.path.relpath(sys.executable, ROOT)
                       if sys.executable.startswith(ROOT) else sys.executable,
                       os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] +
                      sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
