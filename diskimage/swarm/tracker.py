"""opentracker (Debian's) as the swarm's tracker: `rdeploy swarm seed
--run-tracker=PORT`.

Facts this relies on (tried here with Debian's opentracker):

* It is built whitelist-only: it answers only for the infohashes in the
  file given with -w (hex, one a line), else "Requested download is not
  authorized".  The whitelist holds the seeded torrents' v1 infohashes.
* Started as root it chroots to -d DIR (default ".") and drops to -u USER
  ("nobody"); with -u root it refuses to run ("Still running with root
  privileges?!").  Dropping root makes the kernel forget the child's
  death signal, so it would outlive a killed rdeploy.  So as root it is
  started as nobody from the beginning (diskimage.host.tools.start
  as_user, the death signal asked for after that): its chroot then fails
  quietly and it runs in its directory, reading the whitelist by its
  absolute path.
* -p PORT is its TCP (HTTP announce) port, -P PORT its UDP one.
"""

import os
import pwd
import signal
import socket
import tempfile
import time

from ..errors import NetworkError, ToolError
from ..host import tools

PACKAGE = "opentracker"


def _nobody():
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def refuse_busy(port):
    """NetworkError (15) when TCP or UDP `port` is taken: opentracker
    would share it (SO_REUSEPORT) or fail late, and the swarm's announces
    would go to another tracker."""
    for kind, name in ((socket.SOCK_STREAM, "TCP"), (socket.SOCK_DGRAM,
                                                     "UDP")):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError as exc:
                raise NetworkError(
                    f"cannot run opentracker on port {port} "
                    f"(--run-tracker): {name} port {port} is in use "
                    f"({exc.strerror})") from None


class Tracker:
    """opentracker on `port` (TCP and UDP) for `infohashes`; `stop()` (or
    the context manager) ends it.  It never outlives us: own process
    group, SIGTERM from the kernel when the thread that started it ends."""

    def __init__(self, port, infohashes, *, ready_timeout=5.0):
        self.port = port
        refuse_busy(port)
        self.dir = tempfile.mkdtemp(prefix="rdeploy-tracker-")
        os.chmod(self.dir, 0o755)
        self.whitelist = os.path.join(self.dir, "whitelist")
        with open(self.whitelist, "w") as f:
            f.write("".join(f"{h}\n" for h in infohashes))
        os.chmod(self.whitelist, 0o644)
        self.log = os.path.join(self.dir, "log")
        as_user = _nobody() if os.geteuid() == 0 else None
        with open(self.log, "wb") as log:
            self.proc = tools.start(
                ["opentracker", "-p", str(port), "-P", str(port),
                 "-d", self.dir, "-w", self.whitelist],
                stdout=log, stderr=tools.STDOUT, cwd=self.dir,
                what="rdeploy swarm seed --run-tracker", package=PACKAGE,
                die_with_parent=True, no_tty=True, as_user=as_user)
        try:
            self._ready(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ToolError(f"opentracker ended at its start (exit "
                                f"{self.proc.returncode}): "
                                f"{self.last_words()}", self.proc.returncode)
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5):
                    pass
            except OSError:
                time.sleep(0.1)
                continue
            time.sleep(0.2)             # still there once listening?
            if self.proc.poll() is None:
                return
        raise ToolError(f"opentracker did not listen on port {self.port} "
                        f"within {timeout:.0f} s: {self.last_words()}")

    def last_words(self):
        try:
            with open(self.log, "rb") as f:
                text = f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return "no output"
        return "; ".join(line.strip() for line in text.splitlines()
                         if line.strip()) or "no output"

    def stop(self, grace=3):
        tools.stop_group(self.proc, (signal.SIGTERM, signal.SIGKILL), grace)
        for name in (self.whitelist, self.log):
            try:
                os.unlink(name)
            except OSError:
                pass
        try:
            os.rmdir(self.dir)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
