"""A test HTTP(S) server of files, for the images read over HTTP
(tests/remote): Range and If-Range (one range, as nginx and S3 answer),
a strong ETag and Last-Modified from the file's inode, size and mtime,
keep-alive (HTTP/1.1), and what a test needs to see and break:

- `sent`: body bytes written, `requests`: (method, path, Range header) of
  each request, so a test counts what a reader fetched;
- `drop_at`: body byte counts (over the server's life) at which the
  connection is cut in the middle of an answer (shutdown, no more bytes);
- `fail`: an HTTP status answered to every request (503: always failing);
- `tls`: an ssl.SSLContext (server side) to serve https;
- `ranges=False`: Range ignored (200 and the whole file), as Python's
  http.server does;
- `stall_at`: a file offset at which every answer that gets there stops,
  its connection held open and silent, until `release()` (or stop()): a
  reader waits there, as on a pipe that stopped.

Runs in a thread of the test process on 127.0.0.1 (port 0: a free one),
or on `host` (an address of a namespace: make it inside one with
tests/netns.call_in); `stop()` (or the context manager) shuts it down.
"""

import email.utils
import http.server
import os
import re
import socket
import threading
import urllib.parse

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
PIECE = 64 << 10


class RangeServer:
    def __init__(self, root, *, tls=None, drop_at=(), fail=None,
                 ranges=True, stall_at=None, host="127.0.0.1", port=0):
        self.root = os.fspath(root)
        self.honour_ranges = ranges
        self.drop_at = sorted(drop_at)
        self.fail = fail
        self.sent = 0
        self.requests = []
        self.drops = 0
        self.stall_at = stall_at
        self._released = threading.Event()
        self._lock = threading.Lock()
        outer = self

        class Handler(_Handler):
            server_of = outer

        self.host = host
        self.httpd = _Quiet((host, port), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket,
                                                server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        daemon=True)
        self._thread.start()

    def url(self, name, host=None):
        return f"{self.scheme}://{host or self.host}:{self.port}/{name}"

    def ranges(self, name=None):
        """The Range headers of the GETs (of `name`, when given)."""
        return [r for m, p, r in self.requests
                if m == "GET" and (name is None or p == "/" + name)]

    def release(self):
        """Let a stalled answer go on (and no later one stall)."""
        self._released.set()

    def stall(self, offset, n):
        """Before `n` bytes at file `offset` go: wait at the stall point
        until released."""
        if self.stall_at is not None and offset + n > self.stall_at:
            self._released.wait(120)

    def take(self, n):
        """How many of `n` body bytes may go before the next drop point
        (all of them when none is reached); records a drop."""
        with self._lock:
            if self.drop_at and self.sent + n >= self.drop_at[0]:
                allowed = max(0, self.drop_at.pop(0) - self.sent)
                self.sent += allowed
                self.drops += 1
                return allowed, True
            self.sent += n
            return n, False

    def stop(self):
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class _Quiet(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass        # a connection the test cut, or a client that left


def etag_of(st):
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_of = None

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)

    def _plain(self, status, text=""):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, body):
        owner = self.server_of
        path = urllib.parse.urlsplit(self.path).path
        owner.requests.append((self.command, path,
                               self.headers.get("Range")))
        if owner.fail:
            return self._plain(owner.fail, "failing on purpose\n")
        name = os.path.join(owner.root, urllib.parse.unquote(path)
                            .lstrip("/"))
        try:
            f = open(name, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return self._plain(404, "not found\n")
        with f:
            st = os.fstat(f.fileno())
            etag = etag_of(st)
            modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            first, last, status = 0, st.st_size - 1, 200
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if wanted and if_range not in (None, etag, modified):
                wanted = None           # changed: the whole, as RFC 9110
            if not owner.honour_ranges:
                wanted = None           # as python -m http.server
            match = _RANGE.match(wanted or "")
            if match and (match[1] or match[2]):
                if match[1]:
                    first = int(match[1])
                    last = min(int(match[2]), last) if match[2] else last
                else:
                    first = max(0, st.st_size - int(match[2]))
                if first >= st.st_size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{st.st_size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            self.send_response(status)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            if owner.honour_ranges:
                self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range",
                                 f"bytes {first}-{last}/{st.st_size}")
            self.send_header("Content-Length", str(last - first + 1))
            self.end_headers()
            if body:
                self._body(f, first, last - first + 1)

    def _body(self, f, offset, size):
        owner = self.server_of
        while size > 0:
            data = os.pread(f.fileno(), min(size, PIECE), offset)
            owner.stall(offset, len(data))
            allowed, drop = owner.take(len(data))
            self.wfile.write(data[:allowed])
            if drop:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            offset += len(data)
            size -= len(data)
