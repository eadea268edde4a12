"""Byte sizes as people write them: 650M, 2G, 4096, 1.5GiB."""

import re

from .errors import UsageError

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.I)


def parse_size(text):
    """Bytes in `text`; K, M, G, T are powers of 1024."""
    match = _SIZE.match(text or "")
    if not match:
        raise UsageError(f"not a size: {text!r} (try 650M, 2G or 4096)")
    number, unit = match.groups()
    value = int(float(number) * _UNITS[unit.upper()])
    if value <= 0:
        raise UsageError(f"size must be more than zero: {text!r}")
    return value


def parse_size_at_least(text, minimum, option, smallest):
    """Bytes in `text` for `option`, which takes at least `minimum` bytes
    (`smallest` is how that is written, e.g. "4K"); zero and other too
    small sizes get the same usage error."""
    match = _SIZE.match(text or "")
    if not match:
        raise UsageError(f"{option}: not a size: {text!r} (try 650M, 2G)")
    number, unit = match.groups()
    value = int(float(number) * _UNITS[unit.upper()])
    if value < minimum:
        raise UsageError(f"{option} must be at least {smallest} "
                         f"({minimum} bytes), not {text!r}")
    return value


def format_size(n):
    """A short human reading of n bytes: 512 B, 4.0 KiB, 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
