"""Joining a multicast session: udp-receiver's stdout as the image source
of a normal restore.

:class:`Join` starts udp-receiver and hands out :attr:`Join.source`, a
PipeInput of its stdout: the caller reads it with RecordStream and
restores it as ``rdeploy restore - TARGET`` would, every chunk, the
index and the root digest checked, the restore marker written first (so
a receiver that stops early leaves its target marked incomplete).

While udp-receiver has not joined, the notices of notice.py are listened
to: a session already under way is told to `on_late` (the receiver came
after its start; udpcast lets it wait, silently, for the next session).
`wait` seconds without the first byte of a session: udp-receiver is
stopped and :meth:`Join.failure` says no session started.
"""

import threading

from ..errors import NetworkError, TargetChangedError
from ..image.volumes import PipeInput
from . import notice
from .udpcast import RECEIVE_TIMEOUT, Tool, receiver_args
from ..host import tools


class _SessionInput(PipeInput):
    def __init__(self, fileobj, name, first):
        super().__init__(fileobj, name)
        self.first = first

    @property
    def bytes_read(self):
        return self.position

    def missing_volume(self):
        return None

    def read(self, size):
        data = super().read(size)
        if data:
            self.first.set()
        return data


class Join:
    """udp-receiver waiting for (then receiving) the next session on
    `port` (udpcast's portbase) and `interface`.  A context manager: its
    exit stops udp-receiver and the listener."""

    def __init__(self, *, port=9000, interface=None, wait=None,
                 on_late=None, receive_timeout=RECEIVE_TIMEOUT):
        self.port, self.wait = port, wait
        self.on_late = on_late
        self.connected = threading.Event()
        self.first = threading.Event()
        self.sender = None
        self.timed_out = False
        self._notices = {}
        self.tool = Tool(receiver_args(port=port, interface=interface,
                                       receive_timeout=receive_timeout),
                         stdout=tools.PIPE, on_line=self._line,
                         what="rdeploy multicast receive")
        self.source = _SessionInput(self.tool.proc.stdout.raw,
                                    f"the multicast session (port {port})",
                                    self.first)
        self.listener = notice.Listener(port, self._notice, interface)
        self.timer = None
        if wait is not None:
            self.timer = threading.Timer(wait, self._give_up)
            self.timer.daemon = True
            self.timer.start()

    def _line(self, line):
        if line.startswith("Connected as #"):
            self.sender = line.rsplit(" ", 1)[-1]
            self.connected.set()

    def _notice(self, address, heard):
        """A notice: told to on_late when udp-receiver has not joined at
        the second notice of that session (the first can cross the
        "Connected" line of a receiver that joined just in time)."""
        if self.connected.is_set():
            return True
        key = (address, heard.session, heard.started)
        self._notices[key] = self._notices.get(key, 0) + 1
        if self._notices[key] < 2:
            return False
        if self.on_late is not None:
            self.on_late(address, heard)
        return True

    def _give_up(self):
        if not self.first.is_set():
            self.timed_out = True
            self.tool.stop(grace=2)

    def finish(self):
        """After the whole image was read and restored: udp-receiver's
        end (it exits once the sender closed the session); a warning text
        when it ended badly, else None (the image was checked whole)."""
        code = self.tool.wait(10)
        if code is None:
            self.tool.stop()
            return None
        if code != 0:
            return (f"udp-receiver exited {code} after the whole image was "
                    f"received and checked: {self.tool.last_words()}")
        return None

    def failure(self, exc, target):
        """What to raise for `exc`, an error of the restore reading the
        session: NetworkError (exit 15) when the session is at fault (none
        started within `wait`, udp-receiver dropped or gone), else `exc`
        itself (a refused target, a damaged image)."""
        if self.timed_out:
            return NetworkError(
                f"no multicast session started within {self.wait} s on "
                f"port {self.port}; nothing written to {target}")
        code = self.tool.wait(3)
        if code in (None, 0) and self.first.is_set():
            return exc
        if not self.first.is_set():
            return NetworkError(
                f"udp-receiver ended before a session started (exit "
                f"{code}): {self.tool.last_words()}; nothing written to "
                f"{target}")
        written = isinstance(exc, TargetChangedError)
        state = (f"{target} is marked incomplete (rdeploy verify-target "
                 f"exits 13); receive the next session" if written else
                 f"nothing written to {target}")
        sender = self.sender or "the sender"
        return NetworkError(
            f"dropped from the multicast session of {sender} after "
            f"{self.source.position} bytes of the image "
            f"(udp-receiver: {self.tool.last_words()}); {state}")

    def close(self):
        if self.timer is not None:
            self.timer.cancel()
        self.listener.stop()
        self.tool.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
