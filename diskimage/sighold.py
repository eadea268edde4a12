"""Holding back the signals that end a command (Ctrl-C, SIGTERM, SIGHUP)
for a step that must not be cut in half: a loop device attached or
detached, a filesystem mounted or unmounted.  Python does not wait for a
tool it was running when interrupted, so the tool could attach or mount
after our clean-up had run, or its output (the loop device's name) would
be lost.  A signal that comes meanwhile is delivered as soon as the step
is over.

Two things hold it, because one is not enough:

* the signals are blocked in the main thread (and so in the tools it
  starts, which inherit the mask: a Ctrl-C at the terminal, sent to the
  whole process group, does not kill them half way);
* their Python handlers are swapped for one that only notes the signal.
  A signal blocked in the main thread is delivered to any other thread
  that has it unblocked (tqdm's monitor, a pipeline feeder still waiting
  on a pipe), and Python then runs the handler in the main thread at once,
  in the middle of the step.

When the step is over the noted signals are raised again (pending in the
main thread while it still blocks them), the handlers are put back and the
mask is restored: each signal is then handled once, as if it had come
just now.
"""

import contextlib
import signal
import threading

HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def hold():
    """Start holding; returns what release() needs (None off the main
    thread, where Python runs no handlers and the mask is the thread's
    own)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    caught = []
    handlers = {}

    def note(signum, frame):
        caught.append(signum)

    for signum in HELD:
        if callable(signal.getsignal(signum)):
            handlers[signum] = signal.getsignal(signum)
            raised = _install(signum, note)
            if raised is not None:      # it came before the hold
                release((mask, handlers, caught))
                raise raised
    return mask, handlers, caught


def release(held):
    """Stop holding; a signal that came meanwhile is handled now (its
    handler raises here or just after)."""
    if held is None:
        return
    mask, handlers, caught = held
    try:
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)   # pending: this thread blocks it
    finally:
        try:
            raised = None
            for signum, handler in handlers.items():
                raised = _install(signum, handler) or raised
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if raised is not None:
            raise raised


def _install(signum, handler):
    """signal.signal(signum, handler), which first runs the handlers of
    signals that have come (and fails if one raises, installing nothing):
    install it all the same, and return what was raised."""
    raised = None
    for _ in range(10):
        try:
            signal.signal(signum, handler)
            return raised
        except (KeyboardInterrupt, SystemExit) as exc:
            raised = raised or exc
    signal.signal(signum, handler)
    return raised


@contextlib.contextmanager
def held():
    """The signals held back inside the block (see the module's text)."""
    state = hold()
    try:
        yield
    finally:
        release(state)


# The moment of commit.  Once a command's output is whole under its final
# name (a rename of IMAGE.partial to IMAGE, of a new image over the old, a
# restore written and synced), an interrupt can no longer undo the job:
# cleaning up would remove nothing, and saying "interrupted" would be false.
# The commit step calls committed() as its last act, with the signals held;
# from then until new work is started (started(): a new partial file, a
# restore, each later stage of a command such as rdeploy demo's verify), the
# runner (cliutil/runner.py) only notes a signal and lets the job finish,
# then says the output is whole.  The runner resets the state at the start
# of every run, so it never carries from one main() call into the next.
# This is the process's own state of its signals, so it lives here beside
# them.
_committed = []
_after_commit = [False]
_late = []      # signals noted after a commit, before new work started


def committed(name):
    """`name` is now whole under its final name (call with the signals
    held, as the last step of the commit)."""
    _after_commit[0] = True     # first: a signal between the two is noted
    _committed.append(str(name))


def started():
    """New work begins (a new output, a later stage after a commit): an
    interrupt stops and undoes it again.  A signal noted since the commit
    (late()) is raised again now: the user asked to stop, and the new
    work has not begun (its handler raises here, or where the signals
    are released when they are held)."""
    _after_commit[0] = False
    pending = list(dict.fromkeys(_late))
    del _late[:]
    for signum in pending:
        signal.raise_signal(signum)


def late(signum):
    """The runner noted `signum` after a commit (see started())."""
    _late.append(signum)


def withdrawn(name):
    """`name`, committed earlier in this run, was removed again (the demo
    cleaning up): no longer said to be whole."""
    name = str(name)
    while name in _committed:
        _committed.remove(name)


def forget_committed():
    """Forget every name committed so far, without a new start: a service
    that writes files of its own (pxeconf serve's configs) clears them so
    that an interrupt is not answered with "output is whole".  Unlike
    reset(), a signal noted after a commit (late()) is kept, for the next
    started() to raise; unlike withdrawn() name by name, it takes one
    step, so names committed meanwhile by other threads are not missed
    between a look and a removal."""
    del _committed[:]


def reset():
    """A new run: nothing committed, signals undo again (cliutil.runner
    calls it as each run starts)."""
    _after_commit[0] = False
    del _committed[:]
    del _late[:]


def after_commit():
    """True between a commit and the next output started."""
    return _after_commit[0]


def committed_names():
    """The outputs made whole so far, in order."""
    return list(_committed)
