"""Text read from an image (names, labels, descriptions, edit history),
made fit to show on a terminal.

Images come from anywhere: a name or a description may hold a newline, a
carriage return, ESC sequences that clear the screen or set the window
title, or bytes that are not UTF-8.  Human output passes such text through
:func:`safe`; ``--json`` output keeps it exact.
"""

import re

# C0 and C1 controls and DEL; Unicode line and paragraph separators and the
# bidirectional embeddings, overrides and isolates (they reorder what the
# terminal shows); every surrogate (U+DC80-DCFF hold the bytes that were
# not UTF-8, as Python's surrogateescape makes them; the others cannot be
# printed at all).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e"
                     "\u2066-\u2069\ud800-\udfff]")


def _escape(match):
    code = ord(match[0])
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(text):
    """`text` fit for a terminal line: control characters (a newline, ESC)
    shown as \\xNN, the Unicode ones that split lines or reorder them as
    \\uNNNN, and the bytes that were not UTF-8 (held as surrogates) as
    \\xNN, so a name cannot split a line, move the cursor, or stop the
    output with an encoding error.  Other text is left as it is."""
    return _UNSAFE.sub(_escape, str(text))
