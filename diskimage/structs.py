"""A tiny helper to declare an on-disk structure once, as a table of
``(struct code, field name)`` rows that reads like the spec, and to parse and
build it through that one declaration.

Every failure to parse (a short read, :class:`struct.error`) becomes a
:class:`~diskimage.errors.TableError` naming the structure and the byte offset.
"""

import struct
from collections import namedtuple

from .errors import TableError


class Struct:
    """A little-endian on-disk structure.

    *fields* is a sequence of ``(code, name)`` pairs; *size* is the size the
    spec gives, checked against the codes when the declaration is made.
    """

    def __init__(self, name, fields, *, size):
        self.name = name
        self.codes = [code for code, _ in fields]
        self.format = "<" + "".join(self.codes)
        self.size = struct.calcsize(self.format)
        if self.size != size:
            raise AssertionError(
                f"{name} declared as {self.size} bytes, the spec says {size}")
        self.record = namedtuple(
            name.title().replace(" ", "").replace("-", ""),
            [field for _, field in fields])

    def unpack(self, data, offset=0, *, at=None):
        """Parse the structure from *data* at *offset*.

        *at* is the byte offset on the disk that *data[offset]* came from,
        used only in the error message (defaults to *offset*).
        """
        where = offset if at is None else at
        if len(data) - offset < self.size:
            raise TableError(
                f"short read of the {self.name} at byte offset {where}: "
                f"{max(0, len(data) - offset)} of {self.size} bytes")
        try:
            return self.record._make(struct.unpack_from(self.format, data, offset))
        except struct.error as err:
            raise TableError(
                f"cannot parse the {self.name} at byte offset {where}: {err}"
            ) from None

    def pack(self, **values):
        """Build the structure's bytes; fields not given are zero."""
        row = self.record._make(
            values.pop(field, b"" if code.endswith("s") else 0)
            for code, field in zip(self.codes, self.record._fields))
        if values:
            raise TypeError(f"{self.name} has no field {sorted(values)[0]}")
        return struct.pack(self.format, *row)

    def read(self, read, offset):
        """Read the structure from a ``read(offset, length)`` callable."""
        return self.unpack(read_exact(read, offset, self.size, self.name), at=offset)


def read_exact(read, offset, length, what):
    """``read(offset, length)``, or a TableError naming *what* and the offset."""
    data = read(offset, length)
    if len(data) < length:
        raise TableError(
            f"short read of the {what} at byte offset {offset}: "
            f"{len(data)} of {length} bytes")
    return bytes(data)
