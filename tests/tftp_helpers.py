"""What the TFTP tests share: a boot root of test files, the built-in server
started on loopback with a free port (stopped by the test), the three real
clients, and a raw UDP socket for what no client will send."""

import contextlib
import hashlib
import os
import socket
import struct
import subprocess
import threading

from diskimage.netboot.tftp import TftpServer

MiB = 1 << 20

#: name -> size of the files every test root holds (random bytes):
#: shorter than a block, exact multiples of 512 and of 1428, empty, and
#: past the block-number rollover at 512 bytes (65535 * 512 < 40 MiB).
FILES = {"small.bin": 1000, "exact512.bin": 512 * 4,
         "exact1428.bin": 1428 * 3, "empty.bin": 0, "big.bin": 40 * MiB}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def make_root(directory, big=True):
    """A boot root with FILES (without big.bin unless `big`), a directory,
    a symlink inside and one out of the root; {name: sha256}."""
    root = directory / "boot"
    (root / "pxelinux.cfg").mkdir(parents=True)
    digests = {}
    for name, size in FILES.items():
        if name == "big.bin" and not big:
            continue
        data = os.urandom(size)
        (root / name).write_bytes(data)
        digests[name] = sha(data)
    text = b"DEFAULT local\nLABEL local\n  LOCALBOOT 0\n"
    (root / "pxelinux.cfg" / "default").write_bytes(text)
    digests["pxelinux.cfg/default"] = sha(text)
    (directory / "secret").write_bytes(b"outside the root\n")
    os.symlink("small.bin", root / "inside-link")
    os.symlink(directory / "secret", root / "outside-link")
    return root, digests


class Running:
    """A TftpServer serving in a thread; .log holds its lines."""

    def __init__(self, root, address="127.0.0.1", **kw):
        self.log = []
        self.server = TftpServer(root, address, 0, log=self.log.append, **kw)
        self.port = self.server.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(30)
        assert not self.thread.is_alive(), "serve_forever did not return"

    def wait_idle(self, polls=1000):
        """Until no transfer runs (a session frees its slot just after its
        last packet); at most `polls` looks, 10 ms apart."""
        for _ in range(polls):
            if self.server.active == 0:
                return
            threading.Event().wait(0.01)
        raise AssertionError(f"{self.server.active} transfers still run")

    def lines(self, *words):
        return [line for line in self.log if all(w in line for w in words)]


@contextlib.contextmanager
def running(root, **kw):
    server = Running(root, **kw)
    try:
        yield server
    finally:
        server.stop()


def _run(args, cwd, timeout=120):
    """The client's CompletedProcess; stdout holds its stderr too."""
    return subprocess.run([str(a) for a in args], cwd=cwd, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, stdin=subprocess.DEVNULL)


def tftp_hpa(port, remote, local, cwd, command="get"):
    """tftp-hpa's client in binary mode: it has no options (RFC 1350
    only) and exits 0 on errors, so callers judge by the file."""
    return _run(["tftp", "-v", "-m", "binary", "127.0.0.1", port, "-c",
                 command, remote, local], cwd)


def atftp(port, remote, local, cwd, options=(), put=False):
    """atftp with --option "NAME VALUE" for each pair, --trace (every
    packet, the OACK with the values the server took)."""
    args = ["atftp", "--trace", "--verbose"]
    for name, value in options:
        args += ["--option", f"{name} {value}"]
    args += ["-p" if put else "-g", "-r", remote, "-l", local, "127.0.0.1",
             port]
    return _run(args, cwd)


def curl(port, remote, local, cwd, blksize=None, interface=None,
         address="127.0.0.1"):
    args = ["curl", "-sS", "-v", "-o", local]
    if blksize:
        args += ["--tftp-blksize", blksize]
    if interface:
        args += ["--interface", interface]
    return _run(args + [f"tftp://{address}:{port}/{remote}"], cwd)


# -- a raw client: packets no real client sends ----------------------------

def rrq(name, mode=b"octet", options=(), opcode=1):
    name = name if isinstance(name, bytes) else name.encode()
    body = name + b"\0" + mode + b"\0"
    for key, value in options:
        body += f"{key}\0{value}\0".encode()
    return struct.pack("!H", opcode) + body


def ack(block):
    return struct.pack("!HH", 4, block & 0xFFFF)


def decode(packet):
    """("data", block, payload) | ("error", code, message) |
    ("oack", {name: value}) of a server's packet."""
    op = struct.unpack_from("!H", packet)[0]
    if op == 3:
        return ("data", struct.unpack_from("!H", packet, 2)[0], packet[4:])
    if op == 5:
        return ("error", struct.unpack_from("!H", packet, 2)[0],
                packet[4:].rstrip(b"\0").decode())
    if op == 6:
        parts = packet[2:].rstrip(b"\0").split(b"\0")
        return ("oack", {parts[i].decode(): parts[i + 1].decode()
                         for i in range(0, len(parts), 2)})
    return ("opcode", op, packet)


class Raw:
    """A UDP socket on loopback (`address` its source) talking to the
    server packet by packet; every receive has a bound wait so a broken
    server fails the test instead of hanging it."""

    def __init__(self, port, address="127.0.0.1", wait=10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.sock.settimeout(wait)
        self.server = ("127.0.0.1", port)
        self.peer = None

    def send(self, packet, to=None):
        self.sock.sendto(packet, to or self.peer or self.server)

    def receive(self):
        packet, sender = self.sock.recvfrom(70000)
        if self.peer is None and sender != self.server:
            self.peer = sender        # the transfer's TID
        return decode(packet), sender

    def close(self):
        self.sock.close()
