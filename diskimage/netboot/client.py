"""The imaging environment's side of a job's lease: tell the server it
booted from that the job started, how it goes, and how it ended.

The server and the lease come from the kernel command line the server's
config gave (``rd.pxeconf=http://ADDR:PORT/ rd.pxeconf.lease=ID``) unless
given.  Every report is one ``POST /api/report`` with a JSON body
(docs/pxeconf/serve.md, "The environment's protocol"):

    {"lease": ID, "event": "started" | "progress" | "done" | "failed",
     "exit": N, "progress": {rdeploy's --progress=json object},
     "log": ["line", ...]}

- The job's script (``rd.job=URL``) is fetched before ``started``
  (fetch): five tries with pauses of 1, 2, 4 and 8 s (FETCH), so a server
  restarting or a link still coming up is waited out; a 4xx answer (no
  such job) is not retried.  A job that cannot be fetched is reported
  ``failed`` with the fetch's error, and is never ``started``.
- ``started`` must be acknowledged (200) before the job may start: an
  unreachable server is retried with a growing pause, for a bounded number
  of tries; no acknowledgement raises, and the job must not run.
- ``done`` and ``failed`` are retried the same way, for longer: only an
  acknowledged ``done`` makes a once-job's machine boot locally next time
  (an unacknowledged one runs the job again on the next boot, the safe
  side).
- ``progress`` is sent once, never retried: the next one replaces it.
- A 409 answer (the server no longer knows this lease: cancelled,
  reassigned) is never retried: StaleLease.  A 400 is a bug: ToolError.

Relay(...).run(lines, out) passes every line of a job's output on to `out`
unchanged, keeps the last LOG_LINES, and forwards rdeploy's
``--progress=json`` progress lines and that tail at most once per
`interval` seconds from a thread of its own, so a slow server never holds
the job's output back.  Nothing prints: `log` takes the client's own words.
"""

import collections
import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from ..errors import DiskImageError, InputError, ToolError
from ..host.partial import partial_file

LOG_LINES = 20
MAX_LINE = 500          # characters of one log line sent
EVENTS = ("started", "progress", "done", "failed")


class StaleLease(DiskImageError):
    """The server answered 409: this lease is not (or no longer) the
    machine's; the job must not run (or its end is not recorded)."""

    exit_code = 3


class Unacknowledged(ToolError):
    """No acknowledgement from the server after every try."""


class Unfetched(ToolError):
    """The job's script could not be fetched: refused (4xx), or no answer
    after every try."""


class Policy:
    """How often and how long to try: `tries` requests, the pause after
    the first failure `first` seconds, doubled each time up to `longest`;
    each request waits `timeout` seconds for an answer."""

    def __init__(self, tries, first=1.0, longest=10.0, timeout=10.0):
        self.tries, self.first, self.longest = tries, first, longest
        self.timeout = timeout

    def pauses(self):
        pause = self.first
        for _ in range(self.tries - 1):
            yield pause
            pause = min(pause * 2, self.longest)


#: started: about a minute and a half of tries (the network may still be
#: coming up); done/failed: about five minutes; progress: one try.
STARTED = Policy(12, 0.5, 10.0)
ENDED = Policy(34, 0.5, 10.0)
PROGRESS = Policy(1, timeout=5.0)
#: the job's script: 5 tries, pauses 1, 2, 4, 8 s (15 s and the requests').
FETCH = Policy(5, 1.0, 8.0, timeout=30.0)
#: where the kernel command line is read (pxeconf report --kernel-cmdline)
CMDLINE = "/proc/cmdline"


def _word(text, key):
    """The value of the last `key`=VALUE word of a command line, or None."""
    found = None
    for word in text.split():
        if word.startswith(key + "="):
            found = word[len(key) + 1:]
    return found or None


def parse_cmdline(text):
    """(server URL or None, lease or None) from a kernel command line."""
    return _word(text, "rd.pxeconf"), _word(text, "rd.pxeconf.lease")


def _read_cmdline(cmdline):
    try:
        with open(cmdline, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def find_job(cmdline=CMDLINE):
    """The job's URL (rd.job=) from the kernel command line at `cmdline`;
    InputError when it is not there."""
    url = _word(_read_cmdline(cmdline), "rd.job")
    if not url:
        raise InputError(f"no job: rd.job=URL is not on the kernel command "
                         f"line ({cmdline})")
    check_url(url)
    return url


def check_url(url):
    """The server URL, ending in ``/``; InputError unless http://HOST..."""
    parts = urllib.parse.urlsplit(url or "")
    if parts.scheme != "http" or not parts.hostname:
        raise InputError(f"server URL {url!r}: not http://HOST[:PORT]/")
    try:
        parts.port
    except ValueError:
        raise InputError(f"server URL {url!r}: bad port") from None
    return url if url.endswith("/") else url + "/"


def find(url=None, lease=None, cmdline=CMDLINE):
    """(URL, lease) as given, else from the kernel command line;
    InputError naming what is missing."""
    if url is None or lease is None:
        found = parse_cmdline(_read_cmdline(cmdline))
        url = url if url is not None else found[0]
        lease = lease if lease is not None else found[1]
    if not url:
        raise InputError(f"no server: rd.pxeconf=URL is not on the kernel "
                         f"command line ({cmdline}) and no --server-url")
    if not lease:
        raise InputError(f"no lease: rd.pxeconf.lease=ID is not on the "
                         f"kernel command line ({cmdline}) and no --lease")
    return check_url(url), lease


def fetch(url, path, policy=FETCH, log=None, sleep=time.sleep):
    """GET `url` into the file `path` (written whole: PATH.partial, fsync,
    rename), tried as `policy` says; `log` takes one line per failed try.
    Unfetched on a 4xx answer at once, or after the last try."""
    log = log or (lambda line: None)
    pauses = policy.pauses()
    tried = 0
    while True:
        tried += 1
        try:
            with urllib.request.urlopen(url, timeout=policy.timeout) as got, \
                    partial_file(path, replace=True, mode=0o644) as out:
                while block := got.read(1 << 16):
                    out.write(block)
                if got.length:      # cut short of its Content-Length
                    raise http.client.IncompleteRead(b"", got.length)
            return
        except urllib.error.HTTPError as exc:
            why = f"HTTP {exc.code} {_words(exc)}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise Unfetched(f"{url}: {why}") from None
        except (urllib.error.URLError, OSError, ValueError,
                http.client.HTTPException) as exc:
            why = str(getattr(exc, "reason", None) or exc) or \
                type(exc).__name__
        pause = next(pauses, None)
        if pause is None:
            raise Unfetched(f"{url}: not fetched after {tried} "
                            f"{'try' if tried == 1 else 'tries'}: {why}")
        log(f"fetch: {url}: {why}; trying again in {pause:g} s")
        sleep(pause)


def tail(path, lines=LOG_LINES):
    """The last `lines` lines of a text file (bad bytes replaced)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 64 * 1024))
        text = f.read().decode("utf-8", "replace")
    return [clip(line) for line in text.splitlines()[-lines:]]


def clip(line):
    return line if len(line) <= MAX_LINE else line[:MAX_LINE] + "..."


class Reporter:
    """Reports of one lease to one server.  `sleep` pauses between tries
    (time.sleep); `log` takes one line about a failed try."""

    def __init__(self, url, lease, log=None, sleep=time.sleep):
        self.url = urllib.parse.urljoin(check_url(url), "api/report")
        self.lease = lease
        self.log = log or (lambda line: None)
        self.sleep = sleep
        self.requests = 0       # every POST tried (tests count them)

    def _post(self, body, timeout):
        self.requests += 1
        data = json.dumps(body).encode()
        request = urllib.request.Request(
            self.url, data=data, method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read() or b"{}")

    def send(self, event, exit=None, progress=None, log=None, policy=None):
        """One report, tried as `policy` says (by event: STARTED, ENDED,
        PROGRESS); the server's answer.  StaleLease on 409, ToolError on
        400, Unacknowledged when no try got an answer."""
        if event not in EVENTS:
            raise InputError(f"report: event {event!r} is not one of "
                             f"{', '.join(EVENTS)}")
        if policy is None:
            policy = STARTED if event == "started" else \
                PROGRESS if event == "progress" else ENDED
        body = {"lease": self.lease, "event": event}
        if exit is not None:
            body["exit"] = int(exit)
        if progress is not None:
            body["progress"] = progress
        if log is not None:
            body["log"] = [clip(str(line)) for line in log][-LOG_LINES:]
        pauses = policy.pauses()
        tried = 0
        while True:
            tried += 1
            try:
                return self._post(body, policy.timeout)
            except urllib.error.HTTPError as exc:
                words = _words(exc)
                if exc.code == 409:
                    raise StaleLease(f"{self.url}: the server does not know "
                                     f"lease {self.lease} (cancelled or "
                                     f"reassigned): {words}") from None
                if exc.code == 400:
                    raise ToolError(f"{self.url}: the server refused the "
                                    f"{event} report: {words}") from None
                why = f"HTTP {exc.code} {words}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                why = str(getattr(exc, "reason", exc))
            pause = next(pauses, None)
            if pause is None:
                raise Unacknowledged(
                    f"{self.url}: {event} not acknowledged after {tried} "
                    f"{'try' if tried == 1 else 'tries'}: {why}")
            self.log(f"{event}: {why}; trying again in {pause:g} s")
            self.sleep(pause)


def _words(exc):
    try:
        text = exc.read().decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    try:
        text = json.loads(text).get("error", text)
    except (ValueError, AttributeError):
        pass
    return (text or exc.reason or "")[:200]


class Relay:
    """Pass a job's output on and forward its progress (see the module's
    docstring).  `interval`: the shortest time between two reports."""

    def __init__(self, reporter, interval=1.0, log=None):
        self.reporter = reporter
        self.interval = interval
        self.log = log or (lambda line: None)
        self.lines = collections.deque(maxlen=LOG_LINES)
        self.sent = 0           # progress reports sent (tests count them)
        self.stale = False
        self._progress = None
        self._dirty = False
        self._lock = threading.Condition()
        self._over = False

    def run(self, lines, out):
        """Read `lines` (an iterable of bytes or str lines) to the end,
        writing each to `out` (a binary stream) as it comes; then send the
        last state.  Never raises for the server's sake."""
        sender = threading.Thread(target=self._sender, daemon=True)
        sender.start()
        try:
            for line in lines:
                raw = line if isinstance(line, bytes) else line.encode()
                out.write(raw)
                out.flush()
                self._take(raw.decode("utf-8", "replace").rstrip("\r\n"))
        finally:
            with self._lock:
                self._over = True
                self._lock.notify()
            sender.join()

    def _take(self, text):
        progress = None
        if text.startswith("{"):
            try:
                event = json.loads(text)
            except ValueError:
                event = None
            if isinstance(event, dict) and event.get("event") == "progress":
                progress = {k: v for k, v in event.items() if k != "event"}
        with self._lock:
            if progress is not None:
                self._progress = progress
            else:
                self.lines.append(clip(text))
            self._dirty = True
            self._lock.notify()

    def _sender(self):
        last = None
        while True:
            with self._lock:
                while not self._dirty and not self._over:
                    self._lock.wait()
                if not self._over and last is not None:
                    wait = last + self.interval - time.monotonic()
                    if wait > 0:
                        self._lock.wait(wait)
                        continue
                if not self._dirty:
                    return
                progress, log = self._progress, list(self.lines)
                self._dirty = False
                over = self._over
            last = time.monotonic()
            self._send(progress, log)
            if over:
                with self._lock:
                    if not self._dirty:
                        return

    def _send(self, progress, log):
        if self.stale:
            return
        try:
            self.reporter.send("progress", progress=progress, log=log)
            self.sent += 1
        except StaleLease as exc:
            self.stale = True
            self.log(f"progress: {exc}; not reported any more")
        except DiskImageError as exc:
            self.log(f"progress: {exc}")
