"""pxeconf serve's HTTP server over what a client sends: the raw bytes of
one connection (any number of requests, pipelined) handed to the real
handler (httpd._Handler with httpconn's Deadline reads, httprange's Range
and If-Range, httpapi's JSON bodies, tokens, reports and actions) of a
real HttpServer with a boot root and a real site's Machines, through a
socketpair in this process, as Server.process_request_thread runs it.

The server's own rule is the rule here: a handler's exception other than
OSError (a client gone) is logged as "internal error", a bug; so is
anything that escapes.  Machines are made anew for each input, so no
input depends on the ones before it.  The event stream's keepalive is
1 ms and the client end is closed once it has seen the stream start (its
header, or for HTTP/0.9 its first line), so the stream ends at its next
write instead of running for ever."""

import os
import socket
import threading
from pathlib import Path

from diskimage.netboot.httpd import HttpServer
from diskimage.netboot.jobs import Machines
from diskimage.netboot.logbound import Sparse
from tests.fuzz.targets_index import scratch, set_up
from tests.netboot.jobsite import MAC1, T0, Host, make_site

MAX_LEN = 65536
TOKEN = "fuzz-token"
CLIENT = ("127.0.0.1", 40000)

_STATE = None


class Found(Exception):
    """The server logged an internal error: a bug (not a project error)."""


def _state():
    global _STATE
    if _STATE is None:
        _STATE = set_up(_build)
    return _STATE


def _build():
    top = Path(scratch("http", memory=False))
    root = top / "boot"
    (root / "ipxe").mkdir(parents=True)
    (root / "env").mkdir()
    (root / "grub").mkdir()
    (top / "secret").write_text("outside the root\n")
    os.symlink(top / "secret", root / "out-link")
    os.symlink("env/small.bin", root / "in-link")
    (root / "env" / "small.bin").write_bytes(bytes(range(256)) * 4)
    (root / "ipxe" / "52-54-00-12-34-56.ipxe").write_text("#!ipxe\n")
    (root / "grub" / "grub.cfg-01-52-54-00-12-34-56").write_text("x\n")
    site = make_site(top, hosts=[Host(MAC1, name="pc01", job="restore",
                                      assigned=T0)])
    logs = []
    server = HttpServer(root, "127.0.0.1", 0, None, TOKEN, logs.append,
                        page=b"<!doctype html><title>c</title>\n",
                        timeout=2.0, keepalive=0.001)
    return server, site, top / "journal.jsonl", logs


def _drain(sock, done):
    """Read the answers; close once an event stream has started."""
    seen = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            seen = (seen + data)[-4096:]
            if b"text/event-stream" in seen or b"retry: 3000" in seen:
                # (an HTTP/0.9 request has no headers: its stream starts
                # with the retry line)
                break
    except OSError:
        pass
    finally:
        sock.close()
        done.set()


def one_input(data):
    server, site, journal, logs = _state()
    if journal.exists():
        journal.unlink()
    machines = Machines(site, journal)
    server.machines = machines
    machines.add_listener(server.events)
    ours, theirs = socket.socketpair()
    done = threading.Event()
    try:
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        reader = threading.Thread(target=_drain, args=(theirs, done),
                                  daemon=True)
        reader.start()
        del logs[:]
        inner = server._server
        inner.sparse = Sparse()         # the log's counts start anew too
        try:
            inner.finish_request(ours, CLIENT)
        except Exception:                       # as process_request_thread
            inner.handle_error(ours, CLIENT)
        ours.close()
        done.wait()
        bugs = [line for line in logs if "internal error" in line]
        if bugs:
            raise Found(bugs[0])
    finally:
        ours.close()
        machines.remove_listener(server.events)
        machines.close()
