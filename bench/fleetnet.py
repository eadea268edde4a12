"""The fleet rows' own network: a bridge in a namespace of its own, one
server namespace (the multicast sender and the HTTP server) and N
receiver namespaces, each plugged into the bridge by a veth pair, all
made by the benchmark and deleted at the end (needs root).

    with Lan(receivers=4, rate_mbit=200) as lan:
        lan.server            namespace of the server, eth0 = SUBNET.1
        lan.receivers         [namespace of receiver i, eth0 = SUBNET.(10+i)]
        lan.argv(ns, args)    `args` run inside `ns`
        lan.start(ns, args)   a process inside `ns`, stopped by close()

The addresses exist only inside these namespaces (brd + on every one:
udp-receiver never reaches a sender over an address without a broadcast
address, docs DESIGN's facts).  `rate_mbit` puts a token bucket (tc tbf)
on the server's eth0 egress: the one link every byte of a multicast or a
unicast restore crosses, as a server's port on a switch is; 0 for none.
"""

import os
import signal
import subprocess

from diskimage.host.tools import tool_env

SUBNET = "192.168.217"
SERVER_NUMBER = 1


def _ip(*args, check=True):
    return subprocess.run(["ip", *map(str, args)], check=check,
                          capture_output=True, text=True, env=tool_env())


class Lan:
    def __init__(self, receivers=4, rate_mbit=0, subnet=SUBNET):
        self.subnet = subnet
        self.prefix = f"rdb-fleet-{os.getpid()}"
        self.namespaces, self.procs = [], []
        self.rate_mbit = rate_mbit
        try:
            self.bridge = self._namespace("lan")
            self.run(self.bridge, ["ip", "link", "add", "br0", "type",
                                   "bridge", "forward_delay", "0",
                                   "stp_state", "0"])
            self.run(self.bridge, ["ip", "link", "set", "br0", "up"])
            self.server = self._host("srv", SERVER_NUMBER)
            self.receivers = [self._host(f"r{i}", 10 + i)
                              for i in range(receivers)]
            if rate_mbit:
                # burst: 1 ms of the rate, at least 64 KiB (tbf needs a
                # burst above rate/HZ); latency bounds the queue
                burst = max(64 << 10, rate_mbit * 1000 // 8)
                self.run(self.server, [
                    "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
                    "rate", f"{rate_mbit}mbit", "burst", burst,
                    "latency", "50ms"])
        except BaseException:
            self.close()
            raise

    def address(self, ns):
        if ns == self.server:
            return f"{self.subnet}.{SERVER_NUMBER}"
        return f"{self.subnet}.{10 + self.receivers.index(ns)}"

    def _namespace(self, role):
        name = f"{self.prefix}-{role}"
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def _host(self, role, number):
        ns = self._namespace(role)
        port = f"p-{role}"
        self.run(self.bridge, ["ip", "link", "add", port, "type", "veth",
                               "peer", "name", "eth0", "netns", ns])
        self.run(self.bridge, ["ip", "link", "set", port, "master", "br0",
                               "up"])
        self.run(ns, ["ip", "addr", "add", f"{self.subnet}.{number}/24",
                      "brd", "+", "dev", "eth0"])
        self.run(ns, ["ip", "link", "set", "eth0", "up"])
        return ns

    def tc_drops(self):
        """Packets the server's token bucket dropped so far (0 without)."""
        if not self.rate_mbit:
            return 0
        text = self.run(self.server, ["tc", "-s", "qdisc", "show", "dev",
                                      "eth0"]).stdout
        words = text.replace(",", " ").split()
        return int(words[words.index("dropped") + 1]) \
            if "dropped" in words else 0

    @staticmethod
    def argv(ns, args):
        return ["ip", "netns", "exec", ns, *map(str, args)]

    def run(self, ns, args, **kw):
        kw.setdefault("check", True)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.argv(ns, args), env=tool_env(), **kw)

    def start(self, ns, args, **kw):
        kw.setdefault("env", tool_env())
        proc = subprocess.Popen(self.argv(ns, args), **kw)
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
    """Stop one process the bench started: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
