"""Reading the archive that a PyInstaller onefile binary carries (its
CArchive, or PKG), without PyInstaller: bootdisk must compute the library
closure of a frozen toolkit wherever it runs, and a pip-installed bootdisk
has PyInstaller only with the [freeze] extra.

The archive ends with a cookie (PyInstaller 6, big-endian)::

    magic       8s   b"MEI\\014\\013\\012\\013\\016"
    length      I    of the whole archive, cookie included
    toc_offset  I    from the start of the archive
    toc_length  I
    pyvers      I    e.g. 311
    pylib_name  64s  the libpython the bootloader loads, NUL-padded

and its table of contents is a run of entries::

    entry_length  I  this entry, name included
    data_offset   I  from the start of the archive
    data_length   I  as stored
    uncompressed  I
    compressed    B  1: zlib
    typecode      c  b binary, x data, z PYZ, o option, n symbolic
                     link (its data: the target's name, NUL-ended), ...
    name             NUL-padded to entry_length
"""

import os
import struct
import zlib

from diskimage.errors import InputError

MAGIC = b"MEI\014\013\012\013\016"
# The typecode of a symbolic link (PyInstaller 6 keeps those of a wheel's
# bundled libraries: google-crc32c's libcrc32c-*.so.1.1.0 at the top, to
# google_crc32c.libs/, where the real file is).
SYMLINK = "n"


def _declare(fields):
    """A big-endian structure from (code, name) rows (diskimage.structs
    declares little-endian ones): (struct.Struct, field names)."""
    return (struct.Struct("!" + "".join(c for c, _ in fields)),
            tuple(n for _, n in fields))


COOKIE = _declare([
    ("8s", "magic"),
    ("I", "length"),
    ("I", "toc_offset"),
    ("I", "toc_length"),
    ("I", "pyvers"),
    ("64s", "pylib_name"),
])
assert COOKIE[0].size == 88

ENTRY = _declare([
    ("I", "entry_length"),
    ("I", "data_offset"),
    ("I", "data_length"),
    ("I", "uncompressed"),
    ("B", "compressed"),
    ("c", "typecode"),
])
assert ENTRY[0].size == 18


def _unpack(declared, data):
    layout, names = declared
    return dict(zip(names, layout.unpack(data)))


_TAIL = 64 * 1024     # the cookie is at the very end; allow some padding


class Archive:
    """The archive of the PyInstaller binary `path`; `None` from
    :func:`open_archive` when `path` carries none (a plain binary)."""

    def __init__(self, path, start, cookie, toc):
        self.path, self.start = path, start
        self.pylib_name = cookie["pylib_name"].rstrip(b"\0").decode(
            "utf-8", "replace")
        self.toc = toc          # name -> (offset, length, size, zlib, type)

    def extract(self, name):
        offset, length, size, compressed, _ = self.toc[name]
        with open(self.path, "rb") as f:
            f.seek(self.start + offset)
            data = f.read(length)
        if len(data) != length:
            raise self._bad(f"member {name!r} is cut short")
        if compressed:
            try:
                data = zlib.decompress(data)
            except zlib.error as exc:
                raise self._bad(f"member {name!r} does not decompress "
                                f"({exc})") from None
        if len(data) != size:
            raise self._bad(f"member {name!r} has {len(data)} bytes, its "
                            f"entry says {size}")
        return data

    def _bad(self, what):
        return unreadable(self.path, what)


def unreadable(path, what):
    """The one-line error of a PyInstaller binary whose archive does not
    hold together."""
    return InputError(f"{path}: a PyInstaller binary whose archive cannot "
                      f"be read: {what}; not a toolkit to use")


def open_archive(path):
    """The Archive of `path`, None when it has no PyInstaller cookie; an
    InputError when it has one that does not hold together."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - _TAIL))
        tail = f.read()
        at = tail.rfind(MAGIC)
        if at < 0:
            return None
        cookie_at = size - len(tail) + at
        raw = tail[at:at + COOKIE[0].size]
        def bad(what):
            return unreadable(path, what)
        if len(raw) != COOKIE[0].size:
            raise bad(f"its cookie at {cookie_at} is cut short")
        cookie = _unpack(COOKIE, raw)
        start = cookie_at + COOKIE[0].size - cookie["length"]
        if start < 0 or cookie["toc_offset"] + cookie["toc_length"] > \
                cookie["length"]:
            raise bad(f"its cookie at {cookie_at} gives an archive outside "
                      f"the file")
        if not cookie["pylib_name"].rstrip(b"\0"):
            raise bad("its cookie names no Python library")
        f.seek(start + cookie["toc_offset"])
        toc_data = f.read(cookie["toc_length"])
    return Archive(path, start, cookie, _parse_toc(toc_data, bad))


def _parse_toc(data, bad):
    toc, pos, size = {}, 0, ENTRY[0].size
    while pos < len(data):
        if pos + size > len(data):
            raise bad(f"its table of contents is cut short at {pos}")
        entry = _unpack(ENTRY, data[pos:pos + size])
        length = entry["entry_length"]
        if length < size or pos + length > len(data):
            raise bad(f"its table of contents has an entry of {length} "
                      f"bytes at {pos}")
        name = data[pos + size:pos + length].rstrip(b"\0")
        pos += length
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError:
            raise bad(f"its table of contents has a name that is not "
                      f"UTF-8 at {pos - length}") from None
        typecode = entry["typecode"].decode("ascii", "replace")
        if typecode != "o":     # run-time options have no data
            toc[name] = (entry["data_offset"], entry["data_length"],
                         entry["uncompressed"], entry["compressed"],
                         typecode)
    return toc
