"""The HTTP server's reads with a deadline: a request (line, headers and
body) must arrive whole within a time, however its bytes trickle in
(slowloris), on top of the socket's timeout for silence.
"""

import socket
import time


class Deadline(socket.SocketIO):
    """A connection's reads, each given at most the time left before the
    request's deadline (None: no deadline, the socket's own timeout)."""

    def __init__(self, sock, timeout):
        super().__init__(sock, "rb")
        self.deadline = None
        self.io_timeout = timeout

    def readinto(self, buffer):
        if self.deadline is None:
            return super().readinto(buffer)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long to arrive")
        self._sock.settimeout(min(left, self.io_timeout))
        try:
            return super().readinto(buffer)
        finally:
            self._sock.settimeout(self.io_timeout)
