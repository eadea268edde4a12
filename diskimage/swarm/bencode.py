"""Bencoding (BEP 3), bounded for hostile input.

A .torrent may come from anywhere (a URL, a magnet's peers), so the decoder
never allocates more than the input holds, never recurses deeper than
MAX_DEPTH, and gives one InputError naming the byte where the bytes stop
being bencode.  :func:`decode_top` also returns the raw span of the info
dict: its bytes as stored are what the infohash is taken over.
"""

from ..errors import InputError

MAX_DEPTH = 32
MAX_INT_DIGITS = 20          # -(2^63) has 19 digits and a sign


class Raw(bytes):
    """Bytes already bencoded (an info dict as stored), written as they are."""


def encode(value):
    """The bencoding of `value`: int, bytes/str, list/tuple, dict (keys
    str or bytes, written sorted), Raw as it is."""
    out = []
    _encode(value, out)
    return b"".join(out)


def _encode(value, out):
    if isinstance(value, Raw):
        out.append(bytes(value))
    elif isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    elif isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, (bytes, str)):
        data = value.encode() if isinstance(value, str) else value
        out.append(b"%d:" % len(data))
        out.append(data)
    elif isinstance(value, (list, tuple)):
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    elif isinstance(value, dict):
        out.append(b"d")
        items = sorted((k.encode() if isinstance(k, str) else k, v)
                       for k, v in value.items())
        for key, item in items:
            _encode(key, out)
            _encode(item, out)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


class _Decoder:
    def __init__(self, data, where):
        self.data = memoryview(data).cast("B") if not isinstance(
            data, bytes) else data
        self.where = where
        self.spans = {}

    def fail(self, at, what):
        raise InputError(f"{self.where}: not a torrent: {what} at byte {at}")

    def value(self, at, depth):
        data = self.data
        if at >= len(data):
            self.fail(at, "truncated")
        c = data[at]
        if c == 0x69:                                       # i
            return self.integer(at)
        if 0x30 <= c <= 0x39:
            return self.string(at)
        if depth >= MAX_DEPTH:
            self.fail(at, f"nested deeper than {MAX_DEPTH}")
        if c == 0x6C:                                       # l
            items, at = [], at + 1
            while True:
                if at >= len(data):
                    self.fail(at, "truncated list")
                if data[at] == 0x65:
                    return items, at + 1
                item, at = self.value(at, depth + 1)
                items.append(item)
        if c == 0x64:                                       # d
            return self.dictionary(at, depth)
        self.fail(at, f"unexpected byte 0x{c:02x}")

    def integer(self, at):
        data = self.data
        end = bytes(data[at + 1:at + 2 + MAX_INT_DIGITS]).find(b"e")
        if end < 0:
            self.fail(at, "unterminated or too long integer")
        text = bytes(data[at + 1:at + 1 + end])
        digits = text[1:] if text.startswith(b"-") else text
        if not digits.isdigit() or (digits.startswith(b"0") and
                                    (len(digits) > 1 or text != digits)):
            self.fail(at, "malformed integer")
        return int(text), at + 2 + end

    def string(self, at):
        data = self.data
        colon = bytes(data[at:at + MAX_INT_DIGITS + 1]).find(b":")
        if colon < 0 or not bytes(data[at:at + colon]).isdigit():
            self.fail(at, "malformed string length")
        size = int(bytes(data[at:at + colon]))
        start = at + colon + 1
        if size > len(data) - start:
            self.fail(at, f"string of {size} bytes runs past the end "
                          f"({len(data)} bytes)")
        return bytes(data[start:start + size]), start + size

    def dictionary(self, at, depth):
        data = self.data
        items, at, last = {}, at + 1, None
        while True:
            if at >= len(data):
                self.fail(at, "truncated dictionary")
            if data[at] == 0x65:
                return items, at + 1
            if not 0x30 <= data[at] <= 0x39:
                self.fail(at, "dictionary key is not a string")
            key_at = at
            key, at = self.string(at)
            if key in items:
                self.fail(key_at, f"key {key!r} given twice")
            if last is not None and key < last:
                self.fail(key_at, "dictionary keys not sorted")
            last = key
            value_at = at
            items[key], at = self.value(at, depth + 1)
            if depth == 0:
                self.spans[key] = (value_at, at)


def decode(data, where):
    """The value bencoded in all of `data` (bytes), keys as bytes;
    InputError naming `where` and the byte for anything else."""
    return decode_top(data, where)[0]


def decode_top(data, where):
    """(value, spans): spans maps each key of a top-level dict to the
    (start, end) of its value's bytes in `data`."""
    decoder = _Decoder(data, where)
    value, end = decoder.value(0, 0)
    if end != len(data):
        decoder.fail(end, "bytes after the end")
    return value, decoder.spans
