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

import json
import queue
import threading
import urllib.parse

from ..errors import DiskImageError, InputError
from .jobs import NotFound, StaleLease

BODY_MAX = 64 * 1024


class Events:
    """The event stream's subscribers: one bounded queue of MACs each."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queues = set()

    def subscribe(self):
        q = queue.Queue(maxsize=1024)
        with self._lock:
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


class ApiHandler:
    """The API's requests, mixed into httpd's handler."""

    # ---- the event stream ------------------------------------------------

    def _events(self):
        owner = self.owner
        q = owner.events.subscribe()
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
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self.close_connection = True
            self._error(400, "bad Content-Length")
            return None
        length = int(length)
        if length > BODY_MAX:
            self.close_connection = True
            self._error(413, f"a body over {BODY_MAX} bytes")
            return None
        data = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(data)
        except ValueError:
            self._error(400, "the body is not JSON")
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
            self.owner.log(f"http: report from {client} refused: {exc}")
            return self._error(409, str(exc))
        except InputError as exc:
            self.owner.log(f"http: report from {client} refused: {exc}")
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
        refused = self.owner.check_token(self.headers.get("Authorization"))
        if refused is not None:
            status, why = refused
            self.close_connection = True
            self.owner.log(f"http: {action} {mac[:40]!r} from {client} "
                           f"refused: {why}")
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
