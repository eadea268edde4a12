"""A parser of lvm2's text metadata, the config format its VG metadata is
written in (lvm2's lib/config/config.c reads the same grammar):

    file       := item*
    item       := NAME "=" value | NAME "{" item* "}"
    value      := scalar | "[" [scalar ("," scalar)*] [","] "]"
    scalar     := STRING | NUMBER
    NAME       := [A-Za-z0-9_.+-]+ (not starting with a digit or "-" for a
                  key; section names, which are VG and LV names, may)
    STRING     := '"' (any character but '"' and '\\' | '\\' any)* '"'
    NUMBER     := ["-"] digits ["." digits]
    "#" starts a comment to the end of the line; white space separates.

A section is a dict (in order), a list a Python list, a number an int (or
a float), a string a str.  A name given twice in one section, a nesting
deeper than MAX_DEPTH, more than MAX_ITEMS items and list elements in
all, a number past 64 bits, or anything else the grammar does not hold raises
MapError naming the line.
"""

import re

from ..usedmap import MapError

MAX_DEPTH = 16
MAX_ITEMS = 100_000
#: lvm2 reads numbers with strtoll (int64) and floats with strtod; a
#: longer number is none of lvm2's (and Python refuses to convert an int
#: of more than 4300 digits with ValueError).
MAX_NUMBER_CHARS = 32
INT64 = 1 << 63

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_.+-]))
  | (?P<name>[A-Za-z0-9_.+-]+)
  | (?P<punct>[={}\[\],])
""", re.VERBOSE | re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _tokens(text):
    at, line = 0, 1
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            raise MapError(f"LVM2 metadata line {line}: unexpected "
                           f"{text[at:at + 10]!r}")
        kind, value = match.lastgroup, match.group()
        if kind != "space":
            yield kind, value, line
        line += value.count("\n")
        at = match.end()
    yield "end", "", line


class _Parser:
    def __init__(self, text):
        self.tokens = _tokens(text)
        self.items = 0
        self.next()

    def next(self):
        self.kind, self.value, self.line = next(self.tokens)

    def fail(self, what):
        found = self.value or "the end"
        raise MapError(f"LVM2 metadata line {self.line}: expected {what}, "
                       f"found {found!r}")

    def section(self, depth, closing):
        if depth > MAX_DEPTH:
            raise MapError(f"LVM2 metadata line {self.line}: sections "
                           f"nested deeper than {MAX_DEPTH}")
        found = {}
        while not (self.kind == "end" if closing is None else
                   (self.kind, self.value) == ("punct", closing)):
            if self.kind not in ("name", "number"):
                self.fail("a name" if closing is None
                          else "a name or '}'")
            name, line = self.value, self.line
            self.next()
            if (self.kind, self.value) == ("punct", "="):
                self.next()
                value = self.assigned()
            elif (self.kind, self.value) == ("punct", "{"):
                self.next()
                value = self.section(depth + 1, "}")
                self.next()
            else:
                self.fail("'=' or '{'")
            if name in found:
                raise MapError(f"LVM2 metadata line {line}: {name!r} "
                               f"given twice")
            self.count()
            found[name] = value
        return found

    def count(self):
        """One more item or list element: MAX_ITEMS in all."""
        self.items += 1
        if self.items > MAX_ITEMS:
            raise MapError(f"LVM2 metadata line {self.line}: more than "
                           f"{MAX_ITEMS} items")

    def scalar(self):
        kind, value = self.kind, self.value
        if kind == "string":
            self.next()
            return _ESCAPE.sub(r"\1", value[1:-1])
        if kind == "number":
            if len(value) > MAX_NUMBER_CHARS:
                raise MapError(f"LVM2 metadata line {self.line}: a number "
                               f"of {len(value)} characters")
            number = float(value) if "." in value else int(value)
            if not -INT64 <= number < INT64:
                raise MapError(f"LVM2 metadata line {self.line}: the "
                               f"number {value} is past lvm2's 64 bits")
            self.next()
            return number
        self.fail("a string or a number")

    def assigned(self):
        if (self.kind, self.value) != ("punct", "["):
            return self.scalar()
        self.next()
        values = []
        while (self.kind, self.value) != ("punct", "]"):
            values.append(self.scalar())
            self.count()
            if (self.kind, self.value) == ("punct", ","):
                self.next()
            elif (self.kind, self.value) != ("punct", "]"):
                self.fail("',' or ']'")
        self.next()
        return values


def parse(text):
    """The text metadata as nested dicts; MapError when it is not in the
    grammar above."""
    return _Parser(text).section(0, None)
