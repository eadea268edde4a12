"""bwpart's option values, converted and checked once, before any disk is
opened (a usage error comes before "no such disk"), and what the
subcommands share: the step printer, the confirmation, the service
partition of DISK."""

import sys

from cliutil.runner import whole_number
from cliutil.confirm import typed_yes
from cliutil.text import safe
from diskimage.errors import TargetError, UsageError
from diskimage.service import layout

MIB = layout.MiB
FIRMWARES = layout.FIRMWARES
EFI_LOADERS = layout.EFI_LOADERS


def size(args):
    """--size in bytes (a multiple of 1 MiB, at least the layout's
    minimum), or None."""
    from diskimage.sizes import parse_size_at_least

    text = args["--size"]
    if text is None:
        return None
    least = layout.MIN_SIZE
    value = parse_size_at_least(text, least, "--size", f"{least // MIB}M")
    if value % MIB:
        raise UsageError(f"--size must be a multiple of 1M, not {text!r}")
    return value


def number(args, option):
    value = args.get(option)
    return None if value is None else whole_number(value, option)


def choice(args, option, choices):
    value = args.get(option)
    if value is not None and value not in choices:
        raise UsageError(f"{option} takes {' or '.join(choices)}, "
                         f"not {value!r}")
    return value


def firmware(args):
    return choice(args, "--firmware", FIRMWARES)


def steps(always=False):
    """The progress(step_text) callback for the library: each step as a
    "bwpart: ..." line on stderr, on a terminal only (`always`: whatever
    stderr is, as service-boot's console lines), else None."""
    if not always and not sys.stderr.isatty():
        return None

    def progress(text):
        print(f"bwpart: {safe(text)}", file=sys.stderr, flush=True)
    return progress


def confirm(args, command, what):
    """A destructive `command` goes on with --yes, or when a terminal user
    types yes to `what`; otherwise TargetError (nothing written)."""
    if args["--yes"]:
        return
    disk = args["DISK"]
    if not sys.stdin.isatty():
        raise TargetError(f"{command} needs --yes to change {disk} (no "
                          f"terminal to ask on); nothing written")
    typed_yes(f"bwpart: about to {what}.", disk)


def service(disk):
    """The service partition of `disk`; TargetError when it has none."""
    from diskimage.service.partition import find_service

    found = find_service(disk)
    if found is None:
        raise TargetError(f"{disk}: no service partition (bwpart install "
                          f"first)")
    return found
