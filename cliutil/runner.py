"""The one place where the commands turn exceptions into a one-line message
on stderr and a documented exit code.

Exit codes (every command's --help and docs/rdeploy.md repeat them)::

    0    success
    1    other failure (an I/O error)
    2    usage error
    3    bad input: missing or unusable source, not an image, a terminal
    4    the image is damaged: checksum, truncated, bad record
    5    target refused: too small, mounted, the source, unconfirmed
    6    no space left on the output, or a write failed
    7    unsupported image version or codec
    8    failed after the first write: the target was changed (no valid table)
    9    busy: another process is writing or editing the same file
    70   internal error (a bug; set RDEPLOY_DEBUG=1 for the traceback)
    129  interrupted by SIGHUP (the terminal went away)
    130  interrupted (Ctrl-C)
    143  interrupted by SIGTERM (kill, a service manager)
    141  broken pipe (the reader went away); nothing is printed
"""

import contextlib
import os
import signal
import sys
import threading
import traceback

from docopt import DocoptExit

from diskimage.errors import DiskImageError, UsageError

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


#: Signals that end a command the way Ctrl-C does: every clean-up that
#: runs for KeyboardInterrupt runs for them too.
CLEANUP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread where it is running.
    A KeyboardInterrupt, so that every path that cleans up after Ctrl-C
    (``except BaseException``: .partial files, created targets, wiped
    tables, loop devices, mounts) cleans up after these alike."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _debug():
    return bool(os.environ.get("RDEPLOY_DEBUG"))


@contextlib.contextmanager
def _signals_raise():
    """While the command runs, SIGTERM and SIGHUP raise Terminated once (a
    second one, during the clean-up, is ignored); a signal that was
    ignored when we started (nohup) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = []

    def handler(signum, frame):
        if not raised:
            raised.append(signum)
            raise Terminated(signum)

    old = {}
    for signum in CLEANUP_SIGNALS:
        if signal.getsignal(signum) != signal.SIG_IGN:
            old[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, previous in old.items():
            signal.signal(signum, previous)


def _interrupted(prog, exc):
    signum = getattr(exc, "signum", signal.SIGINT)
    how = "" if signum == signal.SIGINT else \
        f" by {signal.Signals(signum).name}"
    try:
        print(f"{prog}: interrupted{how}; nothing was left that looks "
              f"complete", file=sys.stderr)
    except OSError:         # SIGHUP: the terminal may be gone
        pass
    return 128 + signum


def run(prog, main, argv):
    """Call main(argv) and map what it raises to (message, exit code)."""
    try:
        with _signals_raise():
            return main(argv) or 0
    except DocoptExit as exc:
        print(str(exc).strip(), file=sys.stderr)
        return 2
    except DiskImageError as exc:
        if _debug():
            traceback.print_exc()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(prog, exc)
    except BrokenPipeError:
        # Stop Python's own complaint at exit when stdout is already gone.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if _debug():
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prog}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: say so, briefly, unless debugging
        if _debug():
            traceback.print_exc()
        print(f"{prog}: internal error: {type(exc).__name__}: {exc} "
              f"(set RDEPLOY_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def dispatch(doc, argv, version, commands):
    """Parse `argv` with the docopt usage `doc` and call the function of
    the command word that is set; `commands` maps words to functions."""
    from docopt import docopt

    args = docopt(doc, argv=argv, version=version)
    for name, command in commands.items():
        if args[name]:
            return command(args)
    raise UsageError("no command given")


def whole_number(value, name):
    """An option's value as a whole number of at least 1."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} takes a whole number, not {value!r}") \
            from None
    if number < 1:
        raise UsageError(f"{name} must be at least 1")
    return number
