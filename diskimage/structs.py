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

    By default a parse gives a namedtuple, :meth:`pack` fills fields not
    given with zeros, and a short buffer is a TableError.  The image format
    (diskimage.image.format) declares its structures with ``as_dict=True`` (a
    parse gives a dict), ``defaults=False`` (every field must be given to
    pack) and its own ``short_read(name, where, got, size)`` exception.
    """

    def __init__(self, name, fields, *, size, as_dict=False, defaults=True,
                 short_read=None):
        self.name = name
        self.codes = [code for code, _ in fields]
        self.names = tuple(field for _, field in fields)
        self.format = "<" + "".join(self.codes)
        self.struct = struct.Struct(self.format)
        self.size = self.struct.size
        if self.size != size:
            raise AssertionError(
                f"{name} declared as {self.size} bytes, the spec says {size}")
        self.record = namedtuple(
            name.title().replace(" ", "").replace("-", ""), self.names)
        self.as_dict, self.defaults = as_dict, defaults
        self.short_read = short_read or _short_read

    def unpack(self, data, offset=0, *, at=None):
        """Parse the structure from *data* at *offset*.

        *at* is the byte offset on the disk (or in the image) that
        *data[offset]* came from, used only in the error message (defaults
        to *offset*).
        """
        where = offset if at is None else at
        if len(data) - offset < self.size:
            raise self.short_read(self.name, where,
                                  max(0, len(data) - offset), self.size)
        try:
            values = self.struct.unpack_from(data, offset)
        except struct.error as err:
            raise TableError(
                f"cannot parse the {self.name} at byte offset {where}: {err}"
            ) from None
        if self.as_dict:
            return dict(zip(self.names, values))
        return self.record._make(values)

    def pack(self, **values):
        """Build the structure's bytes; fields not given are zero (a
        KeyError without ``defaults``)."""
        if not self.defaults:
            return self.struct.pack(*(values[name] for name in self.names))
        row = [values.pop(field, b"" if code.endswith("s") else 0)
               for code, field in zip(self.codes, self.names)]
        if values:
            raise TypeError(f"{self.name} has no field {sorted(values)[0]}")
        return self.struct.pack(*row)

    def read(self, read, offset):
        """Read the structure from a ``read(offset, length)`` callable."""
        return self.unpack(read_exact(read, offset, self.size, self.name), at=offset)


def _short_read(name, where, got, size):
    return TableError(f"short read of the {name} at byte offset {where}: "
                      f"{got} of {size} bytes")


def read_exact(read, offset, length, what):
    """``read(offset, length)``, or a TableError naming *what* and the offset."""
    data = read(offset, length)
    if len(data) < length:
        raise TableError(
            f"short read of the {what} at byte offset {offset}: "
            f"{len(data)} of {length} bytes")
    return bytes(data)
