"""Waits that a raising signal handler leaves whole.

cliutil.runner turns Ctrl-C, SIGTERM and SIGHUP into an exception raised
in the main thread wherever it is.  threading.Event.wait, queue.Queue.get
and Future.result wait in threading.Condition.wait, which such an
exception can cut between its release of the lock and its `try`; the
`with` around it then releases the lock a second time and the command
dies of "RuntimeError: cannot release un-acquired lock" (exit 70) instead
of being interrupted.  queue.SimpleQueue waits in C, and an exception
raised while it waits leaves nothing half done: the main thread waits
only on it (diskimage.pipeline, netboot's serve).
"""

import queue


class Flag:
    """threading.Event's set, is_set and wait, for a main thread that
    signals interrupt: it waits in queue.SimpleQueue.get."""

    def __init__(self):
        self._set = False
        self._wake = queue.SimpleQueue()

    def set(self):
        self._set = True
        self._wake.put(True)

    def is_set(self):
        return self._set

    def wait(self, timeout=None):
        """True once set; False if `timeout` seconds passed first."""
        if self._set:
            return True
        try:
            self._wake.get(timeout=timeout)
        except queue.Empty:
            return self._set
        self._wake.put(True)        # every other waiter wakes too
        return True
