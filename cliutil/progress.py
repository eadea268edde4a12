"""Progress on stderr: a tqdm bar on a terminal, JSON lines for scripts, or
nothing.  The library only calls progress(done, total)."""

import json
import sys
import time

MODES = ("auto", "bar", "json", "none")


class Progress:
    """A progress(done, total) callback; call close() when the work ends."""

    def __init__(self, mode, label, quiet=False, stream=None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() and not quiet else "none"
        self.mode = mode
        self.label = label
        self.bar = None
        self.last = 0.0
        self.started = time.monotonic()
        self.done = 0
        self.total = 0

    def __call__(self, done, total):
        self.done, self.total = done, total
        if self.mode == "bar":
            if self.bar is None:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="B", unit_scale=True,
                                unit_divisor=1024, desc=self.label,
                                file=self.stream, dynamic_ncols=True)
            self.bar.update(done - self.bar.n)
        elif self.mode == "json":
            now = time.monotonic()
            if now - self.last >= 0.5 or done >= total:
                self.last = now
                self._json("progress")

    def _json(self, event):
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate else None
        print(json.dumps({
            "event": event, "task": self.label, "done": self.done,
            "total": self.total,
            "percent": round(100 * self.done / self.total, 1)
            if self.total else 100.0,
            "rate": round(rate), "eta": round(eta, 1) if eta is not None
            else None}), file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.mode == "json":
            self._json("end")
