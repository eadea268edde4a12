"""The HTTP server of ``pxeconf serve``: files of the boot root, the status
API, the event stream and the console page.

    GET|HEAD /<file>            through rootpath only (refusals logged: 403,
                                missing: 404); Content-Length, one Range
                                (a-b, a-, -n: 206 + Content-Range; past the
                                end: 416; several ranges: 200 whole);
                                sendfile, never the whole file in memory
    GET ipxe/<mac>.ipxe?platform=pcbios|efi    Machines.booted first (so
                                do GRUB's and pxelinux's per-MAC names,
                                fetched over HTTP by UEFI HTTP boot)
    GET  /                      the console page
    GET  /api/machines          every machine, the jobs and entries
    GET  /api/events            text/event-stream of changed machines
    POST /api/report            the environment's report (the lease is the
                                key)
    POST /api/machines/<mac>/assign|cancel|local   need the token

The API's requests are httpapi.py's; the Range header's parsing is
httprange.py's.

Bounds against a client that would exhaust the server: at most
`max_clients` connections, `per_address` from one address (over them: 503
and the connection closed at once), `timeout` seconds of silence on a
socket, request bodies of BODY_MAX bytes, the standard library's bounds on
the request line and headers (64 KiB a line, 100 headers).
"""

import errno
import hmac
import http.server
import json
import mimetypes
import socket
import threading
import urllib.parse

from ..errors import BusyError, DiskImageError, InputError
from . import macaddr, rootpath
from .httpapi import ApiHandler, Events
from .httprange import parse_range

CHUNK = 1 << 20
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
        b"Connection: close\r\nRetry-After: 5\r\n\r\n")
PLATFORMS = {"pcbios": "ipxe-bios", "efi": "ipxe-efi"}
FALLBACK_PAGE = (b"<!doctype html><meta charset=utf-8><title>pxeconf</title>"
                 b"<p>pxeconf serve: the console page is not built in; see "
                 b"<a href=/api/machines>/api/machines</a>.\n")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, owner, address):
        self.owner = owner
        self.address_family = socket.AF_INET6 if ":" in address[0] \
            else socket.AF_INET
        self._count_lock = threading.Lock()
        self.active = 0
        self.per_address = {}
        self.refused = 0
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        owner = self.owner
        host = client_address[0]
        with self._count_lock:
            mine = self.per_address.get(host, 0)
            over = None
            if self.active >= owner.max_clients:
                over = f"{owner.max_clients} connections in all"
            elif mine >= owner.per_address:
                over = f"{owner.per_address} connections from one address"
            if over is None:
                self.active += 1
                self.per_address[host] = mine + 1
            else:
                self.refused += 1
                refused = self.refused
        if over is not None:
            try:
                request.settimeout(0.5)
                request.sendall(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            if refused & (refused - 1) == 0:       # 1, 2, 4, 8 ...: bounded
                owner.log(f"http: 503 to {host}: over {over} "
                          f"({refused} refused so far)")
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            host = client_address[0]
            with self._count_lock:
                self.active -= 1
                left = self.per_address.get(host, 1) - 1
                if left:
                    self.per_address[host] = left
                else:
                    self.per_address.pop(host, None)

    def handle_error(self, request, client_address):
        pass            # a client gone mid-answer is not the server's fault


class HttpServer:
    """The server, bound on creation (`port` 0: any free port, see .port);
    run .serve_forever() on a thread, stop with .shutdown()."""

    def __init__(self, root, address, port, machines, token, log, page=None,
                 max_clients=64, per_address=8, timeout=10.0,
                 keepalive=15.0):
        if not address:
            raise InputError("the HTTP server needs an explicit address to "
                             "listen on")
        self.root = str(root)
        self.machines = machines
        self.token = token
        self.log = log
        self.page = page if page is not None else FALLBACK_PAGE
        self.max_clients = max_clients
        self.per_address = per_address
        self.timeout = timeout
        self.keepalive = keepalive
        self.events = Events()
        self._run_lock = threading.Lock()
        self._started = self._closed = False
        try:
            self._server = _Server(self, (address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BusyError(f"http {address}:{port}: the port is in use "
                                f"by another server") from None
            raise InputError(f"http {address}:{port}: cannot listen there: "
                             f"{exc.strerror or exc}") from None
        self.port = self._server.server_address[1]
        self.address = address
        if machines is not None:
            machines.add_listener(self.events)

    def serve_forever(self):
        with self._run_lock:
            if self._closed:
                return
            self._started = True
        self._server.serve_forever(poll_interval=0.2)

    def shutdown(self):
        """Stop serving, end the event streams, close the socket (also
        when serve_forever never ran)."""
        with self._run_lock:
            if self._closed:
                return
            self._closed, started = True, self._started
        if started:
            self._server.shutdown()
        self.events.close()
        self._server.server_close()
        if self.machines is not None:
            try:
                self.machines.remove_listener(self.events)
            except ValueError:
                pass

    def check_token(self, header):
        """None when the Authorization header carries the token, else
        (status, why)."""
        if not header:
            return 401, "no token"
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return 401, "no bearer token"
        if not self.token:
            return 403, "this server has no token: actions are off"
        if not hmac.compare_digest(given.strip().encode("utf-8", "replace"),
                                   self.token.encode("utf-8")):
            return 403, "wrong token"
        return None


class _Handler(ApiHandler, http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pxeconf"
    sys_version = ""

    def setup(self):
        self.timeout = self.server.owner.timeout
        super().setup()

    def log_message(self, format, *args):
        pass                # the library never prints: records go to log

    def log_error(self, format, *args):
        self.server.owner.log(f"http: {self.client_address[0]}: "
                              f"{format % args}")

    @property
    def owner(self):
        return self.server.owner

    # ---- answers ---------------------------------------------------------

    def _answer(self, status, body=b"", ctype="application/json",
                headers=(), head=False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, status, obj, headers=()):
        self._answer(status, json.dumps(obj).encode() + b"\n",
                     headers=headers)

    def _error(self, status, message, headers=()):
        self._json(status, {"ok": False, "error": message}, headers)

    # ---- GET and HEAD ----------------------------------------------------

    def do_HEAD(self):
        self._get(head=True)

    def do_GET(self):
        self._get(head=False)

    def _target(self):
        """The request's target as sent: the standard library turns a
        leading "//" into "/", which would hide an absolute-path attempt
        from rootpath."""
        words = self.requestline.split()
        return words[1] if len(words) == 3 else self.path

    def _get(self, head):
        path, _, query = self._target().partition("?")
        if path == "/":
            self._answer(200, self.owner.page, "text/html; charset=utf-8",
                         head=head)
        elif path == "/api/machines":
            m = self.owner.machines
            self._json(200, {"machines": m.snapshot(),
                             "jobs": list(m.site.jobs),
                             "entries": list(m.site.entries)})
        elif path == "/api/events" and not head:
            self._events()
        elif path.startswith("/api/"):
            self._error(404, f"{path}: no such API")
        else:
            self._file(urllib.parse.unquote(path, errors="surrogateescape"),
                       query, head)

    def _refused(self, status, name, why):
        self.owner.log(f"http: refused {name[:120]!r} to "
                       f"{self.client_address[0]}: {why}")
        self._error(status, why)

    def _file(self, name, query, head):
        client = self.client_address[0]
        try:
            rel = rootpath.relative(name)
        except rootpath.Refused as exc:
            return self._refused(403, name, str(exc))
        mac = macaddr.from_request(rel)
        if mac and not head and self.owner.machines is not None:
            if rel.startswith("ipxe/"):
                platform = urllib.parse.parse_qs(query).get(
                    "platform", [""])[0]
                firmware = PLATFORMS.get(platform)
            else:       # GRUB or lpxelinux fetching over HTTP (HTTP boot)
                firmware = "efi" if rel.startswith("grub/") else "bios"
            try:
                self.owner.machines.booted(mac, firmware)
            except DiskImageError as exc:       # the journal not written
                self.owner.log(f"http: the boot of {mac} not recorded: "
                               f"{exc}")
        try:
            f, size, rel = rootpath.open_file(self.owner.root, name)
        except rootpath.Refused as exc:
            return self._refused(403, name, str(exc))
        except FileNotFoundError:
            self.owner.log(f"http: {rel} to {client}: 404 not found")
            return self._error(404, f"{rel}: not found")
        with f:
            first, last = 0, size - 1
            status = 200
            want = parse_range(self.headers.get("Range"), size)
            if want == "unsatisfiable":
                self.owner.log(f"http: {rel} to {client}: 416 range "
                               f"{self.headers.get('Range')[:60]!r}")
                return self._answer(416, headers=[
                    ("Content-Range", f"bytes */{size}")], head=head)
            if want is not None:
                first, last = want
                status = 206
            count = last - first + 1
            self.send_response(status)
            ctype = mimetypes.guess_type(rel)[0] or "application/octet-stream"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(count))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range",
                                 f"bytes {first}-{last}/{size}")
            self.end_headers()
            if not head and count:
                self.connection.sendfile(f, first, count)
        if not head:
            self.owner.log(f"http: {rel} to {client}: {status} "
                           f"({count} bytes)")
