"""Checks of the JSON fields bwpart reads back from a disk or a bundle.

The service partition's tail, its install.json and a bundle's
bundle.json are input: a disk that arrives with a forged record must
not make bwpart write outside what it owns, run anything unasked or
crash.  Each reader checks every field it will use, right after parsing,
with these: a wrong one is InputError naming the field and where it came
from (*where*: "DISK: service record (tail copy) at byte N", a file).

A *spec* is a callable ``check(value, name)`` raising :class:`Bad`;
:func:`obj` builds one for a dict of fields, and :func:`run` turns a
:class:`Bad` into the InputError the callers raise.
"""

import base64
import binascii
import re

from ..errors import InputError

#: The biggest byte count or offset a disk of today has (2**62: 4 EiB).
MAX_BYTES = 1 << 62
HEX64 = re.compile(r"[0-9a-f]{64}\Z")
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
#: GPT: the partition's unique GUID; MBR: "<disk signature>-<number>"
PART_ID = re.compile(GUID.pattern[:-2] + r"\Z|[0-9a-f]{8}-[0-9]{2}\Z")
BOOT_ENTRY = re.compile(r"Boot[0-9A-F]{4}\Z")
VARIABLE = re.compile(r"Boot[0-9A-F]{4}\Z|BootOrder\Z|BootNext\Z")
SLOT = re.compile(r"e[1-9][0-9]{0,5}\Z")
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}\Z")
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}\Z")


class Bad(InputError):
    """A field that fails its check: ``args[0]`` the field's dotted name,
    ``args[1]`` what is wrong with it."""


def run(spec, value, where, what="the JSON"):
    """*value* checked by *spec*; InputError naming the field and *where*
    (*what*: the value itself, when it is no field)."""
    try:
        spec(value, "")
    except Bad as bad:
        name = f"field {bad.args[0]}" if bad.args[0] else what
        raise InputError(f"{where}: {name} {bad.args[1]}") from None
    return value


def integer(low=0, high=MAX_BYTES):
    def check(value, name):
        if not isinstance(value, int) or isinstance(value, bool):
            raise Bad(name, f"is not an integer ({_short(value)})")
        if not low <= value <= high:
            raise Bad(name, f"is {value}, out of bounds ({low} to {high})")
    return check


def text(limit=256, pattern=None, choices=None):
    def check(value, name):
        if not isinstance(value, str):
            raise Bad(name, f"is not a string ({_short(value)})")
        if len(value) > limit:
            raise Bad(name, f"is {len(value)} characters long, more than "
                            f"{limit}")
        if choices is not None and value not in choices:
            raise Bad(name, f"is {_short(value)}, not one of "
                            f"{', '.join(choices)}")
        if pattern is not None and not pattern.match(value):
            raise Bad(name, f"{_short(value)} is not of the form "
                            f"{pattern.pattern!r}")
    return check


def b64(limit):
    """Base64 text of at most *limit* bytes once decoded."""
    def check(value, name):
        text(limit * 4 // 3 + 4)(value, name)
        try:
            base64.b64decode(value.encode("ascii"), validate=True)
        except (ValueError, binascii.Error):
            raise Bad(name, "is not base64") from None
    return check


def boolean(value, name):
    if not isinstance(value, bool):
        raise Bad(name, f"is not true or false ({_short(value)})")


def nullable(spec):
    def check(value, name):
        if value is not None:
            spec(value, name)
    return check


def items(spec, limit):
    """A list of at most *limit* values, each checked by *spec*."""
    def check(value, name):
        if not isinstance(value, list):
            raise Bad(name, f"is not a list ({_short(value)})")
        if len(value) > limit:
            raise Bad(name, f"has {len(value)} items, more than {limit}")
        for index, item in enumerate(value):
            spec(item, f"{name}[{index}]")
    return check


def mapping(key, spec, limit):
    """A dict of at most *limit* entries, each key matching the pattern
    *key*, each value checked by *spec*."""
    def check(value, name):
        if not isinstance(value, dict):
            raise Bad(name, f"is not an object ({_short(value)})")
        if len(value) > limit:
            raise Bad(name, f"has {len(value)} entries, more than {limit}")
        for k, v in value.items():
            if not key.match(k):
                raise Bad(f"{name}.{_short(k)}", f"is not a name of the "
                          f"form {key.pattern!r}")
            spec(v, f"{name}.{k}")
    return check


def obj(required=None, optional=None):
    """A dict with every field of *required* ({field: spec}) and, when
    present, those of *optional*; other fields are left alone (nothing
    reads them)."""
    required, optional = required or {}, optional or {}

    def check(value, name):
        if not isinstance(value, dict):
            raise Bad(name, f"is not an object ({_short(value)})")
        for field, spec in required.items():
            if field not in value:
                raise Bad(_join(name, field), "is missing")
            spec(value[field], _join(name, field))
        for field, spec in optional.items():
            if field in value:
                spec(value[field], _join(name, field))
    return check


def either(*specs):
    """The first of *specs* a value passes; the last one's complaint."""
    def check(value, name):
        for spec in specs[:-1]:
            try:
                spec(value, name)
                return
            except Bad:
                pass
        specs[-1](value, name)
    return check


def part_id(value, where="part id"):
    """*value* when it is a part id (GPT GUID or MBR "sig-nn"); it goes
    onto a kernel command line: InputError for anything else."""
    return run(text(36, PART_ID), value, where, "part id")


def _join(name, field):
    return f"{name}.{field}" if name else field


def _short(value):
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
