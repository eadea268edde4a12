"""The one datagram rdeploy adds to udpcast's protocol: "a session is
under way".

udpcast says nothing to a receiver that comes after a transfer started
(udp-sender ignores it; udp-receiver waits silently for the next HELLO).
So while a transfer runs, ``rdeploy multicast send`` broadcasts this
notice once a second to UDP port PORT + 2 (PORT is --port, udpcast's
portbase) at the broadcast address udp-sender controls the segment
through; ``rdeploy multicast receive`` listens there while its
udp-receiver has not joined, and says why it waits.  It is advice only:
what a receiver writes comes from udp-receiver's stream and is checked
chunk by chunk, so a forged notice can at most print a wrong message.

The datagram, 32 bytes, big-endian (network order):

  offset size  field
       0    8  magic b"RDI-MCST"
       8    1  version, 1
       9    1  kind, 1 = a transfer is under way
      10    2  reserved, 0
      12    4  session number of this sender (1, 2, ... with --repeat)
      16    8  when the transfer started, Unix seconds
      24    4  receivers in the session when it started
      28    4  reserved, 0

A datagram of another size, magic, version or kind is ignored.
"""

import dataclasses
import socket
import struct
import threading
import time

MAGIC = b"RDI-MCST"
VERSION, UNDER_WAY = 1, 1
_FORMAT = struct.Struct(">8sBBHIQII")
SIZE = _FORMAT.size
assert SIZE == 32
#: The notice's port, from udpcast's portbase (which uses PORT, PORT + 1).
OFFSET = 2
INTERVAL = 1.0


@dataclasses.dataclass(frozen=True)
class Notice:
    session: int
    started: int
    receivers: int

    def pack(self):
        return _FORMAT.pack(MAGIC, VERSION, UNDER_WAY, 0, self.session,
                            self.started, self.receivers, 0)

    @classmethod
    def unpack(cls, data):
        """The Notice in datagram `data`, or None when it is not one."""
        if len(data) != SIZE:
            return None
        magic, version, kind, _, session, started, receivers, _ = \
            _FORMAT.unpack(data)
        if magic != MAGIC or version != VERSION or kind != UNDER_WAY:
            return None
        return cls(session, started, receivers)


def _socket(interface):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    if interface:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                        interface.encode())
    return sock


class Announcer:
    """Broadcasts `notice` to (address, port + OFFSET) every INTERVAL
    seconds on a thread, until stop()."""

    def __init__(self, notice, address, port, interface=None):
        self.datagram = notice.pack()
        self.target = (address, port + OFFSET)
        self.sock = _socket(interface)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="mcast-notice")
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                self.sock.sendto(self.datagram, self.target)
            except OSError:
                pass        # advice only: a full queue, a link down
            self.stopped.wait(INTERVAL)

    def stop(self):
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


class Listener:
    """Listens on port + OFFSET on a thread; `on_notice(notice)` for each
    notice heard (not more than once per sender and session), until
    stop().  A port that cannot be bound leaves it deaf (advice only)."""

    def __init__(self, port, on_notice, interface=None):
        self.on_notice = on_notice
        self.heard = set()
        self.stopped = threading.Event()
        self.sock = None
        try:
            self.sock = _socket(interface)
            self.sock.bind(("", port + OFFSET))
            self.sock.settimeout(0.5)
        except OSError:
            if self.sock is not None:
                self.sock.close()
            self.sock = None
            return
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="mcast-listen")
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                data, (address, _) = self.sock.recvfrom(64)
            except socket.timeout:
                continue
            except OSError:
                return
            notice = Notice.unpack(data)
            if notice is None or (address, notice.session, notice.started) \
                    in self.heard:
                continue
            if self.on_notice(address, notice):
                self.heard.add((address, notice.session, notice.started))

    def stop(self):
        if self.sock is None:
            return
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


def now():
    return int(time.time())
