"""The one place where the commands turn exceptions into a one-line message
on stderr and a documented exit code.

Exit codes (the one table of the toolkit: docs/rdeploy.md, imgx.md and
bootdisk.md repeat it, made from here by deploytool/docgen.py, and every
command's --help names the codes it uses)::

    0    success
    1    other failure: an I/O error (a read or a write that failed), an
         external tool that failed (the message ends with what it said)
    2    usage error
    3    bad input: missing or unusable source, not an image, a directory,
         a terminal where data must flow, a partition that does not exist
    4    damaged image: checksum mismatch, truncated, bad record, digest
         mismatch
    5    target refused: too small, mounted or in use, the image itself,
         another sector size, a layout that would move MBR logical
         partitions whose EBR chain cannot be kept, not confirmed; nothing
         was written
    6    no space left on the output (a full filesystem, a quota, a file
         size limit)
    7    unsupported: an image format version, codec or checksum algorithm
         this tool does not read (zstd without the zstandard package), a
         filesystem imgx cannot browse
    8    failed after the first write to the target: the target was changed
         and is not usable (a restore wipes the table first, so it has no
         valid table); the message says why
    9    busy: another process is writing the same image or editing it
    10   an external tool that is needed is not installed: the message
         names it and the Debian package that provides it (PyInstaller,
         which freezes the toolkit: the pip extra that installs it)
    11   signature refused: a required signature is missing, bad, by a key
         that is not trusted, for another image, on a format 1.0 image or
         a pipe (rdeploy restore --require-signature, media made with
         bootdisk --trust, rdeploy verify --pubkey); nothing was written
    12   an encrypted image without its passphrase, or a wrong one;
         nothing was written
    13   the target holds an interrupted restore (its restore marker):
         rdeploy verify-target names the image and how far it got;
         rdeploy restore ... --resume finishes it
    14   the target differs from the image it is compared with (rdeploy
         verify-target TARGET IMAGE): the message names the first disk
         offset that differs
    15   a network source or session failed: a URL unreadable after its
         retries, refused by its server, a TLS certificate that does not
         verify, an image that changed on its server while being read; a
         multicast session that did not start or dropped this receiver
         (its disk is left marked incomplete)
    16   delta restore refused: the target's layout is not the image's
         (the message says what differs); nothing was written
    70   internal error (a bug; RDEPLOY_DEBUG=1 prints the traceback)
    129  interrupted by SIGHUP (the terminal went away); cleaned up as on Ctrl-C
    130  interrupted (Ctrl-C); partial files are removed
    141  broken pipe: the reader of stdout went away; nothing is printed
    143  interrupted by SIGTERM (kill, a service manager); cleaned up as on
         Ctrl-C
"""

import contextlib
import os
import signal
import sys
import threading
import traceback

from docopt import DocoptExit

from diskimage import lingering, sighold
from diskimage.errors import DiskImageError, UsageError

from .progress import Reported
from .text import safe

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130     # 128 + SIGINT; SIGTERM and SIGHUP give 143, 129
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
def _signals_raise(late, exiting=True):
    """While the command runs, SIGINT raises KeyboardInterrupt and SIGTERM
    and SIGHUP raise Terminated once (a second one, during the clean-up,
    is ignored); a signal that was ignored when we started (nohup, a
    background job) stays ignored.

    After a commit (diskimage.sighold.committed: the output is whole under
    its final name) a signal is only noted in `late`: the job is done, and
    turning it into a failure, or cleaning up, would be false; if new work
    then starts (sighold.started: a later stage, another output) the
    signal is raised again there and stops it.  The
    handlers stay installed when the block ends (run() is the process's
    last act): a signal that comes after main returned, while the process
    exits, is noted too and never kills it with the default action."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = []
    over = []

    def handler(signum, frame):
        if over or sighold.after_commit():
            late.append(signum)
            if not over:
                sighold.late(signum)    # raised again if new work starts
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not raised:
            raised.append(signum)
            raise Terminated(signum)

    old = {}
    for signum in CLEANUP_SIGNALS:
        if signal.getsignal(signum) != signal.SIG_IGN:
            old[signum] = signal.signal(signum, handler)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        old[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        over.append(True)
        if not exiting:
            for signum, previous in old.items():
                signal.signal(signum, previous)


def _late(prog, late, argv):
    """Say that a signal came once the work was whole (not in JSON mode,
    whose end event already told the outcome)."""
    names = sighold.committed_names()
    if not late or not names or _wants_json(argv):
        return
    what = "Ctrl-C" if late[0] == signal.SIGINT else \
        signal.Signals(late[0]).name
    whole = ", ".join(safe(name) for name in names)
    try:
        print(f"{prog}: {what} came after the work was complete; not "
              f"undone: {whole} is whole", file=sys.stderr)
    except OSError:         # SIGHUP: the terminal may be gone
        pass


def _interrupted(prog, exc):
    message, code = describe(prog, exc)
    try:
        print(f"{prog}: {safe(message)}", file=sys.stderr)
    except OSError:         # SIGHUP: the terminal may be gone
        pass
    return code


def run(prog, main, argv, exiting=True):
    """Call main(argv) and map what it raises to (message, exit code).
    `exiting`: the process exits when run() returns, so the signal
    handlers stay (see _signals_raise); False (main(argv) called in a
    process that goes on, such as a test) puts the previous ones back.
    An exiting run that kept an object whose teardown may hang
    (diskimage.lingering: a libtorrent session) exits here, its output
    flushed, without Python's teardown."""
    code = _run(prog, main, argv, exiting)
    if exiting and lingering.kept():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return code


def _run(prog, main, argv, exiting):
    late = []
    sighold.reset()     # an earlier run's commit is not this run's
    try:
        with _signals_raise(late, exiting):
            code = main(argv) or 0
        if code == 0:
            _late(prog, late, argv)
        return code
    except Reported as exc:     # already told as a JSON error event
        if isinstance(exc.__cause__, BrokenPipeError):
            _drop_stdout()
        return exc.exit_code
    except DocoptExit:
        # dispatch() turns docopt's refusals into UsageError; this is for a
        # parser that does not go through it: one line all the same.
        print(f"{prog}: error: the arguments do not fit its usage; "
              f"see '{prog} --help'", file=sys.stderr)
        return 2
    except DiskImageError as exc:
        if _debug():
            traceback.print_exc()
        message = str(exc)
        if isinstance(exc, UsageError) and "see '" not in message:
            message += f"; see '{prog} --help'"
        print(f"{prog}: error: {safe(message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(prog, exc)
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if _debug():
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prog}: error: {safe(where)}{safe(exc.strerror or exc)}",
              file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: say so, briefly, unless debugging
        if _debug():
            traceback.print_exc()
        print(f"{prog}: internal error: {type(exc).__name__}: {safe(exc)} "
              f"(set RDEPLOY_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def describe(prog, exc, command=None):
    """(message, exit code) of `exc` as run() reports it, for the JSON
    error event of --progress=json (run() prints the same words; a usage
    error of `command` points to `PROG COMMAND --help`, as dispatch()
    makes the text line do)."""
    if isinstance(exc, DocoptExit):
        return "the arguments do not fit its usage", 2
    if isinstance(exc, DiskImageError):
        message = str(exc)
        if isinstance(exc, UsageError) and "see '" not in message:
            where = f"{prog} {command}" if command else prog
            message += f"; see '{where} --help'"
        return message, exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        signum = getattr(exc, "signum", signal.SIGINT)
        how = "" if signum == signal.SIGINT else \
            f" by {signal.Signals(signum).name}"
        whole = sighold.committed_names()
        if getattr(exc, "done", None):      # what a library call wrote
            return f"{exc.done} (interrupted{how})", 128 + signum
        if whole:       # an earlier output of this run (a PXE bundle's)
            return (f"interrupted{how}; already whole: {', '.join(whole)}; "
                    f"nothing else was left that looks complete"), \
                128 + signum
        return f"interrupted{how}; nothing was left that looks complete", \
            128 + signum
    if isinstance(exc, BrokenPipeError):
        return "broken pipe: the reader of stdout went away", \
            EXIT_BROKEN_PIPE
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", 1
    return (f"internal error: {type(exc).__name__}: {exc} (set "
            f"RDEPLOY_DEBUG=1 for a traceback)"), EXIT_INTERNAL


def _wants_json(argv):
    words = argv[:argv.index("--")] if "--" in argv else argv
    return "--progress=json" in words or any(
        a == "--progress" and b == "json" for a, b in zip(words, words[1:]))


def parse(doc, argv, version):
    """docopt's reading of `argv`; a refusal becomes one UsageError that
    names the problem and points to the help (never docopt's dump).
    `PROG help [COMMAND]` and `PROG COMMAND --help` print the help (and
    raise SystemExit(0), as docopt's --help does)."""
    from docopt import DocoptLanguageError, docopt

    from .usage import Usage, command_help
    from .usageerrors import diagnose, precheck

    usage = Usage(doc)
    words = argv[:argv.index("--")] if "--" in argv else argv
    if argv and argv[0] == "help":
        if len(argv) == 1:
            _print_help(doc.strip("\n"))
        if len(argv) > 2 and argv[1] in usage.commands:
            raise UsageError(f"help: unexpected argument {argv[2]!r}")
        if len(argv) > 2 or argv[1] not in usage.commands:
            what = argv[1] if len(argv) == 2 else " ".join(argv[1:])
            raise UsageError(f"help: no command {what!r} (one of: "
                             f"{', '.join(usage.commands)})")
        _print_help(command_help(usage, argv[1]))
    if argv and argv[0] in usage.commands and argv[0] != "help" and \
            {"-h", "--help"} & set(words):
        _print_help(command_help(usage, argv[0]))
    refused = precheck(usage, argv)
    if refused is None:
        try:
            return docopt(doc, argv=argv, version=version)
        except (DocoptExit, DocoptLanguageError) as exc:
            if isinstance(exc, DocoptLanguageError) and \
                    "prefix" not in str(exc) and "ambiguous" not in str(exc):
                raise   # the usage text itself is wrong: a bug
            refused = diagnose(usage, argv)
    problem, command = refused
    where = f"{usage.prog} {command.name}" if command else usage.prog
    error = UsageError(f"{problem}; see '{where} --help'")
    error.command = command.name if command else None
    raise error


def _print_help(text):
    print(text)
    raise SystemExit(0)


def _drop_stdout():
    """Stop Python's own complaint at exit when stdout is already gone."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        pass


def dispatch(doc, argv, version, commands):
    """Parse `argv` with the docopt usage `doc` (see parse()) and call the
    function of the command word that is set; `commands` maps words to
    functions.  A UsageError from the command points to its help."""
    prog = doc.split(None, 1)[0]
    try:
        args = parse(doc, argv, version)
    except UsageError as exc:
        if not _wants_json(argv):
            raise
        from .progress import error_event
        raise error_event(prog, getattr(exc, "command", None), exc) \
            from None
    for name, command in commands.items():
        if args.get(name):
            try:
                return command(args)
            except UsageError as exc:
                # Raised before the command's Progress (its values are
                # converted first): in JSON mode an error event all the
                # same, with the words of the text line.
                if _wants_json(argv):
                    from .progress import error_event
                    raise error_event(prog, name, exc) from None
                if "see '" in str(exc):
                    raise
                raise UsageError(f"{exc}; see '{prog} {name} --help'") \
                    from None
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
