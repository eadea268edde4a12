"""One read transfer of the TFTP server (tftp.py): the file opened through
rootpath, the options negotiated, the OACK, the blocks a window at a time.

Runs in the transfer's own thread on its own socket (its TID); `wake_fd`
becomes readable when the server shuts down, which ends the transfer with
error 0 to the client.  Nothing raises: every outcome is one `log` line.
"""

import os
import select
import socket
import time

from . import rootpath
from . import tftpproto as proto

#: netascii is converted in memory (up to twice the size); loaders ask in
#: octet mode, and a text file bigger than this is refused rather than
#: held, so 128 sessions cannot hold more than 256 MiB.
NETASCII_LIMIT = 1 << 20

_ACK = proto.ACK.to_bytes(2, "big")


def who(client):
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def shown(name, limit=80):
    """A client's name for a log line: printable, cut when over-long."""
    text = name.decode("utf-8", "backslashreplace") \
        if isinstance(name, bytes) else name
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else \
        f"{text[:limit]}... ({len(name)} bytes)"


class Source:
    """The bytes of one transfer: the file itself (octet, read at the
    block's offset, so a resent window costs no state) or its netascii
    form."""

    def __init__(self, file, size, mode):
        self.fd, self.size, self.text = file.fileno(), size, None
        if mode == "netascii":
            self.text = proto.to_netascii(file.read(size))
            self.size = len(self.text)

    def block(self, number, blksize):
        offset = (number - 1) * blksize
        if self.text is not None:
            return self.text[offset:offset + blksize]
        return os.pread(self.fd, blksize, offset)


class Transfer:
    """`wake_fd` becomes readable when the server shuts down; a packet
    already in is still taken first (the last ACK of a finished transfer
    makes it a transfer sent, not one stopped)."""

    def __init__(self, sock, client, wake_fd, log, timeout, retries):
        self.sock, self.client, self.log = sock, client, log
        self.fd = sock.fileno()
        self.timeout, self.retries = timeout, retries
        self.who = who(client)
        self.wake_fd = wake_fd
        self.poll = select.poll()
        self.poll.register(sock, select.POLLIN)
        self.poll.register(wake_fd, select.POLLIN)

    def send(self, packet):
        try:
            self.sock.sendto(packet, self.client)
        except OSError:
            pass

    def fail(self, code, message):
        self.send(proto.error(code, message))

    def run(self, root, rel, mode, options, on_request):
        if on_request is not None:
            try:
                on_request(rel, self.client)
            except Exception as exc:    # serving goes on; the hook is told
                self.log(f"tftp {self.who}: {rel}: the request hook failed: "
                         f"{type(exc).__name__}: {exc}")
        try:
            file, size, rel = rootpath.open_file(root, rel)
        except rootpath.Refused as exc:
            self.log(f"tftp {self.who}: refused {rel!r}: {exc}")
            return self.fail(proto.ACCESS_VIOLATION, f"refused: {exc}")
        except FileNotFoundError:
            self.log(f"tftp {self.who}: {rel}: not found")
            return self.fail(proto.NOT_FOUND, "file not found")
        except OSError as exc:
            self.log(f"tftp {self.who}: {rel}: cannot read: {exc.strerror}")
            return self.fail(proto.ACCESS_VIOLATION, "cannot read the file")
        with file:
            if mode == "netascii" and size > NETASCII_LIMIT:
                self.log(f"tftp {self.who}: refused {rel!r} in netascii: "
                         f"over {NETASCII_LIMIT} bytes")
                return self.fail(proto.ACCESS_VIOLATION, "too big for "
                                 "netascii: ask in octet mode")
            source = Source(file, size, mode)
            accepted = proto.negotiate(options, source.size)
            chosen = dict(accepted)
            wait = chosen.get("timeout", self.timeout)
            if accepted and not self.oack(accepted, wait):
                return
            if self.blocks(source, chosen.get("blksize",
                                              proto.DEFAULT_BLKSIZE),
                           chosen.get("windowsize", 1), wait):
                said = " ".join(f"{k}={v}" for k, v in accepted)
                self.log(f"tftp {self.who}: sent {rel} ({source.size} bytes"
                         f"{', ' + said if said else ''})")

    def oack(self, accepted, wait):
        """Send the OACK until the client's ACK of block 0; False when the
        transfer ended instead (refused, timed out, shut down)."""
        packet = proto.oack(accepted)
        for _ in range(self.retries + 1):
            self.send(packet)
            deadline = time.monotonic() + wait
            while True:
                reply = self.receive(deadline)
                if reply is None:
                    break
                if reply != 0:
                    if reply < 0:
                        return False
                    continue            # an ACK of another block: ignored
                return True
        return self.gave_up("the ACK of the options")

    def blocks(self, source, blksize, window, wait):
        """Send every block, a window at a time; True when the last one
        was acknowledged."""
        last = source.size // blksize + 1    # the last block is short
        acked = tries = 0
        pack, block, send = proto.BLOCK.pack, source.block, self.send
        while acked < last:
            end = min(acked + window, last)
            for number in range(acked + 1, end + 1):
                send(pack(proto.DATA, number & 0xFFFF) +
                     block(number, blksize))
            deadline = None
            while True:
                reply = self.receive(deadline, wait)
                if reply is None:
                    tries += 1
                    if tries > self.retries:
                        return self.gave_up(f"block {end}")
                    break                           # resend the window
                if reply < 0:
                    return False
                number = acked + ((reply - acked) & 0xFFFF)
                if acked < number <= end:
                    acked, tries = number, 0
                    break       # the next window, or the rest of this one
                # a duplicate or an old ACK: never resent for (RFC 1123)
                if deadline is None:
                    deadline = time.monotonic() + wait
        return True

    def gave_up(self, what):
        self.log(f"tftp {self.who}: gave up waiting for {what} after "
                 f"{self.retries} retries")
        self.fail(proto.NOT_DEFINED, "timed out")
        return False

    def receive(self, deadline, wait=None):
        """The block number of the client's next ACK, -1 when the transfer
        is over (the client's error, a bad packet, shutdown: logged and
        answered), None when the time is up: at `deadline`, or `wait`
        seconds from now when there is none.  Packets from other TIDs get
        error 5."""
        while True:
            now = time.monotonic()
            if deadline is None:
                deadline = now + wait
            if now >= deadline:
                return None
            events = self.poll.poll((deadline - now) * 1000 + 1)
            if not events:
                continue
            if all(fd != self.fd for fd, _ in events):  # only shutdown's
                self.log(f"tftp {self.who}: transfer stopped by shutdown")
                self.fail(proto.NOT_DEFINED, "server shutting down")
                return -1
            try:    # sends may block (a full buffer); receives must not
                packet, sender = self.sock.recvfrom(65536, socket.MSG_DONTWAIT)
            except OSError:     # none after all, or an earlier send's ICMP
                continue
            if sender[:2] != self.client:
                try:
                    self.sock.sendto(proto.error(
                        proto.UNKNOWN_TID, "unknown transfer ID"), sender)
                except OSError:
                    pass
                continue
            if len(packet) >= 4 and packet[:2] == _ACK:     # the usual
                return (packet[2] << 8) | packet[3]
            try:
                reply = proto.parse_reply(packet)
            except proto.BadPacket as exc:
                self.log(f"tftp {self.who}: ended the transfer: {exc}")
                self.fail(exc.code, str(exc))
                return -1
            if reply[0] == "ack":
                return reply[1]
            self.log(f"tftp {self.who}: the client ended the transfer: "
                     f"error {reply[1]} {reply[2]!r}")
            return -1
