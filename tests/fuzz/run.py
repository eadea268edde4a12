"""Fuzz the readers of untrusted bytes with atheris (coverage-guided).

Usage:
  python -m tests.fuzz.run [--seconds=N] [--targets="a b"] [--log=FILE]
  python -m tests.fuzz.run --list
  python -m tests.fuzz.run --child=NAME [LIBFUZZER-ARGS...]

Each target (tests/fuzz/targets/<name>.py, see targets_index.py) runs in a
child process of its own for N seconds (libFuzzer: -max_total_time=N,
-rss_limit_mb=1024, -timeout=10, -max_len=the target's MAX_LEN), starting
from tests/fuzz/corpus/<name>/ and adding the inputs that reach new code
there; a crash, hang (over 10 s) or out-of-memory input is written to
tests/fuzz/crashes/<name>/.  After a run without findings the corpus is
minimized (libFuzzer -merge=1: the inputs that keep its coverage), as it
is committed.  The child also caps its address space, so a
reader that asks for gigabytes raises MemoryError, a finding, instead of
swapping.  Per target the executions, time, coverage and findings are
printed and appended as one line to tests/fuzz/campaigns.tsv (the figures
docs/SECURITY.md quotes); libFuzzer's own output goes to
tests/fuzz/logs/<time>-<name>.txt.  Exit 1 when any target found something.
"""

import argparse
import datetime
import hashlib
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

from tests.fuzz import targets_index as index

LOG = os.path.join(index.HERE, "campaigns.tsv")
LOGS = os.path.join(index.HERE, "logs")
COLUMNS = ("date", "target", "seconds", "executions", "exec_per_s", "cov",
           "ft", "corpus_files", "findings", "commit")
ADDRESS_SPACE = 2 << 30     # bytes a child may map beyond what it has at start


def child(name, args):
    """Run target `name` under atheris in this process (never returns)."""
    import atheris
    with atheris.instrument_imports(include=["diskimage"]):
        import diskimage.errors  # noqa: F401 (instrumented before targets)
        module = index.load(name)
    _cap_address_space()

    prefix = next((a.split("=", 1)[1] for a in args
                   if a.startswith("-artifact_prefix=")), None)

    def test_one_input(data):
        try:
            index.call(module, data)
        except BaseException:
            # libFuzzer writes the input only when it sees the process
            # end; a reader that left a thread behind can hang that exit
            # (seen with restore's feeder), so the input is kept first.
            if prefix:
                _keep(prefix, bytes(data))
            raise

    atheris.Setup([_launcher(name)] + args, test_one_input)
    atheris.Fuzz()


def _keep(prefix, data):
    path = f"{prefix}crash-{hashlib.sha1(data).hexdigest()}"
    with open(path, "wb") as f:
        f.write(data)
    print(f"run.py: the input is kept as {path}", file=sys.stderr,
          flush=True)


def _launcher(name):
    """An executable that runs this child again: libFuzzer's merge and
    fork modes start their workers as argv[0], which for `python -m` is
    run.py itself (not executable)."""
    os.makedirs(LOGS, exist_ok=True)
    path = os.path.join(LOGS, f"child-{name}.sh")
    text = (f"#!/bin/sh\ncd '{_root()}' && exec '{sys.executable}' -m "
            f"tests.fuzz.run --child={name} \"$@\"\n")
    try:
        with open(path) as f:
            if f.read() == text:
                return path
    except FileNotFoundError:
        pass
    with open(path + ".new", "w") as f:
        f.write(text)
    os.chmod(path + ".new", 0o755)
    os.replace(path + ".new", path)
    return path


def _cap_address_space():
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f
                  if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        return          # a worker of a merge: its parent's cap holds
    resource.setrlimit(resource.RLIMIT_AS, (vm + ADDRESS_SPACE, hard))


def _last(pattern, text, default=""):
    found = re.findall(pattern, text)
    return found[-1] if found else default


def campaign(name, seconds):
    """Fuzz one target; returns the row for campaigns.tsv (a dict)."""
    module = index.load(name)
    corpus = os.path.join(index.CORPUS, name)
    crashes = os.path.join(index.CRASHES, name)
    for folder in (corpus, crashes, LOGS):
        os.makedirs(folder, exist_ok=True)
    before = set(os.listdir(crashes))
    stamp = datetime.datetime.now(datetime.timezone.utc)
    out = os.path.join(LOGS, f"{stamp:%Y%m%dT%H%M%SZ}-{name}.txt")
    args = [corpus, f"-max_total_time={seconds}", "-rss_limit_mb=1024",
            "-timeout=10", f"-max_len={index.max_len(module)}",
            f"-artifact_prefix={crashes}/", "-print_final_stats=1"]
    start = time.monotonic()
    with open(out, "w") as log:
        subprocess.run([sys.executable, "-m", "tests.fuzz.run",
                        f"--child={name}"] + args, cwd=_root(),
                       stdout=log, stderr=subprocess.STDOUT)
    took = time.monotonic() - start
    with open(out) as f:
        text = f.read()
    executions = int(_last(r"stat::number_of_executed_units: (\d+)", text)
                     or _last(r"Done (\d+) runs", text)
                     or _last(r"#(\d+)\s", text, "0"))
    new = sorted(set(os.listdir(crashes)) - before)
    if not new:
        _minimize(name, corpus, args[2:5])
    return {"date": f"{stamp:%Y-%m-%dT%H:%MZ}", "target": name,
            "seconds": f"{took:.0f}", "executions": str(executions),
            "exec_per_s": f"{executions / took:.0f}" if took else "0",
            "cov": _last(r"cov: (\d+)", text, "-"),
            "ft": _last(r"ft: (\d+)", text, "-"),
            "corpus_files": str(len(os.listdir(corpus))),
            "findings": " ".join(f"crashes/{name}/{n}" for n in new)
            or "none", "commit": _commit(), "log": out}


_FOUND_NAME = re.compile(r"[0-9a-f]{40}\Z")      # what libFuzzer names


def _minimize(name, corpus, limits):
    """Keep the corpus small (it is committed): libFuzzer's merge picks
    the inputs that cover every feature the whole corpus covers; the
    inputs it found and that merge left out are removed (the seeds, named
    by seeds.py, always stay)."""
    with tempfile.TemporaryDirectory(prefix=f"fuzz-merge-{name}-") as keep:
        done = _run_bounded(
            [sys.executable, "-m", "tests.fuzz.run", f"--child={name}",
             "-merge=1", keep, corpus] + limits, cwd=_root(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done is None or done.returncode != 0 or "attempt 2" in done.stdout or \
                not re.search(r"MERGE-OUTER: \d+ new files", done.stdout) \
                or not os.listdir(keep):
            return                      # a merge that failed keeps all
        kept = {_digest(os.path.join(keep, n)) for n in os.listdir(keep)}
        for entry in os.listdir(corpus):
            path = os.path.join(corpus, entry)
            if _FOUND_NAME.match(entry) and _digest(path) not in kept:
                os.unlink(path)


def _run_bounded(argv, **kw):
    """subprocess.run, None after 20 minutes (libFuzzer's merge retries a
    worker that dies at start for ever)."""
    try:
        return subprocess.run(argv, timeout=1200, **kw)
    except subprocess.TimeoutExpired:
        return None


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def _root():
    return os.path.dirname(os.path.dirname(index.HERE))


def _commit():
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                          cwd=_root(), capture_output=True, text=True)
    return done.stdout.strip() or "-"


def append_log(row, path=LOG):
    new = not os.path.exists(path)
    with open(path, "a") as f:
        if new:
            f.write("\t".join(COLUMNS) + "\n")
        f.write("\t".join(row[c] for c in COLUMNS) + "\n")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("--child="):
        child(argv[0].split("=", 1)[1], argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--targets", default="",
                        help="names separated by spaces (default: all)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--log", default=LOG)
    opts = parser.parse_args(argv)
    if opts.list:
        print("\n".join(index.names()))
        return 0
    names = opts.targets.split() or index.names()
    for name in names:
        index.load(name)        # an unknown name fails before any run
    found = False
    for name in names:
        row = campaign(name, opts.seconds)
        append_log(row, opts.log)
        found |= row["findings"] != "none"
        print(f"{name}: {row['executions']} executions in {row['seconds']} s "
              f"({row['exec_per_s']}/s), cov {row['cov']} ft {row['ft']}, "
              f"corpus {row['corpus_files']} files, findings: "
              f"{row['findings']} (log {os.path.relpath(row['log'])})",
              flush=True)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
