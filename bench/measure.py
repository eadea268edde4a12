"""Timing a contender: wall time, CPU time, peak memory and output size.

A contender is a list of steps run one after the other: pipelines of
processes (argv lists joined by pipes, like a shell's ``a | b > out``) and
plain Python callables (an fsync, a table write).  Each process is reaped
with ``os.wait4``, whose rusage covers the process and the children it
reaped; CPU time is the sum of user and system time over all processes,
peak memory the largest peak RSS of any one of them (for a pipeline: the
max over its processes, not their sum).

Peak RSS comes from GNU time (``/usr/bin/time -f %M``) run as each
process's parent, not from our own ``wait4``: Linux keeps a process's
``ru_maxrss`` across ``execve``, and a child forked from this Python
process starts with this process's resident set, so every tool would
report at least the benchmark's own size (lz4 showed 23 MB, and rdeploy
103 MB after the compute-limit runs had grown the benchmark).  GNU time is
small; its own ~1.5 MB is the floor of the figures.
"""

import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from diskimage.host.device import data_extents
from diskimage.host.tools import tool_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIME = "/usr/bin/time"      # GNU time (package "time"; make deps)


class StepFailed(RuntimeError):
    pass


@dataclass
class Pipe:
    """argv lists joined by pipes; stdin from a file, stdout to a file."""
    stages: list
    stdin: str = None
    stdout: str = None


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_kib: int


@dataclass
class Result:
    name: str
    op: str = ""
    source: str = ""
    versus: str = None
    samples: list = field(default_factory=list)
    size: int = None
    note: str = ""

    def median(self, what):
        values = [getattr(s, what) for s in self.samples]
        return statistics.median(values) if values else None


def _run_pipe(pipe, log):
    procs, files, reports = [], [], []
    try:
        prev = open(pipe.stdin, "rb") if pipe.stdin else subprocess.DEVNULL
        if pipe.stdin:
            files.append(prev)
        for i, argv in enumerate(pipe.stages):
            last = i == len(pipe.stages) - 1
            if last:
                out = open(pipe.stdout, "wb") if pipe.stdout \
                    else subprocess.DEVNULL
                if pipe.stdout:
                    files.append(out)
            else:
                out = subprocess.PIPE
            reports.append(tempfile.NamedTemporaryFile(
                "r", prefix="bench-rss-", suffix=".txt"))
            proc = subprocess.Popen(
                [TIME, "-f", "%M", "-o", reports[-1].name] +
                [str(a) for a in argv], stdin=prev, stdout=out, stderr=log,
                env=tool_env(), cwd=ROOT)
            proc.argv = [str(a) for a in argv]
            if i:
                prev.close()      # the child holds it now
            prev = proc.stdout if not last else None
            procs.append(proc)
    except BaseException:
        for f in reports:
            f.close()
        raise
    finally:
        for f in files:
            f.close()
    cpu, rss, failed = 0.0, 0, []
    for proc, report in zip(procs, reports):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
        rss = max(rss, _peak_kib(report))
        report.close()
        if proc.returncode:
            failed.append(f"{proc.argv[0]} exited {proc.returncode}")
    if failed:
        raise StepFailed("; ".join(failed) + " in " + " | ".join(
            " ".join(p.argv) for p in procs))
    return cpu, rss


def _peak_kib(report):
    """GNU time's %M (KiB) from its -o file; its last line, after any
    "Command exited with non-zero status" line."""
    report.seek(0)
    lines = report.read().split()
    return int(lines[-1]) if lines and lines[-1].isdigit() else 0


def run_steps(steps, log_path):
    """Run the steps; return a Sample.  A failing process raises
    StepFailed naming it (its stderr is in `log_path`)."""
    cpu, rss = 0.0, 0
    with open(log_path, "ab") as log:
        started = time.perf_counter()
        for step in steps:
            if isinstance(step, Pipe):
                c, r = _run_pipe(step, log)
                cpu, rss = cpu + c, max(rss, r)
            else:
                step()
        wall = time.perf_counter() - started
    return Sample(wall, cpu, rss)


def fsync_paths(*paths):
    """A step that flushes files or devices to stable storage, so a tool
    that does not fsync its output pays what one that does pays."""
    def step():
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    return step


def drop_caches():
    """sync and drop the page cache; False when not allowed."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def preread(path, length):
    """Read the data (not the holes) of the first `length` bytes of file
    `path`, so they are in the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset, hole in data_extents(fd, min(length,
                                                 os.fstat(fd).st_size)):
            while offset < hole:
                offset += len(os.pread(fd, min(8 << 20, hole - offset),
                                       offset)) or hole
    finally:
        os.close(fd)


def sizes(paths):
    return sum(os.stat(p).st_size for p in paths if os.path.exists(p))


def machine():
    """Cores, memory, kernel, CPU model and load average, for the report."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    uname = os.uname()
    return {"cores": len(os.sched_getaffinity(0)), "cpu": model,
            "memory_gib": round(mem_kib / (1 << 20), 1),
            "kernel": f"{uname.sysname} {uname.release} {uname.machine}",
            "load": os.getloadavg()}
