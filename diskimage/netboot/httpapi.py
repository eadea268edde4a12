"""The status API's half of the HTTP server (httpd.py): the event stream,
the environment's reports and the console's actions.

    GET  /api/events                   text/event-stream: "data: MACHINE"
                                       on every change, ": keepalive"
    POST /api/report                   the lease is the key: 200, 409 stale,
                                       400 bad body
    POST /api/machines/MAC/assign|cancel|local
                                       "Authorization: Bearer TOKEN":
                                       401 without, 403 wrong, 404 unknown

A body is JSON with Content-Length, at most BODY_MAX bytes (413 over it,
411 chunked).  The handler's server is httpd's; its `owner` the
HttpServer (machines, token, log, events, keepalive).
"""

import hmac
import json
import math
import queue
import re
import threading
import urllib.parse

from ..errors import DiskImageError, InputError
from .jobs import NotFound, StaleLease

BODY_MAX = 64 * 1024
_DIGITS = re.compile(r"[0-9]{1,19}\Z")


def _no_constant(word):
    raise ValueError(f"{word} is not JSON")       # NaN, Infinity


def _finite(text):
    """A JSON number with a fraction or exponent (1e999 would be inf)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]}: not a finite number")
    return value


class Events:
    """The event stream's subscribers: one bounded queue of MACs each, at
    most `limit` of them."""

    def __init__(self, limit=16):
        self._lock = threading.Lock()
        self._queues = set()
        self.limit = limit

    def subscribe(self):
        """A new subscriber's queue, or None when `limit` are reading."""
        q = queue.Queue(maxsize=1024)
        with self._lock:
            if len(self._queues) >= self.limit:
                return None
            self._queues.add(q)
        return q

    def unsubscribe(self, q):
        with self._lock:
            self._queues.discard(q)

    def __call__(self, mac):
        with self._lock:
            queues = list(self._queues)
        for q in queues:
            try:
                q.put_nowait(mac)
            except queue.Full:
                # A reader that does not read: its stream is ended (the
                # console reconnects and reads /api/machines again).
                self.unsubscribe(q)
                with q.mutex:
                    q.queue.clear()
                q.put_nowait(None)

    def close(self):
        with self._lock:
            queues, self._queues = list(self._queues), set()
        for q in queues:
            try:
                q.put_nowait(None)
            except queue.Full:
                pass


def check_token(token, header):
    """None when the Authorization header carries `token`, else (status,
    why)."""
    if not header:
        return 401, "no token"
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401, "no bearer token"
    if not token:
        return 403, "this server has no token: actions are off"
    if not hmac.compare_digest(given.strip().encode("utf-8", "replace"),
                               token.encode("utf-8")):
        return 403, "wrong token"
    return None


class ApiHandler:
    """The API's requests, mixed into httpd's handler."""

    # ---- the event stream ------------------------------------------------

    def _events(self):
        owner = self.owner
        q = owner.events.subscribe()
        if q is None:
            self.close_connection = True
            self._sparse_log("503", f"503 to {self.client_address[0]}: "
                             f"over {owner.events.limit} event streams")
            return self._error(503, f"over {owner.events.limit} event "
                               f"streams", [("Retry-After", "5")])
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.wfile.write(b"retry: 3000\n\n")
            while True:
                try:
                    mac = q.get(timeout=owner.keepalive)
                except queue.Empty:
                    self.wfile.write(b": keepalive\n\n")
                    continue
                if mac is None:
                    return
                data = json.dumps(owner.machines.machine(mac))
                self.wfile.write(f"data: {data}\n\n".encode())
        except OSError:
            return                                  # the reader went away
        finally:
            owner.events.unsubscribe(q)

    # ---- POST ------------------------------------------------------------

    def _body(self):
        """The request's JSON object, or None once an error is answered."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._error(411, "a body needs Content-Length (no chunks)")
            return None
        lengths = self.headers.get_all("Content-Length") or ["0"]
        length = lengths[0].strip()
        if len(lengths) > 1 or not _DIGITS.match(length):
            self.close_connection = True
            self._error(400, "bad Content-Length (one, in ASCII digits)")
            return None
        length = int(length)
        if length > BODY_MAX:
            self.close_connection = True
            self._error(413, f"a body over {BODY_MAX} bytes")
            return None
        data = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(data, parse_constant=_no_constant,
                              parse_float=_finite)
        except (ValueError, RecursionError):
            self._error(400, "the body is not JSON (finite numbers, "
                        "not nested too deep)")
            return None
        if not isinstance(body, dict):
            self._error(400, "the body is not a JSON object")
            return None
        return body

    def do_POST(self):
        path = self.path.partition("?")[0]
        if path == "/api/report":
            return self._report()
        parts = path.split("/")
        if len(parts) == 5 and parts[:3] == ["", "api", "machines"] and \
                parts[4] in ("assign", "cancel", "local"):
            return self._action(urllib.parse.unquote(parts[3]), parts[4])
        self._body()                 # read it, so the connection stays sane
        self._error(404, f"{path[:80]}: no such API")

    def _report(self):
        body = self._body()
        if body is None:
            return
        client = self.client_address[0]
        lease = body.get("lease")
        try:
            machine = self.owner.machines.report(
                lease, body.get("event"), exit=body.get("exit"),
                progress=body.get("progress"), log=body.get("log"))
        except StaleLease as exc:
            self._sparse_log("report", f"report from {client} refused: "
                                       f"{exc}")
            return self._error(409, str(exc))
        except InputError as exc:
            self._sparse_log("report", f"report from {client} refused: "
                                       f"{exc}")
            return self._error(400, str(exc))
        except DiskImageError as exc:            # the journal not written
            self.owner.log(f"http: report from {client} not recorded: {exc}")
            return self._error(500, f"not recorded: {exc}")
        event = body.get("event")
        if event in ("done", "failed"):
            self.owner.log(f"http: report from {client}: {machine['mac']} "
                           f"{event} (exit {body.get('exit')})")
        elif event == "started":
            self.owner.log(f"http: report from {client}: {machine['mac']} "
                           f"started")
        self._json(200, {"ok": True, "state": machine["state"]})

    def _action(self, mac, action):
        client = self.client_address[0]
        refused = check_token(self.owner.token,
                              self.headers.get("Authorization"))
        if refused is not None:
            status, why = refused
            self.close_connection = True
            self._sparse_log("token", f"{action} {mac[:40]!r} from "
                                      f"{client} refused: {why}")
            headers = [("WWW-Authenticate", 'Bearer realm="pxeconf"')] \
                if status == 401 else []
            return self._error(status, why, headers)
        body = self._body()
        if body is None:
            return
        machines = self.owner.machines
        try:
            if action == "assign":
                job, once = body.get("job"), body.get("once", True)
                if not isinstance(job, str) or not isinstance(once, bool):
                    return self._error(400, 'assign needs {"job": NAME, '
                                       '"once": true|false}')
                machine = machines.assign(mac, job, once=once)
            elif action == "cancel":
                machine = machines.cancel(mac)
            else:
                machine = machines.local(mac)
        except NotFound as exc:
            return self._error(404, str(exc))
        except InputError as exc:                  # a MAC misspelt
            return self._error(404, str(exc))
        except DiskImageError as exc:            # the journal not written
            self.owner.log(f"http: {action} {mac[:40]!r} from {client} not "
                           f"recorded: {exc}")
            return self._error(500, f"not recorded: {exc}")
        self.owner.log(f"http: {action} {machine['mac']} from {client}"
                       + (f": job {body['job']}" if action == "assign"
                          else ""))
        self._json(200, {"ok": True, "machine": machine})
