"""One program, many commands: dispatch on the name it was called by.

The frozen boot-media build is a single binary, ``deploytool``, with a link per
command (``rdeploy -> deploytool``), in the manner of busybox:

    rdeploy capture /dev/sda img.rdi        # called through the link
    deploytool rdeploy capture /dev/sda img.rdi
    deploytool --list                       # the command names, one a line

Called by a command's name, the arguments go to that command unchanged.
Called by any other name, the first argument names the command.

Each command is a module with ``main(argv=None) -> int``; the modules are
imported only when chosen, so a link starts only the command it names.  The
freeze recipe (deploytool/recipe/deploytool.spec) reads COMMANDS to know what to bundle and
which links to make: adding a command is one line here.

A binary with an image appended (``imgx sfx``) runs deploytool.selfrestore
instead: it restores the image it carries.

Exit codes of the dispatcher itself: 0 for --list, --help, --version and
no arguments at all (the usage with the command names);
2 for an unknown command name; 1 when a listed command is missing from the
build.  Everything else is the command's own exit code.
"""

import importlib
import os
import sys

#: command name -> module holding ``main(argv=None) -> int``
COMMANDS = {
    "rdeploy": "rdeploy.cli",
    "imgx": "imgx.cli",
    "bootdisk": "bootdisk.cli",
    "pxeconf": "pxeconf.cli",
    "bwpart": "bwpart.cli",
}

MULTICALL_NAME = "deploytool"


def _usage(prog):
    names = "\n".join(f"  {name}" for name in COMMANDS)
    return (
        f"Usage: {prog} COMMAND [ARGS...]\n"
        f"       {prog} --list | --help | --version\n"
        f"       COMMAND [ARGS...]   (through a link named after the command)\n"
        f"\n"
        f"Commands:\n{names}\n"
    )


def _version():
    try:
        from diskimage import __version__
    except ImportError:  # pragma: no cover - the library is always bundled
        return "unknown"
    return __version__


def _carries_image(path):
    """Whether this binary is a self-restoring image (imgx sfx)."""
    from diskimage.image.volumes import sfx_window
    try:
        with open(path, "rb") as f:
            return sfx_window(f.fileno()) is not None
    except OSError:
        return False


def run_command(name, argv, prog=None):
    """Import the module of command *name* and return its ``main(argv)``.

    *prog* is the name shown in messages (default: the command's name).
    Unknown names and a command module missing from the build give a
    one-line message on stderr and exit codes 2 and 1.
    """
    prog = prog or name
    module_name = COMMANDS.get(name)
    if module_name is None:
        known = ", ".join(COMMANDS)
        print(f"{prog}: error: unknown command {name!r} (one of: {known}); "
              f"see '{prog} --help'", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the command's own module being absent is "not in this build";
        # a missing dependency deeper down is a real bug and keeps its traceback.
        missing = exc.name or ""
        if missing != module_name and not module_name.startswith(missing + "."):
            raise
        print(f"{prog}: error: command {name!r} is not in this build ({exc})",
              file=sys.stderr)
        return 1
    result = module.main(list(argv), exiting=True)    # its last act
    return 0 if result is None else int(result)


def main(argv=None, prog=None):
    """Run the command named by *prog* (default ``sys.argv[0]``) or, when
    *prog* names no command, by the first element of *argv* (default
    ``sys.argv[1:]``).  Returns the exit code."""
    if prog is None:
        prog = sys.argv[0] if sys.argv and sys.argv[0] else MULTICALL_NAME
    if argv is None:
        argv = sys.argv[1:]
    argv = list(argv)
    if getattr(sys, "frozen", False) and _carries_image(sys.executable):
        from deploytool.selfrestore import run
        return run(sys.executable, argv)
    called_as = os.path.basename(prog)
    if called_as.endswith(".py"):  # python -m deploytool, recipe/entry.py
        called_as = MULTICALL_NAME

    if called_as in COMMANDS:
        return run_command(called_as, argv)

    if not argv:
        sys.stdout.write(_usage(called_as))
        return 0
    first = argv[0]
    if first in ("-l", "--list"):
        print("\n".join(COMMANDS))
        return 0
    if first in ("-h", "--help"):
        sys.stdout.write(_usage(called_as))
        return 0
    if first == "--version":
        print(f"{called_as} {_version()}")
        return 0
    if first.startswith("-"):
        print(f"{called_as}: error: unknown option {first}; see "
              f"'{called_as} --help'", file=sys.stderr)
        return 2
    if first not in COMMANDS:
        known = ", ".join(COMMANDS)
        if called_as.startswith(MULTICALL_NAME):
            what = f"unknown command {first!r}"
        else:  # most likely a link named after a command this build lacks
            what = f"no command named {called_as!r} or {first!r}"
        print(f"{called_as}: error: {what} (one of: {known}); see "
              f"'{called_as} --help'", file=sys.stderr)
        return 2
    # Commands that look at sys.argv[0] see their own name, as through a link.
    if sys.argv and prog == sys.argv[0]:
        sys.argv = [first] + argv[1:]
    return run_command(first, argv[1:], prog=called_as)


if __name__ == "__main__":
    sys.exit(main())
