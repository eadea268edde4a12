"""A reader's failure on bad structures as one clear line: imgx's
"IMAGE:N/path: damaged filesystem: what is wrong", exit 4
(CorruptImageError), never a Python class name or a message that repeats
its own prefix."""

import contextlib

from ..errors import CorruptImageError, DiskImageError
from .usedmap import MapError

#: What an exception that carries no text of its own means, by class.
_SILENT = {
    EOFError: "a structure runs past the end of the volume (truncated, "
              "or a pointer past its end)",
    MemoryError: "a structure claims more memory than a reader may take",
    RecursionError: "its structures nest without end",
}


def reason(exc):
    """The text of *exc* for a person: its message with any prefix it
    repeats dropped ("LVM2 metadata: LVM2 metadata area at 4096: bad
    magic" is "LVM2 metadata area at 4096: bad magic"); one that has
    none says what its class means."""
    text = " ".join(str(exc).split())
    if isinstance(exc, KeyError) and exc.args:
        text = f"no {exc.args[0]!s} where the structures say there is one"
    if not text:
        for cls, meaning in _SILENT.items():
            if isinstance(exc, cls):
                return meaning
        return "a structure that cannot be read"
    parts = text.split(": ")
    kept = [part for part, after in zip(parts, parts[1:] + [None])
            if after is None or not after.startswith(part)]
    return ": ".join(kept)


@contextlib.contextmanager
def damaged(where):
    """Turn a reader's exception on bad structures into CorruptImageError
    naming *where* (image, partition and path).  Of the project's own
    errors only MapError (the filesystem readers' word on their structures:
    a chain that loops, a tree that nests without end) is filesystem
    damage; the others pass as they are: a damaged image
    (CorruptImageError) says so itself, and a plain DiskImageError is not
    about the filesystem at all (the image file's read failed: EIO of a
    bad sector, exit 1)."""
    try:
        yield
    except MapError as exc:
        raise CorruptImageError(f"{where.removesuffix(':')}: damaged "
                                f"filesystem: {reason(exc)}") from None
    except DiskImageError:
        raise
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        # dissect's own (dissect.ntfs.exceptions.FileNotFoundError: "No
        # such stream on record") are its readers' word on bad structures
        # (found by the imgx fuzz target): damage, like the rest
        if not type(exc).__module__.startswith("dissect."):
            raise
        raise CorruptImageError(f"{where.removesuffix(':')}: damaged "
                                f"filesystem: {reason(exc)}") from None
    except Exception as exc:
        raise CorruptImageError(f"{where.removesuffix(':')}: damaged "
                                f"filesystem: {reason(exc)}") from None


class Checked:
    """A reader's file stream whose reads are checked as its structures
    are: a hostile extent (an offset past the filesystem, a negative seek)
    fails only when the data is read, and is CorruptImageError then too,
    never an internal error."""

    def __init__(self, stream, where, size=None):
        self._stream = stream
        self._where = where
        self._size = size       # the file's size, as its inode says

    def read(self, size=-1):
        with damaged(self._where):
            data = self._stream.read(size)
            if not data and size != 0 and self._size is not None:
                self._whole()
            return data

    def _whole(self):
        """At the end of the data: a file whose data ends before its size
        (a volume cut short, an extent past its end) is damage, never a
        short file that looks complete."""
        at = self._stream.tell()
        if at < self._size:
            raise CorruptImageError(
                f"{self._where.removesuffix(':')}: damaged filesystem: its "
                f"data ends after {at} of its {self._size} bytes (the "
                f"volume is cut short, or an extent points past its end)")

    def __getattr__(self, name):
        return getattr(self._stream, name)
