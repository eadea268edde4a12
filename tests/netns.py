"""A small LAN made of network namespaces, for network-boot tests.

    Lan(subnet="192.168.77")        one bridge in a namespace of its own
      .host("site", 1)              a namespace with eth0 = SUBNET.1/24 on
                                    the bridge (a veth pair)
      .plug(ns, 254, "eth1")        one more leg for an existing namespace
                                    (a router's), SUBNET.254/24
      .tap("tap0")                  a tap on the bridge, for a QEMU started
                                    inside the bridge's namespace
      .run(ns, args) / .start(ns, args)   a command inside a namespace
      .close()                      stop what was started (by pid, in the
                                    reverse order), delete the namespaces
                                    (which takes the bridge, veths and taps)

    namespace()                     one namespace with a veth pair inside it
                                    (v0 ADDRESS <-> v1 PEER): an interface
                                    for a proxyDHCP dnsmasq whose port 67
                                    must not meet the host's
      inside(ns, args) / alive(pid)

    shape(ns, dev, mbit)            a token bucket (tc tbf) on `dev`'s
                                    egress inside `ns`
    call_in(ns, fn, *args)          fn run on a thread inside `ns` (its
                                    sockets, and the threads it starts,
                                    stay there): an in-process server
                                    listening inside a namespace

Every address exists only inside the namespaces; nothing is added to the
machine's own namespace.  Names carry the pid and a counter, so two test
processes (or two Lans of one) never meet.  A Lan is a context manager and
is cleaned up whatever happens, an exception in the middle included.
"""

import contextlib
import ctypes
import itertools
import os
import signal
import subprocess
import threading
import uuid

_COUNTER = itertools.count()


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True,
                          text=True)


class Lan:
    def __init__(self, subnet="192.168.77"):
        self.subnet = subnet
        self.prefix = f"pxb{os.getpid()}-{next(_COUNTER)}"
        self.namespaces = []
        self.procs = []
        try:
            self.bridge_ns = self._namespace("lan")
            self.run(self.bridge_ns, ["ip", "link", "add", "br0", "type",
                                      "bridge", "forward_delay", "0",
                                      "stp_state", "0"])
            self.run(self.bridge_ns, ["ip", "link", "set", "br0", "up"])
        except BaseException:
            self.close()
            raise

    def _namespace(self, role):
        name = f"{self.prefix}-{role}"
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def address(self, number):
        return f"{self.subnet}.{number}"

    @property
    def network(self):
        return f"{self.subnet}.0/24"

    def host(self, role, number):
        """A namespace for one host: eth0 with SUBNET.number/24, plugged
        into the bridge.  Returns the namespace's name."""
        return self.plug(self._namespace(role), number, "eth0", role)

    def plug(self, ns, number, dev="eth0", role=None):
        """Plug namespace `ns` (made by this Lan or another) into the
        bridge: its `dev` gets SUBNET.number/24; the bridge's side is
        p-ROLE.  Returns `ns`."""
        port = f"p-{role or ns.rsplit('-', 1)[-1]}"[:15]
        self.run(self.bridge_ns, ["ip", "link", "add", port, "type", "veth",
                                  "peer", "name", dev, "netns", ns])
        self.run(self.bridge_ns, ["ip", "link", "set", port, "master", "br0",
                                  "up"])
        self.run(ns, ["ip", "addr", "add", f"{self.address(number)}/24",
                      "brd", "+", "dev", dev])
        self.run(ns, ["ip", "link", "set", dev, "up"])
        return ns

    def tap(self, name="tap0"):
        """A tap on the bridge (in the bridge's namespace): QEMU must run
        there (see start) to open it."""
        self.run(self.bridge_ns, ["ip", "tuntap", "add", "dev", name,
                                  "mode", "tap"])
        self.run(self.bridge_ns, ["ip", "link", "set", name, "master", "br0",
                                  "up"])
        return name

    @staticmethod
    def argv(ns, args):
        """`args` run inside namespace `ns` (ip netns exec execs them: the
        pid is the command's own)."""
        return ["ip", "netns", "exec", ns, *map(os.fspath, args)]

    def run(self, ns, args, **kw):
        kw.setdefault("check", True)
        kw.setdefault("capture_output", True)
        return subprocess.run(self.argv(ns, args), **kw)

    def start(self, ns, args, **kw):
        """A process inside `ns`, stopped by close() (SIGTERM, then KILL)."""
        proc = subprocess.Popen(self.argv(ns, args), **kw)
        self.procs.append(proc)
        return proc

    def adopt(self, proc):
        """A process started otherwise (e.g. bootdisk.qemu.Boot) that
        close() must stop too."""
        self.procs.append(proc)
        return proc

    def close(self):
        for proc in reversed(self.procs):
            stop(proc)
        self.procs = []
        for ns in reversed(self.namespaces):
            _ip("netns", "del", ns, check=False)
        self.namespaces = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def stop(proc, timeout=10):
    """Stop one process we started: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def shape(ns, dev, mbit):
    """A token bucket of `mbit` Mbit/s on `dev`'s egress inside `ns`: 1 ms
    of the rate as burst (at least 64 KiB: tbf needs more than rate/HZ),
    a queue of 100 ms (TCP backs off before the bucket drops much)."""
    burst = max(64 << 10, int(mbit * 1000 // 8))
    _ip("netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root",
        "tbf", "rate", f"{mbit}mbit", "burst", str(burst), "latency",
        "100ms")


def shaped_bytes(ns, dev):
    """Bytes sent through `dev`'s root qdisc inside `ns` so far (tc -s)."""
    words = _ip("netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev",
                dev).stdout.split()
    return int(words[words.index("Sent") + 1])


_CLONE_NEWNET = 0x40000000


def call_in(ns, fn, *args, **kw):
    """fn(*args, **kw) on a thread moved into namespace `ns` first
    (setns(2) moves the calling thread only); returns its result or
    raises its exception.  Sockets it makes live in `ns`, and so do the
    threads it starts (a new thread takes its maker's namespaces)."""
    libc = ctypes.CDLL(None, use_errno=True)
    outcome = {}

    def body():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {ns}: "
                                  f"{os.strerror(err)}")
            finally:
                os.close(fd)
            outcome["value"] = fn(*args, **kw)
        except BaseException as exc:    # handed to the caller
            outcome["error"] = exc
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


ADDRESS, PEER, NETWORK = "10.77.0.1", "10.77.0.2", "10.77.0.0/24"


def pids(ns):
    """The processes left inside namespace `ns`."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def kill_left(namespaces):
    """SIGKILL whatever is still inside `namespaces` (only a test's own
    processes are there: a child a broken version left behind, which
    deleting the namespace would not end)."""
    for ns in namespaces:
        for pid in pids(ns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextlib.contextmanager
def namespace():
    """Yields the namespace's name."""
    name = f"pxet-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name",
            "v1")
        _ip("-n", name, "addr", "add", f"{ADDRESS}/24", "dev", "v0")
        _ip("-n", name, "addr", "add", f"{PEER}/24", "dev", "v1")
        _ip("-n", name, "link", "set", "v0", "up")
        _ip("-n", name, "link", "set", "v1", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def inside(name, args):
    """The command line that runs `args` inside namespace `name`."""
    return ["ip", "netns", "exec", name, *map(str, args)]


def alive(pid):
    """Is `pid` a live process (not a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
