"""Helpers for tests that interrupt a command: give the child the signals
back, and send a signal when the work is known to be in progress rather
than after a fixed sleep (which a loaded machine turns into "finished
before the signal" or "signal before the work").

Why the first: a background job of a non-interactive shell (`make test &`,
a CI runner, nohup for SIGHUP) starts with SIGINT (or SIGHUP) ignored, and
every child inherits that; Python then installs no KeyboardInterrupt
handler and the runner keeps an ignored SIGTERM/SIGHUP ignored, as a Unix
command should.  A test that means to interrupt must not depend on how the
suite itself was started."""

import json
import signal
import time

#: The signals the commands clean up after (cliutil/runner.py).
CLEANUP = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def default_signals():
    """preexec_fn: the child starts with the clean-up signals at their
    defaults and unblocked, whatever the test runner inherited."""
    for signum in CLEANUP:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CLEANUP)


#: Keyword arguments for subprocess.Popen of a command a test interrupts.
INTERRUPTIBLE = {"preexec_fn": default_signals}


def wait_for(condition, timeout=60.0, what="the condition"):
    """Poll condition() every 10 ms until it is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def progress_until(stream, ready, seen):
    """Read JSON lines from `stream` (a --progress=json stderr, text mode)
    into `seen` until ready(event) is true for one; return that event.
    Fails if the stream ends first (the command finished or failed before
    the moment the test waits for)."""
    for line in stream:
        event = json.loads(line)
        seen.append(event)
        if ready(event):
            return event
        assert event["event"] in ("progress", "warning"), seen
    raise AssertionError(f"the command ended before the moment: {seen}")


def in_progress(task=None, before=0.5):
    """ready() for progress_until: a progress event (of `task`, if given)
    past 0 and before `before` of the total, so that most of the work is
    still to come when the signal lands."""
    def ready(event):
        return event["event"] == "progress" and \
            (task is None or event["task"] == task) and \
            0 < event["done"] < before * event["total"]
    return ready


def interrupted_event(events, returncode, sig):
    """The run ended by `sig` as --progress=json tells it: one error event
    last, exit 128 + sig, saying "interrupted"; JSON lines only."""
    error = events[-1]
    assert error["event"] == "error", events
    assert error["exit_code"] == 128 + sig == returncode, (returncode, events)
    assert "interrupted" in error["message"], error
    assert all(e["event"] in ("progress", "warning") for e in events[:-1])
    return error


#: A child that runs `python -m MODULE ARGS...` and sends itself SIG at a
#: moment of the commit, so that the signal lands there whatever the load:
#: ``step N`` just after the Nth rename (os.replace, os.rename or os.link
#: to a name that is not a partial or private file) or the Nth removal of
#: a later volume (NAME.rNN) has really been done; ``partial N`` just after
#: the Nth link of a private file to its NAME.partial (diskimage.host.partial:
#: the partial has its name, its fd not yet returned); ``exit`` just after
#: cliutil.runner.run() returned, as the process exits.  The renames run
#: as they are; only the signal's moment is chosen.
#: Usage: [sys.executable, "-c", AT_COMMIT, SIG, MOMENT, N, MODULE, *ARGS]
AT_COMMIT = r"""
import os, re, runpy, signal, sys
sig, moment, nth, module = int(sys.argv[1]), sys.argv[2], \
    int(sys.argv[3]), sys.argv[4]
sys.argv = [module] + sys.argv[5:]
seen = [0]

def counted(name, where):
    real = getattr(os, name)
    def call(*args, **kwargs):
        result = real(*args, **kwargs)
        path = os.fspath(args[where])
        final = not re.search(r"\.partial(\.\d+\.[0-9a-f]+)?$", path)
        if name == "unlink":
            final = bool(re.search(r"\.r\d\d$", path))
        if name == "link" and moment == "partial":
            final = path.endswith(".partial")
        elif moment == "partial":
            final = False
        if final and moment in ("step", "partial"):
            seen[0] += 1
            if seen[0] == nth:
                os.kill(os.getpid(), sig)
        return result
    setattr(os, name, call)

for name in ("replace", "rename", "link"):
    counted(name, 1)
counted("unlink", 0)
import cliutil.runner
real_run = cliutil.runner.run

def run(*args, **kwargs):
    code = real_run(*args, **kwargs)
    if moment == "exit":
        os.kill(os.getpid(), sig)
        for _ in range(100000):
            pass
    return code

cliutil.runner.run = run
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""
