"""The one question a destructive command asks on a terminal."""

import sys

from diskimage.errors import TargetError


def typed_yes(prompt, target):
    """Print `prompt` and "Type 'yes' to go on: " on stderr and read the
    answer from stdin; anything but yes is TargetError (exit 5) saying
    that nothing was written to `target`."""
    print(f"{prompt} Type 'yes' to go on: ", end="", file=sys.stderr,
          flush=True)
    if sys.stdin.readline().strip().lower() != "yes":
        raise TargetError(f"{target}: not confirmed; nothing written")
