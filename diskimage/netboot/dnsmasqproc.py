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

A serve killed with SIGKILL cannot stop its child, so a sentinel does:
a shell started beside dnsmasq reads a pipe only serve holds, and on its
end of file (serve gone, however) sends dnsmasq SIGTERM; stop() first
writes it a line, and it exits without a word.  (tools.start's
die_with_parent cannot do it: the kernel forgets the parent-death signal
when dnsmasq changes its user to nobody, as it does when run as root.)
Its pid is also kept in CONF.pid while it runs, and the next start stops
a dnsmasq that file names (when it still runs with this very
configuration file) before it starts its own.
"""

import collections
import os
import signal
import threading
import time

from .. import signalsafe
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
        self._settled = signalsafe.Flag()      # started, or ended
        self._stopping = False
        self._reader = None
        self._sentinel = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def command(self):
        return ["dnsmasq", "--keep-in-foreground",
                f"--conf-file={self.conf_path}", "--log-facility=-",
                "--pid-file="]

    @property
    def pid_path(self):
        return self.conf_path + ".pid"

    def _stop_stale(self):
        """Stop a dnsmasq of an earlier serve (killed, so it could not)."""
        try:
            with open(self.pid_path) as f:
                pid = int(f.read().strip() or 0)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                words = f.read().split(b"\0")
        except (OSError, ValueError):
            return
        if pid <= 1 or f"--conf-file={self.conf_path}".encode() not in words:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            return
        for _ in range(int(STOP_TIMEOUT * 20)):
            if not os.path.exists(f"/proc/{pid}/cmdline") or \
                    _zombie(pid):
                break
            time.sleep(0.05)
        self.log(f"stopped dnsmasq pid {pid}, left running by a serve that "
                 f"was killed")

    def _write_conf(self):
        partial = self.conf_path + ".partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC |
                     os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.text)
        os.replace(partial, self.conf_path)

    def start(self, timeout=START_TIMEOUT):
        self._stop_stale()
        self._write_conf()
        self.proc = tools.start(self.command(), stdin=tools.DEVNULL,
                                stdout=tools.DEVNULL, stderr=tools.PIPE,
                                what="pxeconf serve --proxy-dhcp")
        self._sentinel = tools.start(
            ["sh", "-c", 'read -r _ || kill -TERM "$1"', "dnsmasq-sentinel",
             str(self.proc.pid)], stdin=tools.PIPE, stdout=tools.DEVNULL,
            stderr=tools.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name="dnsmasq-stderr")
        self._reader.start()
        with open(self.pid_path, "w") as f:
            f.write(f"{self.proc.pid}\n")
        self._settled.wait(timeout)
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
                self._settled.set()
        self.proc.wait()
        self.proc.stderr.close()
        self._ended.set()
        self._settled.set()
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
        if self._sentinel is not None:          # told to go quietly
            try:
                self._sentinel.stdin.write(b"stop\n")
                self._sentinel.stdin.close()
            except OSError:
                pass
            self._sentinel.wait()
            self._sentinel = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except tools.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT)
        try:
            os.unlink(self.pid_path)
        except FileNotFoundError:
            pass


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
