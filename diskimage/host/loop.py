"""Loop devices over byte ranges of a disk or disk file (``losetup -o
--sizelimit``: partition nodes do not appear without udev), attached and
detached with the signals that end a command held.  Nothing prints."""

import contextlib
import os

from .. import sighold
from .tools import run


@contextlib.contextmanager
def loop_device(path, start, size, read_only=True):
    """A loop device over bytes [start, start+size) of `path`, detached on
    exit."""
    args = ["losetup", "--find", "--show", "-o", str(start),
            "--sizelimit", str(size)]
    if read_only:
        args.append("--read-only")
    # Signals that end the command (Ctrl-C, SIGTERM, SIGHUP) wait while
    # losetup attaches and detaches: Python would kill it on one, and a
    # device attached before its name came back would be left behind.
    old = _hold_signals()
    try:
        dev = run(args + [os.fspath(path)]).stdout.strip()
    except BaseException:
        _release_signals(old)
        raise
    try:
        _release_signals(old)       # one that came meanwhile raises here
        yield dev
    finally:
        old = _hold_signals()
        try:
            run(["losetup", "-d", dev])
        finally:
            _release_signals(old)


def _hold_signals():
    """Hold the signals that end a command (sighold): the state to give
    _release_signals."""
    return sighold.hold()


def _release_signals(old):
    sighold.release(old)
