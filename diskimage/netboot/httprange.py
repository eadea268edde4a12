"""The one Range form HTTP boot clients and resuming downloads send:
``bytes=FIRST-LAST``, ``bytes=FIRST-``, ``bytes=-SUFFIX`` (RFC 9110 14.1),
and the If-Range condition on it (RFC 9110 13.1.5).

parse_range(header, size) is None (answer 200, the whole file: no header,
a header this server ignores, or several ranges), (first, last) inclusive
(answer 206), or "unsatisfiable" (answer 416: the range starts at or past
the end, or asks for an empty suffix).  Numbers of any length are read as
numbers: a first byte past any file is 416, a last byte past the end or a
suffix longer than the file is cut to the file.

validators(size, mtime_ns) are the file's ETag and Last-Modified;
if_range_holds(header, etag, mtime_ns) says whether a Range sent with
If-Range may be answered (the validator is the file's own), else the
answer is the whole file, 200, so a resumed download of a file that has
changed meanwhile is never spliced from two versions.
"""

import email.utils
import re
import time

_ONE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.ASCII)
_BIG = 19                   # digits: more than any file's size


def _number(digits):
    """The value of a run of digits, or None when it is over _BIG digits
    (past any file), without turning 64 KiB of digits into an int."""
    digits = digits.lstrip("0") or "0"
    return None if len(digits) > _BIG else int(digits)


def parse_range(header, size):
    if not header:
        return None
    match = _ONE.match(header)
    if not match:
        return None                 # several ranges, or not bytes: whole
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        suffix = _number(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        if suffix is None:
            return 0, size - 1
        return max(size - suffix, 0), size - 1
    first = _number(first)                  # None: past any file
    end = _number(last) if last != "" else None
    if end is not None and (first is None or end < first):
        return None                 # last before first: ignored, whole
    if first is None or first >= size:
        return "unsatisfiable"
    return first, size - 1 if end is None else min(end, size - 1)


def validators(size, mtime_ns):
    """(ETag, Last-Modified) of a file of this size and mtime."""
    return (f'"{size:x}-{mtime_ns:x}"',
            email.utils.formatdate(mtime_ns // 10 ** 9, usegmt=True))


def if_range_holds(header, etag, mtime_ns, now=None):
    """Whether the If-Range `header` names this very file: its ETag (a
    strong one, compared exactly), or its Last-Modified date, strong only
    when the file is more than a second older than now."""
    header = header.strip()
    if header.startswith(('"', "W/")):
        return header == etag
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    if when is None:
        return False
    seconds = mtime_ns // 10 ** 9
    now = time.time() if now is None else now
    try:
        return int(when.timestamp()) == seconds and seconds + 1 < now
    except (OverflowError, OSError, ValueError):
        return False
