"""A network namespace of the test's own, with a veth pair inside it
(v0 10.77.0.1/24 <-> v1 10.77.0.2/24): proxyDHCP needs an interface, and
its port 67 must not meet the host's.  Removed at the end, with every
process the test started in it (the test stops those itself first)."""

import contextlib
import os
import subprocess
import uuid

ADDRESS, PEER, NETWORK = "10.77.0.1", "10.77.0.2", "10.77.0.0/24"


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


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
