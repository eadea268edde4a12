"""dnsmasq as a child of `pxeconf serve`: started with the generated
configuration, its words forwarded, its death noticed at once, and stopped
with the service (never left running).

    proc = Dnsmasq(text, conf_path, log, on_exit=callable(error))
    proc.start()        # returns once dnsmasq says "started", or raises
    ...
    proc.stop()

dnsmasq runs as ``dnsmasq --keep-in-foreground --conf-file=CONF
--log-facility=- --pid-file=`` (no daemon, its log on stderr, no pid file);
each stderr line goes to `log` as ``dnsmasq: ...``.  Once started, a
dnsmasq that exits (killed, or a fatal error) calls on_exit with a
ToolError naming its exit status and its last words; the caller stops.
A DHCP port already bound by another server is BusyError (exit 9) in one
line.
"""

import collections
import os
import signal
import threading

from ..errors import BusyError, ToolError
from ..host import tools

START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
LAST_WORDS = 3


class Dnsmasq:
    def __init__(self, text, conf_path, log, on_exit=None):
        self.text = text
        self.conf_path = os.fspath(conf_path)
        self.log = log
        self.on_exit = on_exit
        self.proc = None
        self.error = None
        self._last = collections.deque(maxlen=LAST_WORDS)
        self._started = threading.Event()
        self._ended = threading.Event()
        self._stopping = False
        self._reader = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def command(self):
        return ["dnsmasq", "--keep-in-foreground",
                f"--conf-file={self.conf_path}", "--log-facility=-",
                "--pid-file="]

    def _write_conf(self):
        partial = self.conf_path + ".partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC |
                     os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.text)
        os.replace(partial, self.conf_path)

    def start(self, timeout=START_TIMEOUT):
        self._write_conf()
        self.proc = tools.start(self.command(), stdin=tools.DEVNULL,
                                stdout=tools.DEVNULL, stderr=tools.PIPE,
                                what="pxeconf serve --proxy-dhcp")
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name="dnsmasq-stderr")
        self._reader.start()
        self._started.wait(timeout)
        if self._ended.is_set() and not self._started.is_set():
            self._reader.join()
            raise self._failure(starting=True)
        if not self._started.is_set():
            self.stop()
            raise ToolError(f"dnsmasq did not start within {timeout:g} s: "
                            f"{self._words()}")

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            words = line.split(": ", 1)[-1] if line.startswith("dnsmasq") \
                else line
            self._last.append(words)
            self.log(f"dnsmasq: {words}")
            if words.startswith("started, version"):
                self._started.set()
        self.proc.wait()
        self.proc.stderr.close()
        self._ended.set()
        if self._started.is_set() and not self._stopping:
            self.error = self._failure()
            if self.on_exit is not None:
                self.on_exit(self.error)

    def _words(self):
        return "; ".join(self._last) or "it said nothing"

    def _failure(self, starting=False):
        code = self.proc.returncode
        status = f"was killed by {signal.Signals(-code).name}" \
            if code < 0 else f"exited with status {code}"
        words = self._words()
        if starting and "Address already in use" in words and \
                "DHCP" in words:
            return BusyError(f"dnsmasq: port 67 (DHCP) is taken: another "
                             f"DHCP server runs on this host ({words})")
        when = "at its start" if starting else "while serving"
        return ToolError(f"dnsmasq {status} {when}: {words}", code,
                         "\n".join(self._last))

    def stop(self):
        """Stop dnsmasq (SIGTERM, then SIGKILL after STOP_TIMEOUT) and wait
        for it; safe to call twice and after it died."""
        self._stopping = True
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except tools.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT)
