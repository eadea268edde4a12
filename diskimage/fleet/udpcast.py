"""udp-sender and udp-receiver (Debian's udpcast 20120424): their command
lines and their processes.

Facts this relies on (read in udpcast's source, udps-negotiate.c,
senddata.c, udpr-negotiate.c, receivedata.c, and tried between network
namespaces):

* udp-sender waits for receivers, then sends its stdin once.  With
  --nokbd it starts only by --min-receivers / --max-wait (without them
  it would wait for a key forever).  The check runs when its socket has
  been quiet for 2 s (or every --rexmit-hello-interval), so a session
  starts about 2 s after the last join that reached --min-receivers, or
  --max-wait S seconds after the *first* receiver joined, with however
  many have joined by then (max-wait wins over min-receivers).
* Without --streaming, a receiver that asks to join during a transfer is
  not answered (senddata.c drops "packets from unknown provenance"): it
  waits silently for the next sender's HELLO, and never gets the middle
  of a stream.  It is told so by notice.py, not by udpcast.
* A receiver that does not acknowledge a slice is asked again; after
  --retries-until-drop requests (200 by default: a dead receiver stalls
  everyone for over 90 s) it is dropped: "Dropping client #N because of
  timeout", and the others go on.  20 stalled the others about 10 s here.
* udp-sender prints "New connection from IP  (#N)", "Starting
  transfer", "Dropping client #N ...", "Disconnecting #N (IP)" (a receiver
  that left or was dropped, and every one at the end), "Transfer
  complete."; it exits 0 after a transfer, also when every receiver was
  dropped, and 1 when it could not start.
* udp-receiver prints "Connected as #N to IP" once joined and "Transfer
  complete." at the end (exit 0); --receive-timeout S makes it exit 1
  ("Receiver timeout") after S s without a packet, --start-timeout
  "Receiver error" (exit 255) before a session.  Progress lines end in
  CR.  Interfaces need a broadcast address (``ip addr add ... brd +``),
  else the receiver never reaches the sender.
* On SIGINT udp-receiver exits through its atexit handler, which sends
  the sender a DISCONNECT ("Disconnecting #N"): the session goes on at
  once.  SIGTERM kills it without a word, and so does SIGPIPE when its
  reader is gone: the sender stalls until it drops it.  So it gets
  SIGINT (also as its death signal) and starts with SIGPIPE ignored.
* udp-receiver listens on PORT (--portbase), udp-sender on PORT + 1.
"""

import collections
import os
import re
import signal
import threading

from ..errors import ToolError
from ..host import tools

PACKAGE = "udpcast"
SENDER, RECEIVER = "udp-sender", "udp-receiver"
#: What rdeploy gives --retries-until-drop: a dead or stuck receiver
#: stalls the others about 10 s before it is dropped (200, udpcast's own
#: default, stalled them over 90 s).
RETRIES_UNTIL_DROP = 20
#: udp-receiver gives up after this many seconds without a packet in a
#: transfer (a receiver dropped, a sender gone).
RECEIVE_TIMEOUT = 30

_LINE_END = re.compile(rb"[\r\n]")


def sender_args(*, port, min_receivers, max_wait=None, rate=None, fec=None,
                interface=None, retries_until_drop=RETRIES_UNTIL_DROP):
    """udp-sender's command line: the image on its stdin, no keyboard,
    the start policy, a HELLO every second (a receiver that missed the
    first one still finds the session), never --streaming."""
    args = [SENDER, "--nokbd", "--portbase", str(port),
            "--min-receivers", str(min_receivers),
            "--retries-until-drop", str(retries_until_drop),
            "--rexmit-hello-interval", "1000"]
    if max_wait is not None:
        args += ["--max-wait", str(max_wait)]
    if rate is not None:            # kilobits per second
        args += ["--max-bitrate", f"{rate}k"]
    if fec is not None:
        args += ["--fec", fec]
    interface = interface or default_interface()
    if interface is not None:
        args += ["--interface", interface]
    return args


def receiver_args(*, port, interface=None, receive_timeout=RECEIVE_TIMEOUT):
    """udp-receiver's command line: the stream on its stdout."""
    args = [RECEIVER, "--nokbd", "--portbase", str(port),
            "--receive-timeout", str(receive_timeout)]
    interface = interface or default_interface()
    if interface is not None:
        args += ["--interface", interface]
    return args


def default_interface(routes="/proc/net/route"):
    """The interface of the default route (the lowest metric), or None
    when there is none: udpcast then picks by itself (eth0 or en0 first,
    then any eth*/en*, an interface with a link and a broadcast address
    before others; socklib.c getNetIf)."""
    best = None
    try:
        with open(routes) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] != "00000000" or \
                fields[7] != "00000000":
            continue            # not a default route (destination, mask)
        try:
            metric = int(fields[6])
        except ValueError:
            continue
        if best is None or metric < best[0]:
            best = (metric, fields[0])
    return best and best[1]


class Tool:
    """One running udp-sender or udp-receiver.

    It runs in a session (and so a process group) of its own, so a Ctrl-C
    at the terminal reaches rdeploy only, which stops it; it gets SIGTERM
    from the kernel when the thread that started it ends, so it never
    outlives a killed rdeploy (PR_SET_PDEATHSIG, diskimage.host.tools:
    start it from the main thread; udp-receiver gets SIGINT, so it says
    goodbye to its sender).  Its stderr is read on a thread, line
    by line (CR ends its progress lines), each line given to `on_line`;
    the last ones are kept for messages."""

    def __init__(self, args, *, stdin=tools.DEVNULL, stdout=tools.DEVNULL,
                 on_line=None, what=None):
        self.name = args[0]
        # udp-receiver sends its sender a DISCONNECT on SIGINT (its
        # handler exits through atexit), so the session drops it at once
        # instead of stalling everyone for --retries-until-drop; on
        # SIGTERM it just dies.
        self.signals = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL) \
            if self.name == RECEIVER else (signal.SIGTERM, signal.SIGKILL)
        self.on_line = on_line
        self.lines = collections.deque(maxlen=12)
        self.proc = tools.start(args, stdin=stdin, stdout=stdout,
                                stderr=tools.PIPE, what=what,
                                package=PACKAGE, die_with_parent=True,
                                no_tty=True, death_signal=self.signals[0],
                                ignore_sigpipe=self.name == RECEIVER)
        self.pid = self.proc.pid
        self.reader = threading.Thread(target=self._read, daemon=True,
                                       name=f"{self.name}-stderr")
        self.reader.start()

    def _read(self):
        pending = b""
        stream = self.proc.stderr
        while True:
            try:
                data = os.read(stream.fileno(), 4096)
            except OSError:
                data = b""
            if not data:
                break
            *lines, pending = _LINE_END.split(pending + data)
            for raw in lines:
                self._line(raw)
        self._line(pending)

    def _line(self, raw):
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            return
        if not line.startswith("bytes="):
            self.lines.append(line)
        if self.on_line is not None:
            self.on_line(line)

    def last_words(self):
        """Its last lines but progress, as one line."""
        return "; ".join(self.lines) or "no output"

    def poll(self):
        return self.proc.poll()

    def wait(self, timeout=None):
        """Its exit status (None if still running after `timeout`), once
        its stderr has been read to the end."""
        try:
            code = self.proc.wait(timeout)
        except tools.TimeoutExpired:
            return None
        self.reader.join(5)
        return code

    def stop(self, grace=3):
        """INT (udp-receiver) or TERM to its process group, then the next
        signal after `grace` seconds, KILL last; its exit status."""
        tools.stop_group(self.proc, self.signals, grace)
        self.reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        return self.proc.returncode

    def failed(self, what):
        """The ToolError for an unexpected exit."""
        return ToolError(f"{self.name} {what} (exit {self.proc.returncode}):"
                         f" {self.last_words()}", self.proc.returncode,
                         "\n".join(self.lines))
