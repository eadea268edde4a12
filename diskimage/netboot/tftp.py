"""The built-in TFTP server of ``pxeconf serve``: read-only, RFC 1350 with
the options of RFC 2347 (negotiation), 2348 (blksize), 2349 (timeout,
tsize) and 7440 (windowsize).

- The listening socket only reads requests.  Each transfer gets a socket of
  its own on the same address (a new TID, RFC 1350) and a thread; a packet
  from another address or port on it is answered with error 5 and ignored.
- Every name goes through rootpath (the one set of rules the HTTP server
  follows too); a refusal is answered with error 2 and logged with the
  reason and the client.  A missing file is error 1, a write request
  error 2 (the server is read-only), a malformed request error 4, a
  malformed option list error 8.
- `on_request(name, client_address)` is called with the clean root-relative
  name before the file is opened (serve sees a machine boot by it).
- Block numbers roll over past 65535 to 0, as tftp-hpa, curl, atftp and
  iPXE expect, so files of any size go out (32 MiB at 512 bytes a block).
- A window of `windowsize` blocks goes out, then the server waits for the
  ACK of its last block; an ACK inside the window restarts the window after
  it; duplicate and old ACKs are ignored (no sorcerer's apprentice), and
  only a timeout resends, `retries` times at most without progress.
- Sessions are bounded: `max_sessions` in all and `per_address` from one
  IP address; a request beyond either is answered with error 0 ("busy")
  from the listening socket, taking no thread, and logged at the 1st, 2nd,
  4th, 8th ... refusal of a run, so a flood cannot fill the log either.
  A request repeated by a client whose transfer is running is ignored.
- shutdown() stops the listener and every transfer, and returns when all
  their sockets are closed.

The server raises (InputError, BusyError) only while it binds; afterwards
everything goes to `log`, one line each.
"""

import errno
import os
import select
import socket
import threading
from collections import Counter

from .. import signalsafe
from ..errors import BusyError, InputError
from . import rootpath
from . import tftpproto as proto
from .tftpsession import Transfer, shown as _shown, who as _who


class TftpServer:
    """A read-only TFTP server of `root` on `address`:`port` (0: any free
    port, then .port tells which).  Bound when made; serve_forever() runs
    it in the calling thread until shutdown() is called from another."""

    def __init__(self, root, address, port=69, log=None, on_request=None,
                 max_sessions=128, per_address=16, timeout=1.0, retries=5):
        self.root = os.fspath(root)
        self.log = log or (lambda line: None)
        self.on_request = on_request
        self.max_sessions, self.per_address = max_sessions, per_address
        self.timeout, self.retries = timeout, retries
        self.address = address
        self._sock = self._bind(address, port)
        self.family = self._sock.family
        self.port = self._sock.getsockname()[1]
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._sessions = {}            # client (address, port) -> thread
        self._per = Counter()          # IP address -> transfers running
        self._refused = Counter()      # IP address -> busy refusals of a run
        self._serving = threading.Event()
        self._stopped = signalsafe.Flag()
        self._closed = False

    @property
    def active(self):
        """How many transfers are running."""
        with self._lock:
            return len(self._sessions)

    @staticmethod
    def _bind(address, port):
        where = f"{address}:{port}"
        try:
            info = socket.getaddrinfo(address, port, type=socket.SOCK_DGRAM,
                                      flags=socket.AI_NUMERICHOST)
        except socket.gaierror:
            raise InputError(f"{address}: not an IP address to listen on "
                             f"(TFTP)") from None
        family, _, _, _, sockaddr = info[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise BusyError(f"{where}: the TFTP port is in use (another "
                                f"TFTP server?)") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InputError(f"{address}: not an address of this machine "
                                 f"(TFTP)") from None
            if exc.errno == errno.EACCES:
                raise InputError(f"{where}: permission denied (a port below "
                                 f"1024 needs root)") from None
            raise InputError(f"{where}: cannot listen for TFTP: "
                             f"{exc.strerror}") from None
        return sock

    # -- the listener -----------------------------------------------------

    def serve_forever(self):
        with self._lock:
            if self._closed:            # shut down before it started
                return
            self._serving.set()
        try:
            while True:
                ready, _, _ = select.select([self._sock, self._wake_r], [], [])
                if self._wake_r in ready:
                    break
                try:
                    packet, client = self._sock.recvfrom(65536)
                except OSError:
                    continue
                self._request(packet, client[:2])
        finally:
            with self._lock:
                threads = list(self._sessions.values())
            for thread in threads:
                thread.join()
            self._close()

    def shutdown(self):
        """Stop listening and every transfer; returns once all are closed.
        Also before serve_forever() ran, which then returns at once."""
        with self._lock:
            if self._closed:
                return
            serving = self._serving.is_set()
        if serving:
            os.write(self._wake_w, b"x")    # stays readable: wakes all
            self._stopped.wait()
        else:
            self._close()

    def _close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._stopped.set()

    def _reply(self, client, code, message):
        try:
            self._sock.sendto(proto.error(code, message), client)
        except OSError:
            pass

    def _request(self, packet, client):
        who = _who(client)
        try:
            op, name, mode, options = proto.parse_request(packet)
        except proto.BadPacket as exc:
            self.log(f"tftp {who}: refused a packet: {exc}")
            self._reply(client, exc.code, str(exc))
            return
        if op == proto.WRQ:
            self.log(f"tftp {who}: refused to write {_shown(name)!r}: the "
                     f"server is read-only")
            self._reply(client, proto.ACCESS_VIOLATION,
                        "read-only server: writing is not allowed")
            return
        try:
            rel = rootpath.relative(name)
        except rootpath.Refused as exc:
            self.log(f"tftp {who}: refused {_shown(name)!r}: {exc}")
            self._reply(client, proto.ACCESS_VIOLATION, f"refused: {exc}")
            return
        ip = client[0]
        with self._lock:
            if client in self._sessions:
                return                  # the client repeated its request
            if len(self._sessions) >= self.max_sessions:
                busy = f"{self.max_sessions} transfers running"
            elif self._per[ip] >= self.per_address:
                busy = f"{self.per_address} transfers from {ip} running"
            else:
                busy = None
                thread = threading.Thread(
                    target=self._session, daemon=True,
                    args=(client, rel, mode, options),
                    name=f"tftp {who}")
                self._sessions[client] = thread
                self._per[ip] += 1
            if busy:
                self._refused[ip] += 1
                count = self._refused[ip]
        if not busy:
            try:
                return thread.start()
            except RuntimeError:        # no thread to be had
                self._release(client)
                busy, count = "no thread to run it in", 1
        if count & (count - 1) == 0:    # 1, 2, 4, 8 ...
            self.log(f"tftp {who}: refused {rel!r}: busy, {busy} "
                     f"({count} refused from {ip} in this run)")
        self._reply(client, proto.NOT_DEFINED, f"server busy: {busy}")

    # -- one transfer ------------------------------------------------------

    def _session(self, client, rel, mode, options):
        sock = None
        try:
            sock = socket.socket(self.family, socket.SOCK_DGRAM)
            sock.bind((self.address, 0))
            Transfer(sock, client, self._wake_r, self.log,
                     self.timeout, self.retries).run(
                self.root, rel, mode, options, self.on_request)
        except Exception as exc:    # a bug must not kill the listener
            self.log(f"tftp {_who(client)}: {rel}: internal error: "
                     f"{type(exc).__name__}: {exc}")
        finally:
            if sock is not None:
                sock.close()
            self._release(client)

    def _release(self, client):
        ip = client[0]
        with self._lock:
            del self._sessions[client]
            self._per[ip] -= 1
            if self._per[ip] < self.per_address:
                self._refused.pop(ip, None)
            if not self._per[ip]:
                del self._per[ip]
