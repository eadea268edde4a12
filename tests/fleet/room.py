"""A room for multicast tests: tests/netns.py's Lan with a sender and
receivers, each in a namespace of its own on the test's bridge, running
`rdeploy multicast send` / `receive` as subprocesses (--progress=json, so
a test reads their events).

    with Room(receivers=4) as room:
        sender = room.send(image, "--min-receivers=4")
        rx = [room.receive(i, target) for i, target in enumerate(disks)]
        room.wait(rx[0])          # exit code; rx[0].events, .stderr

Sender is SUBNET.1; receiver i is SUBNET.(11 + i).
"""

import json
import subprocess
import threading
import time

from tests import netns
from tests.rdeploy_helpers import ROOT, command, env

MiB = 1 << 20


class Run:
    """One rdeploy process in a namespace: its JSON events and other
    stderr lines, read on a thread as they come."""

    def __init__(self, lan, ns, args):
        self.args = args
        self.proc = lan.start(ns, command(*args), env=env(), cwd=ROOT,
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        self.events, self.lines = [], []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.lines.append(line)

    def wait(self, timeout=90):
        code = self.proc.wait(timeout)
        self.reader.join(5)
        return code

    def of(self, kind):
        return [e for e in self.events if e.get("event") == kind]

    def started(self):
        """The sender's "session started" events."""
        return [e for e in self.of("session") if e["state"] == "started"]

    def ended(self):
        """The sender's "session ended" events (their result: the
        session's summary)."""
        return [e for e in self.of("session") if e["state"] == "ended"]

    def percent(self):
        progress = self.of("progress")
        return progress[-1]["percent"] if progress else 0.0

    def until(self, test, timeout=60, what="an event"):
        """Polls `test(self)` until true (a condition, not a timing)."""
        deadline = time.monotonic() + timeout
        while not test(self):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}: exit "
                                     f"{self.proc.poll()}, {self.events} "
                                     f"{self.lines}")
            time.sleep(0.05)

    @property
    def stderr(self):
        return "\n".join(self.lines + [json.dumps(e) for e in self.events])


class Room:
    def __init__(self, receivers=4, subnet="192.168.78"):
        self.lan = netns.Lan(subnet)
        try:
            self.sender_ns = self.lan.host("send", 1)
            self.receiver_ns = [self.lan.host(f"rx{i}", 11 + i)
                                for i in range(receivers)]
        except BaseException:
            self.lan.close()
            raise

    def address(self, i):
        return self.lan.address(11 + i)

    def send(self, image, *options):
        return Run(self.lan, self.sender_ns,
                   ["multicast", "send", image, "--progress=json",
                    *options])

    def receive(self, i, target, *options):
        return Run(self.lan, self.receiver_ns[i],
                   ["multicast", "receive", target, "--yes",
                    "--progress=json", *options])

    def pids(self, ns):
        """The processes left inside namespace `ns`."""
        return netns.pids(ns)

    def close(self):
        """Stops what the test started, then anything still inside the
        room's namespaces (only the test's processes are there: a
        udp-sender left by a broken version, which deleting the namespace
        would not end)."""
        self.lan.procs, started = [], self.lan.procs
        for proc in reversed(started):
            netns.stop(proc)
        netns.kill_left([self.sender_ns, *self.receiver_ns])
        self.lan.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def blank_disk(path, size=64 * MiB):
    """A disk file of `size` zeros (sparse), for a receiver to restore onto
    (an existing target: a failed restore leaves it marked, not removed)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path
