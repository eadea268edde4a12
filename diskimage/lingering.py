"""Objects whose teardown must not run in this process: a libtorrent
session, whose ~session joins its network thread, which was seen to
wait for minutes after its work was done (holding the GIL, so no other
thread could go on).  They are kept here, and a command that ends with
one kept exits without Python's teardown (cliutil.runner, os._exit after
its output is flushed)."""

_KEPT = []


def keep(obj):
    """Keep `obj` alive until the process exits."""
    _KEPT.append(obj)


def kept():
    """Whether anything is kept (the process must exit without teardown)."""
    return bool(_KEPT)
