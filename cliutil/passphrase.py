"""Where a command gets the passphrase of an encrypted image.

In order: ``--passphrase-file=F`` (its first line, without the line end),
``--passphrase-env=VAR`` (that variable's value), else a prompt on the
controlling terminal (/dev/tty, so that it works while stdin is the image
of a pipe), asked twice when a new image is encrypted.  No terminal and no
option: PassphraseError (exit 12) naming the two options when reading an
encrypted image, UsageError (exit 2) when a passphrase to encrypt with is
asked for.

The library never prompts: it gets the zero-argument callable made here
and calls it only when the image turns out to be encrypted; the callable
asks (or reads) once and remembers the answer for the rest of the command.
"""

import os

from diskimage.errors import InputError, PassphraseError, UsageError

OPTIONS = "--passphrase-file=F or --passphrase-env=VAR"
TTY = "/dev/tty"


def _from_file(path):
    try:
        with open(path, "rb") as f:
            line = f.readline(64 * 1024 + 2)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the passphrase file "
                         f"({exc.strerror})") from None
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line:
        raise UsageError(f"{path}: the passphrase file's first line is "
                         f"empty")
    return line


def _from_env(name):
    value = os.environb.get(name.encode())
    if value is None:
        raise UsageError(f"--passphrase-env={name}: {name} is not set")
    if not value:
        raise UsageError(f"--passphrase-env={name}: {name} is empty")
    return value


def _ask(tty, prompt):
    """One line read from the terminal with echo off."""
    import termios
    fd = tty.fileno()
    old = termios.tcgetattr(fd)
    new = termios.tcgetattr(fd)
    new[3] &= ~termios.ECHO
    try:
        # echo off before the prompt is shown: TCSAFLUSH drops what was
        # typed before it, so after it would drop a quick answer
        termios.tcsetattr(fd, termios.TCSAFLUSH, new)
        tty.write(prompt.encode())
        tty.flush()
        line = tty.readline()
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, old)
        tty.write(b"\n")
        tty.flush()
    return line.rstrip(b"\r\n")


def _prompt(what, twice):
    try:
        tty = open(TTY, "r+b", buffering=0)
    except OSError:
        # Reading an encrypted image without its passphrase is exit 12
        # (the toolkit's table); asking for one to encrypt with is usage.
        cls = UsageError if twice else PassphraseError
        raise cls(f"{what} needs a passphrase: give {OPTIONS} "
                  f"(there is no terminal to ask on)") from None
    with tty:
        first = _ask(tty, f"Passphrase for {what}: ")
        if not first:
            raise UsageError("empty passphrase")
        if twice and _ask(tty, "Again, to be sure: ") != first:
            raise UsageError("the two passphrases differ")
    return first


class Passphrase:
    """The callable the library is given (see module doc)."""

    def __init__(self, file=None, env=None, *, what="the image",
                 encrypting=False):
        if file and env:
            raise UsageError("give --passphrase-file or --passphrase-env, "
                             "not both")
        self.file, self.env = file, env
        self.what, self.encrypting = what, encrypting
        self._value = None

    @property
    def given(self):
        """True when an option names the source (no prompt needed)."""
        return bool(self.file or self.env)

    def __call__(self):
        if self._value is None:
            if self.file:
                self._value = _from_file(self.file)
            elif self.env:
                self._value = _from_env(self.env)
            else:
                self._value = _prompt(self.what, self.encrypting)
        return self._value


def from_args(args, *, what="the image", encrypting=False):
    """The Passphrase of a docopt result's --passphrase-file and
    --passphrase-env (keys absent from a usage count as not given)."""
    return Passphrase(args.get("--passphrase-file"),
                      args.get("--passphrase-env"), what=what,
                      encrypting=encrypting)
