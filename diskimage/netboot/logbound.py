"""Log lines a flood cannot multiply: a server logs the 1st, 2nd, 4th, 8th
... event of one kind from one address (the count in the line says how
many there were), so a client that sends a million bad requests writes
about twenty lines, and a first refusal is always seen.
"""

import threading


class Sparse:
    """`count(key)`: how many times `key` was counted, and whether this one
    is to be logged (True at 1, 2, 4, 8 ...).  At most `keys` keys are
    kept; past that the counts start again (a flood from many addresses
    costs memory no more than it costs log lines)."""

    def __init__(self, keys=4096):
        self._lock = threading.Lock()
        self._counts = {}
        self.keys = keys

    def count(self, key):
        with self._lock:
            if key not in self._counts and len(self._counts) >= self.keys:
                self._counts.clear()
            n = self._counts.get(key, 0) + 1
            self._counts[key] = n
        return n, n & (n - 1) == 0

    def forget(self, key):
        """`key`'s count starts again (its flood is over)."""
        with self._lock:
            self._counts.pop(key, None)
