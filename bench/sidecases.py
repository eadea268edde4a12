"""The benchmark's cases that run on their own as well as in the full run
(run.py's --tftp, --fs-sizes, --fleet, --swarm and --scale): each prints its
section and writes it between its own markers."""

import os
import shutil
import sys
import time
from datetime import datetime, timezone

import disks as diskbuild
import fleetbench
import hugedisk
import report
import swarmbench
import tftpbench

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def say(text):
    print(text, file=sys.stderr, flush=True)


def _print_and_write(args, text, case):
    """Print a case's section and write it into --out after the main
    results, between the case's markers (case.BEGIN, case.END)."""
    print(text)
    if args["--out"] != "-":
        out = args["--out"] if os.path.isabs(args["--out"]) else \
            os.path.join(ROOT, args["--out"])
        report.write(out, text, case.BEGIN, case.END, after=report.END)
        say(f"written into {out}")
    return 0


def run_scale(args, work, command, measure_rows, alone=True):
    """The scale case (hugedisk.py), written between its own markers after
    the main results; alone, exit 0, else its targets."""
    found = hugedisk.run_and_write(args, work, command, measure_rows, say,
                                   ROOT, report)
    return 0 if alone else found


def run_tftp(args, work, command, alone=True):
    """The TFTP case, printed and written between its own markers; without
    its tools, exit 3 when it runs alone, else skipped with a line."""
    why = tftpbench.missing()
    if why:
        say(f"TFTP case {'not run' if alone else 'skipped'}: needs {why}")
        return 3 if alone else 0
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    begun = time.monotonic()
    say("TFTP: a 64 MiB file from three servers")
    os.makedirs(work, exist_ok=True)
    lines = tftpbench.section(work, args["rounds"], say,
                              keep=args["--keep"])
    text = tftpbench.render(lines, started, time.monotonic() - begun,
                            command)
    return _print_and_write(args, text, tftpbench)


def run_fs_sizes(args, work, command):
    """The fleet disk's sizes against partclone (bench/fsbench.py), printed
    and written between its markers in docs/filesystems/fleet.md."""
    import fsbench
    why = fsbench.missing()
    if why:
        say(f"filesystem sizes case not run: {why}")
        return 3
    folder = os.path.join(work, "fleet")
    try:
        text = fsbench.render(fsbench.measure(folder), command)
    finally:
        if not args["--keep"]:
            shutil.rmtree(folder, ignore_errors=True)
    print(text)
    if args["--out"] != "-":
        out = os.path.join(ROOT, fsbench.OUT) \
            if args["--out"] == "docs/BENCHMARKS.md" else args["--out"]
        report.write(out, text, fsbench.BEGIN, fsbench.END)
        say(f"written into {out}")
    return 0


def run_fleet(args, work, seed, command, alone=True):
    """The fleet rows on disk (a), printed and written between their own
    markers; without their tools, exit 3 alone, else skipped with a line."""
    why = fleetbench.missing()
    if why:
        say(f"fleet rows {'not run' if alone else 'skipped'}: needs {why}")
        return 3 if alone else 0
    try:
        rate = int(args["--fleet-rate"])
        assert rate >= 0
    except (ValueError, AssertionError):
        print("run.py: --fleet-rate takes a whole number of Mbit/s (0: "
              "none)", file=sys.stderr)
        return 2
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    disk = diskbuild.build_all(work, args["--quick"], seed, ["a"])["a"]
    lines = fleetbench.section(disk, work, args["rounds"], rate,
                               args["--warm"], say, keep=args["--keep"],
                               seed=seed)
    text = fleetbench.render(lines, started, command)
    return _print_and_write(args, text, fleetbench)


def run_swarm(args, work, command, alone=True):
    """The swarm rows (swarmbench.py): the time to image 2, 4 and 8
    machines with the swarm, unicast and multicast, written between their
    own markers; without their tools, exit 3 alone, else skipped."""
    why = swarmbench.missing()
    if why:
        say(f"swarm rows {'not run' if alone else 'skipped'}: {why}")
        return 3 if alone else 0
    try:
        data, rate = int(args["--swarm-data"]), int(args["--swarm-rate"])
        assert data >= 4 and rate >= 1
    except (ValueError, AssertionError):
        print("run.py: --swarm-data takes MiB (at least 4), --swarm-rate "
              "Mbit/s (at least 1)", file=sys.stderr)
        return 2
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    os.makedirs(work, exist_ok=True)
    lines = swarmbench.section(work, data, rate, say, keep=args["--keep"])
    text = fleetbench.render(lines, started, command, swarmbench.BEGIN,
                             swarmbench.END, "swarm")
    return _print_and_write(args, text, swarmbench)
