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
import time
from collections import Counter

from ..errors import BusyError, InputError
from . import rootpath
from . import tftpproto as proto

#: netascii is converted in memory; loaders ask in octet mode, and a text
#: file bigger than this is refused rather than held.
NETASCII_LIMIT = 16 << 20


def _who(client):
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _shown(name, limit=80):
    """A client's name for a log line: printable, cut when over-long."""
    text = name.decode("utf-8", "backslashreplace") \
        if isinstance(name, bytes) else name
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else \
        f"{text[:limit]}... ({len(name)} bytes)"


class _Stopped(Exception):
    """shutdown() was called while a transfer waited."""


class _Source:
    """The bytes of one transfer: the file itself (octet, read at the
    block's offset, so a resent window costs no state) or its netascii
    form."""

    def __init__(self, file, size, mode):
        self.fd, self.size, self.text = file.fileno(), size, None
        if mode == "netascii":
            self.text = proto.to_netascii(file.read(NETASCII_LIMIT + 1))
            self.size = len(self.text)

    def block(self, number, blksize):
        offset = (number - 1) * blksize
        if self.text is not None:
            return self.text[offset:offset + blksize]
        return os.pread(self.fd, blksize, offset)


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
        self._stopped = threading.Event()
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
            self._finish()

    def shutdown(self):
        """Stop listening and every transfer; returns once all are closed."""
        if self._closed:
            return
        os.write(self._wake_w, b"x")    # stays readable: wakes every wait
        if self._serving.is_set():
            self._stopped.wait()
        else:
            self._finish()

    def _finish(self):
        with self._lock:
            threads = list(self._sessions.values())
        for thread in threads:
            thread.join()
        if not self._closed:
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
        if busy:
            if count & (count - 1) == 0:    # 1, 2, 4, 8 ...
                self.log(f"tftp {who}: refused {rel!r}: busy, {busy} "
                         f"({count} refused from {ip} in this run)")
            self._reply(client, proto.NOT_DEFINED, f"server busy: {busy}")
            return
        thread.start()

    # -- one transfer ------------------------------------------------------

    def _session(self, client, rel, mode, options):
        sock = None
        try:
            sock = socket.socket(self.family, socket.SOCK_DGRAM)
            sock.bind((self.address, 0))
            self._transfer(sock, client, rel, mode, options)
        except _Stopped:
            self.log(f"tftp {_who(client)}: {rel} stopped by shutdown")
            self._send(sock, client,
                       proto.error(proto.NOT_DEFINED, "server shutting down"))
        except Exception as exc:    # a bug must not kill the listener
            self.log(f"tftp {_who(client)}: {rel}: internal error: "
                     f"{type(exc).__name__}: {exc}")
        finally:
            if sock is not None:
                sock.close()
            ip = client[0]
            with self._lock:
                del self._sessions[client]
                self._per[ip] -= 1
                if self._per[ip] < self.per_address:
                    self._refused.pop(ip, None)
                if not self._per[ip]:
                    del self._per[ip]

    def _transfer(self, sock, client, rel, mode, options):
        who = _who(client)
        if self.on_request is not None:
            try:
                self.on_request(rel, client)
            except Exception as exc:    # serving goes on; the hook is told
                self.log(f"tftp {who}: {rel}: the request hook failed: "
                         f"{type(exc).__name__}: {exc}")
        try:
            file, size, rel = rootpath.open_file(self.root, rel)
        except rootpath.Refused as exc:
            self.log(f"tftp {who}: refused {rel!r}: {exc}")
            return self._send(sock, client, proto.error(
                proto.ACCESS_VIOLATION, f"refused: {exc}"))
        except FileNotFoundError:
            self.log(f"tftp {who}: {rel}: not found")
            return self._send(sock, client, proto.error(
                proto.NOT_FOUND, "file not found"))
        except OSError as exc:
            self.log(f"tftp {who}: {rel}: cannot read: {exc.strerror}")
            return self._send(sock, client, proto.error(
                proto.ACCESS_VIOLATION, "cannot read the file"))
        with file:
            source = _Source(file, size, mode)
            if source.size > NETASCII_LIMIT and source.text is not None:
                self.log(f"tftp {who}: {rel}: refused in netascii: over "
                         f"{NETASCII_LIMIT} bytes")
                return self._send(sock, client, proto.error(
                    proto.ACCESS_VIOLATION, "too big for netascii: ask in "
                    "octet mode"))
            accepted = proto.negotiate(options, source.size)
            chosen = dict(accepted)
            blksize = chosen.get("blksize", proto.DEFAULT_BLKSIZE)
            window = chosen.get("windowsize", 1)
            wait = chosen.get("timeout", self.timeout)
            if accepted and not self._oack(sock, client, accepted, wait):
                return
            sent = self._blocks(sock, client, source, blksize, window, wait)
            if sent:
                shown = " ".join(f"{k}={v}" for k, v in accepted)
                self.log(f"tftp {who}: sent {rel} ({source.size} bytes"
                         f"{', ' + shown if shown else ''})")

    def _send(self, sock, client, packet):
        try:
            sock.sendto(packet, client)
        except OSError:
            pass

    def _oack(self, sock, client, accepted, wait):
        """Send the OACK until the client's ACK of block 0; False when the
        transfer ended instead (refused, timed out)."""
        packet = proto.oack(accepted)
        for _ in range(self.retries + 1):
            self._send(sock, client, packet)
            deadline = time.monotonic() + wait
            while True:
                reply = self._receive(sock, client, deadline)
                if reply is None:
                    break
                if reply[0] == "ack" and reply[1] == 0:
                    return True
                if reply[0] != "ack":
                    return False
        return self._gave_up(sock, client, "the ACK of the options")

    def _blocks(self, sock, client, source, blksize, window, wait):
        """Send every block, a window at a time; True when the last one
        was acknowledged."""
        last = source.size // blksize + 1    # the last block is short
        acked = tries = 0
        while acked < last:
            end = min(acked + window, last)
            for number in range(acked + 1, end + 1):
                self._send(sock, client,
                           proto.data(number, source.block(number, blksize)))
            deadline = time.monotonic() + wait
            while True:
                reply = self._receive(sock, client, deadline)
                if reply is None:
                    tries += 1
                    if tries > self.retries:
                        return self._gave_up(sock, client, f"block {end}")
                    break                           # resend the window
                if reply[0] != "ack":
                    return False
                number = acked + ((reply[1] - acked) & 0xFFFF)
                if acked < number <= end:
                    acked, tries = number, 0
                    break       # the next window, or the rest of this one
                # a duplicate or an old ACK: never resent for (RFC 1123)
        return True

    def _gave_up(self, sock, client, what):
        self.log(f"tftp {_who(client)}: gave up waiting for {what} after "
                 f"{self.retries} retries")
        self._send(sock, client,
                   proto.error(proto.NOT_DEFINED, "timed out"))
        return False

    def _receive(self, sock, client, deadline):
        """The client's next reply before `deadline`: ("ack", block),
        ("error", ...) or ("bad",) (logged and answered), or None when the
        time is up.  Packets from other TIDs get error 5."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([sock, self._wake_r], [], [], left)
            if self._wake_r in ready:
                raise _Stopped()
            if not ready:
                return None
            try:
                packet, sender = sock.recvfrom(65536)
            except OSError:
                continue
            if sender[:2] != client:
                self._send(sock, sender, proto.error(
                    proto.UNKNOWN_TID, "unknown transfer ID"))
                continue
            try:
                reply = proto.parse_reply(packet)
            except proto.BadPacket as exc:
                self.log(f"tftp {_who(client)}: ended the transfer: {exc}")
                self._send(sock, client, proto.error(exc.code, str(exc)))
                return ("bad",)
            if reply[0] == "error":
                self.log(f"tftp {_who(client)}: the client ended the "
                         f"transfer: error {reply[1]} {reply[2]!r}")
            return reply
