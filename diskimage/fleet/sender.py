"""Multicast sessions: the image fed to udp-sender, who joined, who
finished, who was dropped.

One session is one udp-sender run over the whole image stream, byte for
byte (never a session per partition: nothing to fall out of step).  The
source is opened afresh for each session (`open_source()`, any object of
the source protocol: a file, split volumes, a URL), read front to back on
a feeder thread into udp-sender's stdin.  While the transfer runs, the
notice of notice.py is broadcast, so a receiver that comes late is told
why it waits.  udp-sender is stopped (TERM, then KILL) whatever ends the
session: an error, Ctrl-C, SIGTERM.
"""

import dataclasses
import re
import threading
import time

from ..errors import DiskImageError, NetworkError
from ..host import tools
from . import notice
from .udpcast import Tool, sender_args

PIECE = 1 << 20
_JOINED = re.compile(r"New connection from (\S+)\s+\(#(\d+)\)")
_DROPPED = re.compile(r"Dropping client #(\d+)")
_LEFT = re.compile(r"Disconnecting #(\d+) \((\S+)\)")
_BROADCAST = re.compile(r"Broadcasting control to (\S+)")


@dataclasses.dataclass
class Receiver:
    number: int
    address: str
    state: str = "joined"       # then finished, dropped or left


class Session:
    """One session: `run()` returns its summary (a dict)."""

    def __init__(self, number, open_source, *, port, min_receivers,
                 max_wait=None, rate=None, fec=None, interface=None,
                 retries_until_drop=None, progress=None, on_start=None,
                 on_join=None):
        self.number, self.open_source = number, open_source
        self.port, self.interface = port, interface
        self.progress, self.on_start = progress, on_start
        self.on_join = on_join
        self.min_receivers = min_receivers
        options = dict(port=port, min_receivers=min_receivers,
                       max_wait=max_wait, rate=rate, fec=fec,
                       interface=interface)
        if retries_until_drop is not None:
            options["retries_until_drop"] = retries_until_drop
        self.args = sender_args(**options)
        self.receivers = {}
        self.broadcast = None
        self.started = None
        self.first_joined = None
        self.complete = False
        self.announcer = None
        self.fed = 0
        self.feed_error = None
        self.lock = threading.Lock()

    def _line(self, line):
        with self.lock:
            if match := _BROADCAST.search(line):
                self.broadcast = match.group(1)
            elif match := _JOINED.search(line):
                number = int(match.group(2))
                self.receivers[number] = Receiver(number, match.group(1))
                if self.first_joined is None:
                    self.first_joined = time.time()
                if self.on_join is not None:
                    self.on_join(self, self.receivers[number])
            elif line.startswith("Starting transfer"):
                self._start()
            elif match := _DROPPED.search(line):
                receiver = self.receivers.get(int(match.group(1)))
                if receiver is not None:
                    receiver.state = "dropped"
            elif match := _LEFT.search(line):
                self._left(int(match.group(1)))
            elif line.startswith("Transfer complete"):
                self.complete = True

    def _start(self):
        self.started = time.time()
        self.started_at = time.monotonic()
        if self.broadcast is not None:
            self.announcer = notice.Announcer(
                notice.Notice(self.number, int(self.started),
                              len(self.receivers)),
                self.broadcast, self.port, self.interface)
        if self.on_start is not None:
            self.on_start(self)

    def _left(self, number):
        receiver = self.receivers.get(number)
        if receiver is None or receiver.state != "joined":
            return
        if self.complete:
            receiver.state = "finished"
        elif self.started is None:
            del self.receivers[number]      # left before the start
        else:
            receiver.state = "left"

    def _feed(self, tool, source):
        """Front to back into udp-sender's stdin (on a thread)."""
        total = source.size
        try:
            while piece := source.read(PIECE):
                tool.proc.stdin.write(piece)
                self.fed += len(piece)
                if self.progress is not None and total:
                    self.progress(self.fed, total)
            tool.proc.stdin.close()
        except BrokenPipeError:
            pass                    # udp-sender ended: its status says why
        except DiskImageError as exc:
            self.feed_error = exc
            tool.stop()
        except OSError as exc:
            self.feed_error = DiskImageError(
                f"feeding udp-sender failed after {self.fed} bytes: "
                f"{exc.strerror or exc}")
            tool.stop()

    def run(self):
        with self.open_source() as source:
            tool = Tool(self.args, stdin=tools.PIPE, on_line=self._line,
                        what="rdeploy multicast send")
            try:
                feeder = threading.Thread(target=self._feed,
                                          args=(tool, source), daemon=True,
                                          name="mcast-feed")
                feeder.start()
                code = tool.wait()
                feeder.join()
            finally:
                if self.announcer is not None:
                    self.announcer.stop()
                tool.stop()
        if self.feed_error is not None:
            raise self.feed_error
        if code != 0 or not self.complete:
            raise tool.failed("ended the session before the image was sent")
        for receiver in self.receivers.values():
            if receiver.state == "joined":      # its goodbye not heard
                receiver.state = "finished"
        return self.summary()

    def summary(self):
        seconds = time.monotonic() - self.started_at if self.started \
            else 0.0
        by_state = {}
        for receiver in sorted(self.receivers.values(),
                               key=lambda r: r.number):
            by_state.setdefault(receiver.state, []).append(receiver.address)
        return {"session": self.number, "bytes": self.fed,
                "first_joined": self.first_joined,
                "started": self.started, "seconds": seconds,
                "receivers": [dataclasses.asdict(r) for r in sorted(
                    self.receivers.values(), key=lambda r: r.number)],
                "finished": by_state.get("finished", []),
                "dropped": by_state.get("dropped", []),
                "left": by_state.get("left", [])}


def send(open_source, *, repeat=False, on_session=None, stage=None,
         **options):
    """Run one session (or, with `repeat`, sessions back to back until
    interrupted); `on_session(summary)` after each; `on_start(session)`
    and `on_join(session, receiver)` as they happen (options of
    Session); `stage(number)` gives
    session `number`'s progress(done, total) callback (the bytes fed to
    udp-sender).  Returns the last summary.  NetworkError when no receiver
    finished a session (without `repeat`)."""
    number = 0
    while True:
        number += 1
        summary = Session(number, open_source, progress=stage and
                          stage(number), **options).run()
        if on_session is not None:
            on_session(summary)
        if not repeat:
            break
    if not summary["finished"]:
        raise NetworkError(
            f"multicast session {number}: no receiver finished (left: "
            f"{', '.join(summary['left']) or 'none'}; dropped: "
            f"{', '.join(summary['dropped']) or 'none'})")
    return summary
