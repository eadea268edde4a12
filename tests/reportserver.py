"""A stand-in for the report side of `pxeconf serve` (POST /api/report),
for the tests of the environment's client: it records every body and
answers as told.  The client is what is under test here; the real server
is tested with it in tests/netboot/test_serve*.py."""

import contextlib
import http.server
import json
import threading


class Recorder:
    def __init__(self):
        self.bodies = []
        self.answers = []       # status codes to give first, in order
        self.stale = set()      # leases answered 409
        self.files = {}         # GET path -> bytes (the job's script)
        self.gets = []          # GET paths asked, in order
        self.get_answers = []   # status codes to give GETs first
        self.lock = threading.Lock()

    def answer(self, body):
        with self.lock:
            self.bodies.append(body)
            if self.answers:
                return self.answers.pop(0)
        return 409 if body.get("lease") in self.stale else 200

    def events(self):
        with self.lock:
            return [b.get("event") for b in self.bodies]


def _handler(recorder):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with recorder.lock:
                recorder.gets.append(self.path)
                code = recorder.get_answers.pop(0) if recorder.get_answers \
                    else 200 if self.path in recorder.files else 404
                out = recorder.files.get(self.path, b"") \
                    if code in (200, "cut") else f"answer {code}\n".encode()
            # "cut": half the file, then the connection closes
            length = len(out)
            if code == "cut":
                code, out = 200, out[:len(out) // 2]
            self.send_response(code)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(out)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"raw": raw.decode("latin-1")}
            if self.path != "/api/report":
                code = 404
            else:
                code = recorder.answer(body)
            out = json.dumps({"ok": True} if code == 200 else
                             {"error": f"answer {code}"}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass
    return Handler


@contextlib.contextmanager
def report_server(address="127.0.0.1"):
    """Yields (url, Recorder) of a server on `address`, a free port."""
    recorder = Recorder()
    server = http.server.ThreadingHTTPServer((address, 0), _handler(recorder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}/", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port(address="127.0.0.1"):
    """A port nothing listens on (bound, then closed)."""
    import socket
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]
