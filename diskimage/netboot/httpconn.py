"""The HTTP server's connections (Server: counted, bounded, all ended at
shutdown) and its reads with a deadline and a budget: a request (line,
headers and body) must arrive whole within a time, however its bytes
trickle in (slowloris), on top of the socket's timeout for silence, and in
at most REQUEST_MAX bytes (the standard library alone allows 100 header
lines of 64 KiB each: 6.4 MB held per connection).
"""

import http.server
import socket
import sys
import threading
import time

from ..errors import InputError
from .logbound import Sparse

#: A request's line, headers and body (at most 64 KiB, httpapi.BODY_MAX)
#: together, with room to spare.
REQUEST_MAX = 256 * 1024


class TooMuch(ConnectionAbortedError, InputError):
    """A request over REQUEST_MAX bytes: the connection is ended (an
    OSError, so the server's connection handling ends it as an abort; an
    InputError, as every error of the library is in the one hierarchy)."""


class Deadline(socket.SocketIO):
    """A connection's reads, each given at most the time left before the
    request's deadline (None: no deadline, the socket's own timeout)."""

    def __init__(self, sock, timeout):
        super().__init__(sock, "rb")
        self.deadline = None
        self.io_timeout = timeout
        self.budget = None          # bytes the request may still take

    def start(self, seconds):
        """A new request: its deadline and its budget start now."""
        self.deadline = time.monotonic() + seconds
        self.budget = REQUEST_MAX

    def readinto(self, buffer):
        if self.deadline is None:
            return super().readinto(buffer)
        if self.budget <= 0:
            raise TooMuch(f"a request over {REQUEST_MAX} bytes")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long to arrive")
        self._sock.settimeout(min(left, self.io_timeout))
        try:
            got = super().readinto(buffer)
        finally:
            self._sock.settimeout(self.io_timeout)
        if got:
            self.budget -= got
        return got


BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
        b"Connection: close\r\nRetry-After: 5\r\n\r\n")


class Server(http.server.ThreadingHTTPServer):
    """The listening socket and its connections: counted, bounded, and
    every one of them ended by end_all()."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, owner, address, handler):
        self.owner = owner
        self.address_family = socket.AF_INET6 if ":" in address[0] \
            else socket.AF_INET
        self._count_lock = threading.Lock()
        self.active = 0
        self.per_address = {}
        self.open = set()               # the sockets of counted connections
        self.ending = False             # end_all() ran: no more answers
        self.sparse = Sparse()
        super().__init__(address, handler)

    # A connection is counted when it is accepted (here, on the accepting
    # thread, before its handler thread exists), so the bounds hold however
    # late the threads run; it is released before its socket is closed, so a
    # client that has seen the close can count on the slot being free.
    # Everything logged about a connection is logged before its client can
    # see the answer end.

    def process_request(self, request, client_address):
        owner = self.owner
        host = client_address[0]
        with self._count_lock:
            mine = self.per_address.get(host, 0)
            over = None
            if self.ending:
                over = "shutting down"
            elif self.active >= owner.max_clients:
                over = f"{owner.max_clients} connections in all"
            elif mine >= owner.per_address:
                over = f"{owner.per_address} connections from one address"
            if over is None:
                self.active += 1
                self.per_address[host] = mine + 1
                self.open.add(request)
        if over is not None:
            refused, shown = self.sparse.count(("503", ""))
            if shown:                             # 1, 2, 4, 8 ...: bounded
                owner.log(f"http: 503 to {host}: over {over} "
                          f"({refused} refused so far)")
            try:
                request.settimeout(0.5)
                request.sendall(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:              # no thread to be had
            self._release(host, request)
            self.shutdown_request(request)
            raise

    def _release(self, host, request):
        with self._count_lock:
            self.active -= 1
            self.open.discard(request)
            left = self.per_address.get(host, 1) - 1
            if left:
                self.per_address[host] = left
            else:
                self.per_address.pop(host, None)

    def process_request_thread(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self._release(client_address[0], request)
            self.shutdown_request(request)

    def end_all(self):
        """End every open connection now: one waiting for its next request
        sees its close at once, a download running is cut (its client
        resumes it with a Range from a server that runs again), an event
        stream ends.  Their threads then return on their own."""
        with self._count_lock:
            self.ending = True
            sockets = list(self.open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass                        # already gone

    def handle_error(self, request, client_address):
        """A client gone mid-answer is not the server's fault and is not
        logged; anything else is a bug, logged in one line (it used to
        drop the connection without a word)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        self.owner.log(f"http: {client_address[0]}: internal error "
                       f"({type(exc).__name__}: {str(exc)[:200]})")
