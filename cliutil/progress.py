"""Progress on stderr: a tqdm bar on a terminal, JSON lines for scripts, or
nothing.  The library only calls progress(done, total).

With ``--progress=json`` stderr carries JSON lines only, one object each
(the schema is in docs/rdeploy.md, "Progress and output"):

    {"event": "progress", "task": "capture", "done": ..., "total": ...,
     "percent": ..., "rate": ..., "eta": ...}
    {"event": "warning", "command": "capture", "message": "..."}
    {"event": "end", "command": "capture", "exit_code": 0,
     "summary": "the text line", "result": {...}}
    {"event": "error", "command": "capture", "exit_code": 5,
     "message": "the text of the error line"}

Every run ends with exactly one ``end`` or ``error`` event; a success's last
``progress`` event says 100 %.  Human text (warnings, the summary line) goes
to stderr only in the other modes, and not with --quiet.
"""

import json
import sys
import time

from diskimage.errors import DiskImageError

from .text import safe

MODES = ("auto", "bar", "json", "none")


class Reported(DiskImageError):
    """An error already told as a JSON ``error`` event: the runner exits
    with `exit_code` (that of the error told) and prints nothing more."""

    def __init__(self, exit_code):
        super().__init__(exit_code)
        self.exit_code = exit_code


def json_line(event, stream=None, **fields):
    print(json.dumps({"event": event, **fields}, default=str),
          file=stream or sys.stderr, flush=True)


def error_event(prog, command, exc, stream=None):
    """Tell `exc` as an ``error`` event and return the Reported to raise."""
    from .runner import describe
    message, code = describe(prog, exc, command)
    json_line("error", stream, command=command, exit_code=code,
              message=message)
    return Reported(code)


#: the bar's counts in the summary lines' units (diskimage.sizes: MiB)
BAR_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| {done_text}/{total_text} "
              "[{elapsed}<{remaining}, {rate_text}]")


def _bar(total, label, stream):
    """A tqdm bar whose sizes read as the summary line's do ("26.6 MiB",
    not tqdm's "27.9M")."""
    from tqdm import tqdm

    from diskimage.sizes import format_size

    class Bar(tqdm):
        @property
        def format_dict(self):
            d = super().format_dict
            rate = d.get("rate") or (d["n"] / d["elapsed"]
                                     if d["elapsed"] else None)
            d.update(done_text=format_size(d["n"]),
                     total_text=format_size(d["total"] or 0),
                     rate_text=f"{format_size(rate)}/s" if rate else "?")
            return d

    return Bar(total=total, desc=label, file=stream, dynamic_ncols=True,
               bar_format=BAR_FORMAT)


class Progress:
    """A progress(done, total) callback, and the channel for a command's
    warnings and summary.  Use as a context manager around the whole
    command: in json mode an exception leaving it becomes an ``error``
    event (and Reported)."""

    def __init__(self, mode, label, quiet=False, stream=None, prog="rdeploy"):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() and not quiet else "none"
        self.mode, self.quiet, self.prog = mode, quiet, prog
        self.command = label
        self.bar = None
        self._start(label)

    def _start(self, label):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.label = label
        self.last = 0.0
        self.started = time.monotonic()
        self.done = 0
        self.total = 0
        self.shown = None       # (done, total) of the last JSON line

    @property
    def json(self):
        return self.mode == "json"

    def __call__(self, done, total):
        self.done, self.total = done, total
        if self.mode == "bar":
            if self.bar is None:
                self.bar = _bar(total, self.label, self.stream)
            self.bar.update(done - self.bar.n)
        elif self.json:
            now = time.monotonic()
            if now - self.last >= 0.5 or done >= total:
                self.last = now
                self._progress_line()

    def stage(self, label):
        """A callback for the next stage of the same run (restore's
        read-back): its first call starts task `label`."""
        def callback(done, total):
            if self.label != label:
                self._finish_task()
                self._start(label)
            self(done, total)
        return callback

    def _progress_line(self):
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate else None
        self.shown = (self.done, self.total)
        json_line("progress", self.stream, task=self.label, done=self.done,
                  total=self.total,
                  percent=round(100 * self.done / self.total, 1)
                  if self.total else 100.0,
                  rate=round(rate),
                  eta=round(eta, 1) if eta is not None else None)

    def _finish_task(self):
        """The task's work is done: its bar or its last line says 100 %
        (the library's count can stop short: ranges it had nothing to
        write for, such as the holes at the end of an area)."""
        if self.bar is not None:
            self.bar.update(self.bar.total - self.bar.n)
        if self.json and self.shown != (self.total, self.total) and \
                (self.total or self.shown is not None):
            self.done = self.total
            self._progress_line()

    def warn(self, text):
        if self.json:
            json_line("warning", self.stream, command=self.command,
                      message=text)
        elif not self.quiet:
            print(f"{self.prog}: warning: {safe(text)}", file=self.stream)

    def end(self, summary=None, result=None, lines=()):
        """Success: the human summary `summary` (and `lines`) on stderr, or
        in json mode the last 100 % and the ``end`` event with `result`."""
        self._finish_task()
        self.close()
        if self.json:
            json_line("end", self.stream, command=self.command, exit_code=0,
                      summary=summary, result=result)
        elif not self.quiet:
            for line in ([summary] if summary else []) + list(lines):
                print(safe(line), file=self.stream)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        self.close()
        if exc is not None and self.json and not isinstance(exc, Reported) \
                and not isinstance(exc, SystemExit):
            raise error_event(self.prog, self.command, exc, self.stream) \
                from exc
        return False
