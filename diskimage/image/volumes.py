"""Where image bytes come from: files, split volumes, pipes; and the names
of volumes.  Writing them is :mod:`diskimage.image.volumeout`.

A split image is the image stream cut into volumes of at most a chosen size:
``img.rdi``, ``img.r01``, ``img.r02`` ...  The volumes are plain slices, so
``cat img.rdi img.r01 img.r02`` is the same stream.  Output volumes are
written under ``NAME.partial`` and renamed only when the image is complete,
the first volume last, so a name without ``.partial`` is always a whole image.

"""

import os
import re
import stat

from ..errors import DiskImageError, InputError
from .sfx import (SFX_MAGIC, SFX_TRAILER,  # noqa: F401 (imgx sfx)
                  pack_sfx_trailer, sfx_window)

PARTIAL = ".partial"
_VOLUME_SUFFIX = re.compile(r"\.r(\d{2,})$")
MIN_SPLIT = 4096
#: The most one read() asks of a file or pipe at once (see read()).
READ_PIECE = 16 << 20


def volume_name(path, number):
    """Name of volume `number` (0 is the first) of the image at `path`."""
    if number == 0:
        return path
    base = path[:-4] if path.endswith(".rdi") else path
    return f"{base}.r{number:02d}"


def find_volumes(path):
    """The volume files of the image whose first volume is `path`."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a directory, not an image")
    match = _VOLUME_SUFFIX.search(path)
    if match and int(match.group(1)) > 0:
        first = path[:match.start()] + ".rdi"
        raise InputError(f"{path}: is a later volume of a split image; "
                         f"give the first volume ({first})")
    volumes = [path]
    while os.path.exists(volume_name(path, len(volumes))):
        volumes.append(volume_name(path, len(volumes)))
    later = _later_volumes(path, len(volumes))
    if later:
        raise InputError(
            f"{volume_name(path, len(volumes))}: no such file: volume "
            f"{len(volumes) + 1} of the split image {path} is missing "
            f"({later[0]} exists); put it back beside the others")
    return volumes


def _later_volumes(path, after):
    """Volumes of the image at `path` numbered `after` or more that exist."""
    base = os.path.basename(volume_name(path, 1))[:-4]
    directory = os.path.dirname(path) or "."
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in names:
        match = _VOLUME_SUFFIX.search(name)
        if match and name[:match.start()] == base and \
                int(match.group(1)) > after:
            found.append((int(match.group(1)), os.path.join(
                os.path.dirname(path), name)))
    return [name for _, name in sorted(found)]


def _read_error(path, offset, exc):
    """An image file that fails to read (EIO of a bad sector): one line
    naming the file and the offset, not a bare OSError."""
    return DiskImageError(f"{path}: read failed at offset {offset}: "
                          f"{exc.strerror or exc}")


def _pread_full(f, size, offset):
    """`size` bytes at `offset` of the open file `f`, fewer only where the
    file ends.  A read cut short inside the file is read on: a bad sector
    makes pread return the bytes before it, and only the next pread the
    error, which is then raised naming the offset (taken as a short file,
    it was reported as "image ends early" at the chunk's start)."""
    parts, got = [], 0
    while got < size:
        try:
            data = os.pread(f.fileno(), size - got, offset + got)
        except OSError as exc:
            raise _read_error(f.name, offset + got, exc) from exc
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def opened(image):
    """(source, owned) for `image`: a path opened as its VolumeInput
    (owned: the caller closes it), or a source already open (an HttpInput,
    diskimage.remote), given back as it is (not owned)."""
    if isinstance(image, (str, os.PathLike)):
        return VolumeInput(image), True
    return image, False


def shown_name(image):
    """How messages and JSON name `image`: a path as it is, an open
    source by its name (a URL without its query string)."""
    return image if isinstance(image, (str, os.PathLike)) else image.name


class VolumeInput:
    """The volumes of an image read as one stream: sequentially with read()
    and, when every volume is a regular file, at any offset with read_at().
    A self-restoring binary (see :func:`sfx_window`) reads as the image it
    carries."""

    def __init__(self, path):
        self.name = path
        self.paths = find_volumes(path)
        self.files = []
        try:
            for name in self.paths:
                self.files.append(open(name, "rb", buffering=0))
        except OSError as exc:
            self.close()
            raise InputError(f"{name}: cannot open: {exc.strerror}") from None
        self.sizes = [os.fstat(f.fileno()).st_size for f in self.files]
        self.seekable = all(stat.S_ISREG(os.fstat(f.fileno()).st_mode)
                            for f in self.files)
        for f in self.files:    # read front to back: a larger read-ahead
            try:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            except OSError:
                pass
        self.size = sum(self.sizes) if self.seekable else None
        self.base = 0        # where the stream starts in the first file
        window = sfx_window(self.files[0].fileno()) \
            if self.seekable and len(self.files) == 1 else None
        if window:
            self.base, self.size = window
            self.sizes = [self.size]
            self.files[0].seek(self.base)
        self._current = 0
        self.position = 0
        self.bytes_read = 0   # bytes read from the files, by either method

    def missing_volume(self):
        """When the stream ends early: the message naming the volume that
        is probably missing, or None.  A split image's volumes are all
        `split` bytes but the last; a last volume that is full (as big as
        the first) and a stream that stops there mean the next one is
        gone."""
        if len(self.paths) < 2 or self.sizes[-1] != self.sizes[0]:
            return None
        name = volume_name(self.name, len(self.paths))
        return (f"{name}: no such file: the split image {self.name} goes "
                f"on after {self.paths[-1]} (full at {self.sizes[-1]} "
                f"bytes, as every volume before it), but volume "
                f"{len(self.paths) + 1} is missing")

    def read(self, size):
        """Up to `size` bytes from the stream; fewer only at its end.
        Read in pieces of at most READ_PIECE bytes: a length field of a
        hostile image asks for up to 4 GiB, and a file's read() allocates
        what it is asked for before it knows how much there is."""
        parts = []
        if self.base:
            size = min(size, self.size - self.position)
        while size > 0 and self._current < len(self.files):
            f = self.files[self._current]
            try:
                data = f.read(min(size, READ_PIECE))
            except OSError as exc:
                raise _read_error(self.paths[self._current], f.tell(),
                                  exc) from exc
            if not data:
                self._current += 1
                continue
            parts.append(data)
            size -= len(data)
            self.position += len(data)
            self.bytes_read += len(data)
        return b"".join(parts)

    def read_at(self, offset, size):
        """Up to `size` bytes at stream `offset`, across volume boundaries."""
        parts = []
        base = 0
        for f, volume_size in zip(self.files, self.sizes):
            if size <= 0:
                break
            if offset < base + volume_size:
                local = offset - base
                data = _pread_full(f, min(size, volume_size - local),
                                   self.base + local)
                parts.append(data)
                offset += len(data)
                size -= len(data)
                self.bytes_read += len(data)
                if len(data) < volume_size - local and size > 0:
                    break
            base += volume_size
        return b"".join(parts)

    def close(self):
        for f in self.files:
            f.close()
        self.files = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PipeInput:
    """An image read from an open binary file object such as stdin.

    Give it an unbuffered file (``sys.stdin.buffer.raw``): the reads run on
    the pipeline's feeder thread, and one still blocked on the pipe when
    the command ends (interrupted) would hold a buffered reader's lock,
    which Python then cannot take to close stdin at exit ("Fatal Python
    error: _enter_buffered_busy", an abort instead of the exit code)."""

    seekable = False
    size = None

    def __init__(self, fileobj, name="<stdin>"):
        self.fileobj = fileobj
        self.name = name
        self.position = 0
        self.paths = []

    def read(self, size):
        """Up to `size` bytes; fewer only at the end.  The buffer grows
        by READ_PIECE at most as bytes arrive, so a length field of a
        hostile stream cannot make it allocate 4 GiB up front."""
        buf = bytearray()
        while len(buf) < size:
            got = len(buf)
            buf.extend(bytes(min(size - got, READ_PIECE)))
            with memoryview(buf) as view:
                while got < len(buf):
                    try:
                        n = self.fileobj.readinto(view[got:])
                    except OSError as exc:
                        raise DiskImageError(
                            f"{self.name}: read failed after "
                            f"{self.position + got} bytes: "
                            f"{exc.strerror or exc}") from exc
                    if not n:
                        break
                    got += n
            if got < len(buf):
                del buf[got:]
                break
        self.position += len(buf)
        return bytes(buf)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
