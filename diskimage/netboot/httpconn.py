"""The HTTP server's reads with a deadline and a budget: a request (line,
headers and body) must arrive whole within a time, however its bytes
trickle in (slowloris), on top of the socket's timeout for silence, and in
at most REQUEST_MAX bytes (the standard library alone allows 100 header
lines of 64 KiB each: 6.4 MB held per connection).
"""

import socket
import time

from ..errors import InputError

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
