"""A small LAN made of network namespaces, for network-boot tests.

    Lan(subnet="192.168.77")        one bridge in a namespace of its own
      .host("site", 1)              a namespace with eth0 = SUBNET.1/24 on
                                    the bridge (a veth pair)
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

Every address exists only inside the namespaces; nothing is added to the
machine's own namespace.  Names carry the pid and a counter, so two test
processes (or two Lans of one) never meet.  A Lan is a context manager and
is cleaned up whatever happens, an exception in the middle included.
"""

import contextlib
import itertools
import os
import signal
import subprocess
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
        ns = self._namespace(role)
        port = f"p-{role}"[:15]
        self.run(self.bridge_ns, ["ip", "link", "add", port, "type", "veth",
                                  "peer", "name", "eth0", "netns", ns])
        self.run(self.bridge_ns, ["ip", "link", "set", port, "master", "br0",
                                  "up"])
        self.run(ns, ["ip", "addr", "add", f"{self.address(number)}/24",
                      "brd", "+", "dev", "eth0"])
        self.run(ns, ["ip", "link", "set", "eth0", "up"])
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


ADDRESS, PEER, NETWORK = "10.77.0.1", "10.77.0.2", "10.77.0.0/24"


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
