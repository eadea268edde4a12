"""One timed rdeploy process of the fleet rows, optionally inside a network
namespace, several at once: wall time from its launch to its exit, CPU
time (user + system of it and its children, os.wait4), peak RSS (GNU
time, as measure.py takes it), and the bytes it wrote as the kernel
counts them (rusage ru_oublock, 512-byte units: the bytes the process
dirtied or wrote directly, counted when it dirtied them, so a page
rewritten with the same bytes counts and a page left alone does not).

    run = Run(argv, log, ns=lan.server)   started at once
    sample = run.wait(timeout)            a Sample (.code, .stderr)

Each process leads a process group of its own (start_new_session): on a
timeout the group (the bench's own processes only) gets SIGTERM, then
SIGKILL, so no udp-sender or udp-receiver outlives a failed row.
"""

import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from diskimage.host.tools import tool_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIME = "/usr/bin/time"


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_kib: int
    written: int
    code: int
    stderr: str = ""
    summary: dict = field(default_factory=dict)

    def why(self):
        """The last line of stderr that says something, for a failure."""
        lines = [line for line in self.stderr.splitlines() if line.strip()
                 and not line.startswith("{")]
        return (lines[-1] if lines else f"exit {self.code}")[:200]


class Run:
    def __init__(self, argv, log, ns=None):
        self.log = log
        self.report = tempfile.NamedTemporaryFile(
            "r", prefix="bench-rss-", suffix=".txt")
        self.err = tempfile.TemporaryFile("w+")
        full = [TIME, "-f", "%M", "-o", self.report.name, *map(str, argv)]
        if ns:
            full = ["ip", "netns", "exec", ns, *full]
        self.began = time.perf_counter()
        self.proc = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.err, cwd=ROOT, env=tool_env(),
            start_new_session=True)

    def wait(self, timeout=600):
        """Reap the process (killing its group after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.kill()
                pid, status, usage = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - self.began
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.err.seek(0)
        text = self.err.read()
        self.err.close()
        self.report.seek(0)
        words = self.report.read().split()
        self.report.close()
        with open(self.log, "a") as f:
            f.write(f"$ {' '.join(self.proc.args)}\n{text}")
        return Sample(wall, usage.ru_utime + usage.ru_stime,
                      int(words[-1]) if words and words[-1].isdigit() else 0,
                      usage.ru_oublock * 512, self.proc.returncode, text,
                      end_summary(text))

    def kill(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            end = time.monotonic() + 5
            while time.monotonic() < end:
                if os.waitid(os.P_PID, self.proc.pid, os.WEXITED |
                             os.WNOHANG | os.WNOWAIT):
                    return
                time.sleep(0.05)


def end_summary(text):
    """The end (or error) event of --progress=json's stderr (cliutil/
    progress.py: its `result` holds the summary), or {}."""
    found = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("event") in ("end",
                                                              "error"):
                found = obj
    return found


def find_key(obj, key):
    """The first value of `key` anywhere in a nested dict, or None."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for value in obj.values():
            got = find_key(value, key)
            if got is not None:
                return got
    return None
