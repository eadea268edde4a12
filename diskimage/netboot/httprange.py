"""The one Range form HTTP boot clients and resuming downloads send:
``bytes=FIRST-LAST``, ``bytes=FIRST-``, ``bytes=-SUFFIX`` (RFC 9110 14.1).

parse_range(header, size) is None (answer 200, the whole file: no header,
a header this server ignores, or several ranges), (first, last) inclusive
(answer 206), or "unsatisfiable" (answer 416: the range starts at or past
the end, or asks for an empty suffix).
"""

import re

_ONE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.ASCII)


def parse_range(header, size):
    if not header:
        return None
    match = _ONE.match(header)
    if not match:
        return None                 # several ranges, or not bytes: whole
    first, last = match.groups()
    if len(first) > 19 or len(last) > 19:
        return None
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    first = int(first)
    if last != "" and int(last) < first:
        return None                 # not a valid range: ignored
    if first >= size:
        return "unsatisfiable"
    last = size - 1 if last == "" else min(int(last), size - 1)
    return first, last
