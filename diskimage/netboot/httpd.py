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
and the connection closed at once), `max_streams` event streams (a quarter
of max_clients), `timeout` seconds of silence on a socket (`send_timeout`,
5 minutes, for a file's reader that has stopped taking bytes),
`request_timeout` seconds (default: timeout) for a whole request to arrive
(line, headers, body), request bodies of BODY_MAX bytes, the standard
library's bounds on the request line and headers (64 KiB a line, 100
headers).  shutdown() does not wait for downloads still running (daemon
threads).
"""

import errno
import http.server
import io
import json
import mimetypes
import os
import threading
import urllib.parse

from ..errors import BusyError, DiskImageError, InputError
from . import macaddr, rootpath
from .httpapi import ApiHandler, Events
from .httpconn import Deadline, Server, TooMuch
from .httprange import if_range_holds, parse_range, validators

CHUNK = 1 << 20
PLATFORMS = {"pcbios": "ipxe-bios", "efi": "ipxe-efi"}
#: Connections from one address: Chromium keeps up to 6 to a server, for
#: all its tabs together, event streams included; 16 leave room for a
#: second browser or curl on the same desk, and 4 addresses are still
#: needed to fill max_clients (64).
PER_ADDRESS = 16
FALLBACK_PAGE = (b"<!doctype html><meta charset=utf-8><title>pxeconf</title>"
                 b"<p>pxeconf serve: the console page is not built in; see "
                 b"<a href=/api/machines>/api/machines</a>.\n")


class HttpServer:
    """The server, bound on creation (`port` 0: any free port, see .port);
    run .serve_forever() on a thread, stop with .shutdown()."""

    def __init__(self, root, address, port, machines, token, log, page=None,
                 csp=None, max_clients=64, per_address=PER_ADDRESS,
                 timeout=10.0,
                 keepalive=15.0, request_timeout=None, max_streams=None,
                 send_timeout=300.0):
        if not address:
            raise InputError("the HTTP server needs an explicit address to "
                             "listen on")
        self.root = str(root)
        self.machines = machines
        self.token = token
        self.log = log
        self.page = page if page is not None else FALLBACK_PAGE
        self.csp = csp
        self.max_clients = max_clients
        self.per_address = per_address
        self.timeout = timeout
        self.request_timeout = timeout if request_timeout is None \
            else request_timeout
        self.keepalive = keepalive
        self.send_timeout = max(send_timeout, timeout)
        self.events = Events(max(1, max_clients // 4) if max_streams is None
                             else max_streams)
        self._run_lock = threading.Lock()
        self._started = self._closed = False
        try:
            self._server = Server(self, (address, port), _Handler)
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
        """Stop serving, end the event streams and every open connection
        (a download running is cut), close the socket (also when
        serve_forever never ran)."""
        with self._run_lock:
            if self._closed:
                return
            self._closed, started = True, self._started
        if started:
            self._server.shutdown()
        self.events.close()
        self._server.end_all()
        self._server.server_close()
        if self.machines is not None:
            try:
                self.machines.remove_listener(self.events)
            except ValueError:
                pass


class _Handler(ApiHandler, http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pxeconf"
    sys_version = ""

    def setup(self):
        self.timeout = self.server.owner.timeout
        super().setup()
        self.rfile.close()              # reads through Deadline instead
        self._reader = Deadline(self.connection, self.timeout)
        self.connection._io_refs += 1   # as socket.makefile counts its own
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self):
        """One request, whose line, headers and body must all come within
        request_timeout seconds (a client that sends a byte now and then,
        slowloris, is cut off then, not kept for ever)."""
        if self.server.ending:          # shutdown() ran: no more answers
            self.close_connection = True
            return
        self._reader.start(self.owner.request_timeout)
        try:
            super().handle_one_request()
        except TooMuch as exc:
            self.close_connection = True
            self.log_error("%s: the connection is ended", exc)
        finally:
            self._reader.deadline = None

    def log_message(self, format, *args):
        pass                # the library never prints: records go to log

    def log_error(self, format, *args):
        self._sparse_log("error", f"{self.client_address[0]}: "
                                  f"{format % args}")

    def _sparse_log(self, kind, line):
        """A line about this client, at its 1st, 2nd, 4th ... of `kind`
        (logbound.py): a flood of bad requests cannot flood the log."""
        host = self.client_address[0]
        count, shown = self.server.sparse.count((kind, host))
        if shown:
            more = f" ({count} of these from {host})" if count > 1 else ""
            self.server.owner.log(f"http: {line}{more}")

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
        if not head and body and self.command != "HEAD":    # errors too
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
        if self.headers.get("Transfer-Encoding") or \
                self.headers.get("Content-Length", "0").strip() != "0":
            self.close_connection = True    # a body never read: never
            #                                 taken for the next request
        path, _, query = self._target().partition("?")
        if path == "/":
            csp = self.owner.csp
            self._answer(200, self.owner.page, "text/html; charset=utf-8",
                         [("Content-Security-Policy", csp)] if csp else (),
                         head=head)
        elif path == "/favicon.ico":    # every browser asks; nothing logged
            self.send_response(204)
            self.send_header("Cache-Control", "max-age=86400")
            self.end_headers()
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
        self._sparse_log("refused", f"refused {name[:120]!r} to "
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
            self._sparse_log("404", f"{rel} to {client}: 404 not found")
            return self._error(404, f"{rel}: not found")
        with f:
            first, last = 0, size - 1
            status = 200
            mtime_ns = os.fstat(f.fileno()).st_mtime_ns
            etag, modified = validators(size, mtime_ns)
            want = parse_range(self.headers.get("Range"), size)
            condition = self.headers.get("If-Range")
            if want is not None and condition is not None and \
                    not if_range_holds(condition, etag, mtime_ns):
                want = None             # another version: the whole file
            if want == "unsatisfiable":
                self._sparse_log("416", f"{rel} to {client}: 416 range "
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
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            if status == 206:
                self.send_header("Content-Range",
                                 f"bytes {first}-{last}/{size}")
            self.end_headers()
            if head:
                return
            # Logged before the body: once the client has it all, the line
            # is there (a client cut off midway is logged again below).
            self.owner.log(f"http: {rel} to {client}: {status} "
                           f"({count} bytes)")
            if count:
                # A reader may stop taking bytes for long (wget -O- | rdeploy
                # restore -, while the toolkit unpacks itself): silence is
                # measured in send_timeout here, not in timeout.
                self.connection.settimeout(self.owner.send_timeout)
                try:
                    sent = self.connection.sendfile(f, first, count)
                    if sent < count:            # the file shrank meanwhile
                        self.close_connection = True
                        self.owner.log(f"http: {rel} to {client}: cut off "
                                       f"after {sent} bytes (the file "
                                       f"shrank)")
                except OSError as exc:
                    self.close_connection = True
                    self.owner.log(f"http: {rel} to {client}: cut off "
                                   f"({exc.strerror or 'timed out'})")
                finally:
                    self.connection.settimeout(self.timeout)
