"""The site file's lines: read (refusing what is not a small text file),
split into sections and KEY = VALUE lines with their line numbers, and the
spelling of a value written back.  site.py turns this into the model;
siteedit.py edits the lines and keeps every other one byte for byte.

The grammar (docs/pxeconf/site.md):

    # a comment line                  (blank lines and comments are kept)
    [KIND]  or  [KIND NAME]           (a section; a comment may follow)
    key = value   # comment           (a comment starts at whitespace + #)
    key = "value with # or spaces"    (double quotes: \\" and \\\\ escape)
"""

import ipaddress
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import InputError
from .macaddr import normalise

MAX_BYTES = 1 << 20     # a site file of a thousand machines is ~100 KiB
MAX_LINE = 4096

_HEADER = re.compile(r"^\s*\[([^\]]*)\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=[ \t]*")
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


class SiteError(InputError):
    """A site file that cannot be used: str() is "FILE:LINE: FIELD: problem"
    (without ":LINE" when no line of the file is at fault; `field` may be a
    section, "host 52:54:00:12:34:56: job" or a section alone)."""

    def __init__(self, path, line, field, problem):
        self.path, self.line, self.field, self.problem = \
            os.fspath(path), line, field, problem
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {field}: {problem}" if field
                         else f"{where}: {problem}")


@dataclass
class Line:
    """One line of the file: `text` is the line as it is (its ending too);
    kind is blank, comment, section or key."""
    number: int
    text: str
    kind: str
    key: str = None
    value: str = None
    span: tuple = None          # the value's raw text in the line

    @property
    def body(self):
        return self.text.rstrip("\n").rstrip("\r")

    @property
    def ending(self):
        return self.text[len(self.body):]


@dataclass
class Section:
    kind: str
    name: str                   # None for [site]
    line: int                   # the header's number
    index: int                  # the header's index in the lines
    keys: dict = field(default_factory=dict)    # key -> Line

    @property
    def title(self):
        return self.kind if self.name is None else f"{self.kind} {self.name}"


def read(path, fd=None):
    """The bytes of the site file `path` (or of the open `fd`): refused
    when missing, not a regular file, or over MAX_BYTES."""
    path = os.fspath(path)
    own = fd is None
    if own:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise missing(path) from None
        except OSError as exc:
            raise SiteError(path, None, None, f"cannot open: {exc.strerror}"
                            ) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SiteError(path, None, None, "is a directory, not a site "
                            "file (give --site=DIR/pxeconf.site)")
        if not stat.S_ISREG(st.st_mode):
            raise SiteError(path, None, None, "not a regular file")
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.pread(fd, 65536, size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_BYTES:
            raise SiteError(path, None, None, f"{max(st.st_size, size)} "
                            f"bytes: too large for a site file (at most "
                            f"{MAX_BYTES // 1024} KiB); is this the right "
                            f"file?")
        return b"".join(chunks)
    finally:
        if own:
            os.close(fd)


def missing(path):
    return SiteError(path, None, None, "no such site file; run `pxeconf "
                     "init DIR` to make a site, or give --site=FILE")


def decode(path, data):
    """The text of `data`, or SiteError at the line of the first byte
    that a text site file cannot hold."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise SiteError(path, data.count(b"\n", 0, nul) + 1, None,
                        "a NUL byte: a binary file, not a site file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SiteError(path, data.count(b"\n", 0, exc.start) + 1, None,
                        f"not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                        f"a site file is UTF-8 text") from None
    return text[1:] if text.startswith("\ufeff") else text


def split(text):
    """The lines of `text`, each with its ending ("\\n" only splits)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def parse_value(path, number, rest):
    """(value, (start, end) of its raw text in `rest`) of what follows
    the '='; a trailing comment starts at whitespace and '#'."""
    if rest.startswith('"'):
        out, i = [], 1
        while i < len(rest):
            c = rest[i]
            if c == "\\" and i + 1 < len(rest) and rest[i + 1] in '"\\':
                out.append(rest[i + 1])
                i += 2
                continue
            if c == '"':
                tail = rest[i + 1:].strip()
                if tail and not tail.startswith("#"):
                    raise SiteError(path, number, None, f"text after the "
                                    f"closing quote: {tail[:20]!r}")
                return "".join(out), (0, i + 1)
            out.append(c)
            i += 1
        raise SiteError(path, number, None, "a quoted value without its "
                        "closing \"")
    if rest.startswith("#"):
        return "", (0, 0)
    match = re.search(r"[ \t]#", rest)
    end = match.start() if match else len(rest)
    value = rest[:end].rstrip()
    return value, (0, len(value))


def parse(path, text, kinds):
    """(lines, sections) of `text`.  `kinds`: kind -> True when its
    sections take a NAME (site: False).  Sections keep their order;
    a section named twice, a key set twice in one, a key outside any
    section, an unknown kind and a line of no known form are errors
    naming their line."""
    path = os.fspath(path)
    lines, sections, current = [], [], None
    for index, raw in enumerate(split(text)):
        number = index + 1
        line = Line(number, raw, "blank")
        lines.append(line)
        body = line.body
        if len(body) > MAX_LINE:
            raise SiteError(path, number, None, f"a line of {len(body)} "
                            f"characters (at most {MAX_LINE})")
        bad = _CONTROL.search(body)
        if bad:
            raise SiteError(path, number, None, f"a control character "
                            f"(\\x{ord(bad[0]):02x}); a site file is text")
        stripped = body.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            line.kind = "comment"
            continue
        header = _HEADER.match(body)
        if header:
            line.kind = "section"
            current = _section(path, number, index, header[1], kinds)
            sections.append(current)
            continue
        key = _KEY.match(body)
        if not key:
            raise SiteError(path, number, None, "not a [section], a "
                            "KEY = VALUE line or a # comment")
        if current is None:
            raise SiteError(path, number, key[1], "a key before any "
                            "[section] (put it under [site])")
        line.kind, line.key = "key", key[1]
        rest = body[key.end():]
        try:
            line.value, (a, b) = parse_value(path, number, rest)
        except SiteError as exc:
            raise SiteError(path, number, f"{current.title}: {key[1]}",
                            exc.problem) from None
        line.span = (key.end() + a, key.end() + b)
        if line.key in current.keys:
            first = current.keys[line.key].number
            raise SiteError(path, number, f"{current.title}: {line.key}",
                            f"set twice in this section (first at line "
                            f"{first})")
        current.keys[line.key] = line
    seen = {}
    for section in sections:
        if section.title in seen:
            raise SiteError(path, section.line, section.title,
                            f"a second [{section.title}] (the first is at "
                            f"line {seen[section.title]})")
        seen[section.title] = section.line
    return lines, sections


def _section(path, number, index, inside, kinds):
    words = inside.split()
    kind = words[0] if words else ""
    if kind not in kinds and kind.lower() in kinds:
        # One rule for sections and keys: lower case (docs/pxeconf/site.md)
        raise SiteError(path, number, f"[{inside.strip()}]",
                        f"write [{' '.join([kind.lower(), *words[1:]])}]: "
                        f"sections and keys are lower case")
    if kind not in kinds:
        known = ", ".join(
            f"[{k} {'MAC' if k == 'host' else 'NAME'}]" if named
            else f"[{k}]" for k, named in kinds.items())
        raise SiteError(path, number, f"[{inside.strip()}]",
                        f"not a known section (sections: {known})")
    if not kinds[kind]:
        if len(words) != 1:
            raise SiteError(path, number, f"[{inside.strip()}]",
                            f"[{kind}] takes no name")
        return Section(kind, None, number, index)
    if len(words) != 2:
        raise SiteError(path, number, f"[{inside.strip()}]",
                        f"a section is [{kind} NAME] (one word of a name)")
    name = words[1]
    if kind == "host":
        try:
            name = normalise(name)
        except InputError as exc:
            raise SiteError(path, number, f"[{inside.strip()}]",
                            str(exc)) from None
    elif not NAME.match(name):
        raise SiteError(path, number, f"[{inside.strip()}]",
                        f"{name!r} is not a name (letters, digits, '.', "
                        f"'_', '-', at most 64, starting with a letter or "
                        f"digit)")
    return Section(kind, name, number, index)


def format_value(value):
    """`value` as the site file spells it: bare when it reads back the
    same, else in double quotes."""
    value = str(value)
    if _CONTROL.search(value) or "\t" in value:
        raise ValueError("a control character (a newline, a tab ...)")
    bare = parse_value("", 0, value)[0] if value else ""
    if bare == value and value == value.strip() and \
            not value.startswith('"'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The keys of each section and the type of each value (site.py reads
# them; docs/pxeconf/site.md is their reference).

#: section kind -> True when it takes a NAME
KINDS = {"site": False, "server": True, "menu": True, "job": True,
         "host": True}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
_BOOLS = {"yes": True, "true": True, "on": True, "1": True,
          "no": False, "false": False, "off": False, "0": False}


def _name(value):
    if not NAME.match(value):
        raise ValueError(f"{value!r} is not a name (letters, digits, '.', "
                         f"'_', '-', at most 64, starting with a letter or "
                         f"digit)")
    return value


def _optional_name(value):
    return _name(value) if value else None


def _names(value):
    names = tuple(_name(v.strip()) for v in value.split(","))
    if len(set(names)) != len(names):
        raise ValueError("a name given twice")
    return names


def _number(low, high):
    def convert(value):
        if not re.fullmatch(r"\d+", value):
            raise ValueError(f"{value!r} is not a whole number")
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range ({low}-{high})")
        return number
    return convert


def _bool(value):
    try:
        return _BOOLS[value.lower()]
    except KeyError:
        raise ValueError(f"{value!r} is not yes or no") from None


def _address(value):
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address (e.g. "
                         f"10.0.0.2)") from None
    for bad, what in ((address.is_unspecified, "the unspecified address"),
                      (address.is_multicast, "a multicast address"),
                      (address == ipaddress.IPv4Address("255.255.255.255"),
                       "the broadcast address")):
        if bad:
            raise ValueError(f"{value!r} is {what}: give the server's own "
                             f"address on the boot network (e.g. 10.0.0.2)")
    return str(address)


def _time(value):
    try:
        if TIME.match(value):
            datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
            return value
    except ValueError:
        pass
    raise ValueError(f"{value!r} is not a UTC time like "
                     f"2026-12-01T16:30:00Z")


def _text(value):
    return value


def _required(value):
    if not value:
        raise ValueError("empty")
    return value


def _files(value):
    files = tuple(v.strip() for v in value.split(",") if v.strip())
    if len(set(files)) != len(files):
        raise ValueError("a file given twice")
    return files


_SETTINGS = {"timeout": _number(0, 3600), "default": _optional_name,
             "retries": _number(0, 100), "fallback": _optional_name,
             "address": _address, "http-port": _number(1, 65535),
             "entries": _names, "swarm-seed": _files,
             "swarm-port": _number(1, 65535),
             "swarm-upload-rate": _number(1, 100000),
             "swarm-tracker": _number(1, 65535)}
_BOOT = {"label": _text, "kernel": _required, "initrd": _required,
         "cmdline": _text, "bundle": _required}
KEYS = {
    "site": {"root": _required, **_SETTINGS},
    "server": dict(_SETTINGS),
    "menu": {**_BOOT, "local": _bool, "job": _name},
    "job": {**_BOOT, "script": _required, "retries": _number(0, 100)},
    "host": {"name": _name, "job": _name, "once": _bool, "assigned": _time,
             "menu": _name, "fallback": _name},
}
HINTS = {("server", "root"): "the boot root is the same for every server"}
