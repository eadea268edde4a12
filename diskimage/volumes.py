"""Where image bytes go and come from: files, split volumes, pipes.

A split image is the image stream cut into volumes of at most a chosen size:
``img.rdi``, ``img.r01``, ``img.r02`` ...  The volumes are plain slices, so
``cat img.rdi img.r01 img.r02`` is the same stream.  Output volumes are
written under ``NAME.partial`` and renamed only when the image is complete,
the first volume last, so a name without ``.partial`` is always a whole image.

Each ``NAME.partial`` is created exclusively and the first volume's stays
locked by its writer until the image is committed or aborted, so a second
writer of the same image is refused (see :mod:`diskimage.partial`).
"""

import errno
import os
import re
import stat

from . import sighold
from .errors import (DiskImageError, InputError, NoSpaceError,
                     UsageError)
from .partial import create_partial, no_links
from .sfxtrailer import (SFX_MAGIC, SFX_TRAILER,  # noqa: F401 (imgx sfx)
                         pack_sfx_trailer, sfx_window)

PARTIAL = ".partial"
_VOLUME_SUFFIX = re.compile(r"\.r(\d{2,})$")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
MIN_SPLIT = 4096


def volume_name(path, number):
    """Name of volume `number` (0 is the first) of the image at `path`."""
    if number == 0:
        return path
    base = path[:-4] if path.endswith(".rdi") else path
    return f"{base}.r{number:02d}"


def _write_error(exc, name, offset):
    if exc.errno in _NO_SPACE:
        return NoSpaceError(f"{name}: no space left after {offset} bytes")
    return DiskImageError(f"{name}: write failed at byte {offset}: "
                          f"{exc.strerror}")


class StreamOutput:
    """An image written to an open binary file object such as stdout."""

    def __init__(self, fileobj, name="<stdout>"):
        self.fileobj = fileobj
        self.name = name
        self.position = 0

    def write(self, data):
        try:
            self.fileobj.write(data)
        except BrokenPipeError:
            raise   # the reader went away: not an error to report
        except OSError as exc:
            raise _write_error(exc, self.name, self.position) from None
        self.position += len(data)

    def commit(self):
        try:
            self.fileobj.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _write_error(exc, self.name, self.position) from None

    def abort(self):
        pass


class VolumeOutput:
    """An image written to one file, or to volumes of at most `split` bytes.

    With `replace` false an existing image (any of its volumes) is refused,
    when a volume is started and again when the volumes are renamed."""

    def __init__(self, path, split=None, replace=True):
        if split is not None and split < MIN_SPLIT:
            raise UsageError(f"--split must be at least 4K ({MIN_SPLIT} "
                             f"bytes), not {split} bytes")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise InputError(f"{path}: directory {directory} does not exist")
        if os.path.isdir(path):
            raise InputError(f"{path}: is a directory")
        if os.path.exists(path) and not os.path.isfile(path):
            # NAME.partial renamed over it would replace a device such as
            # /dev/null (or a FIFO) with a regular file.
            raise InputError(f"{path}: is not a regular file; an image "
                             f"goes to a file, or to stdout with \"-\"")
        self.path = path
        self.split = split
        self.replace = replace
        self.position = 0
        self.volumes = []   # final names of volumes opened so far
        self.warnings = []  # stale partial files taken over
        self._fd = None
        self._lock_fd = None    # the first volume's, locked until the end
        self._room = 0

    def _refuse_existing(self, names=None):
        for name in names or [self.path]:
            if os.path.lexists(name):
                raise InputError(f"{name}: exists; not replaced without "
                                 f"--force")

    def _next_volume(self):
        if self._fd is not None:
            os.fsync(self._fd)
            if self._fd != self._lock_fd:
                os.close(self._fd)
            self._fd = None
        name = volume_name(self.path, len(self.volumes))
        if not self.replace:
            self._refuse_existing([name])
        # Named before it exists: a Ctrl-C just after the file is created
        # must still find it in abort().
        self.volumes.append(name)
        try:
            self._fd = create_partial(name + PARTIAL, self.warnings,
                                      locked=len(self.volumes) == 1)
        except BaseException:
            self.volumes.pop()
            raise
        if self._lock_fd is None:
            self._lock_fd = self._fd
        self._room = self.split if self.split else float("inf")

    def write(self, data):
        view = memoryview(data)
        while view:
            if self._fd is None or self._room == 0:
                self._next_volume()
            piece = view[:self._room] if self.split else view
            try:
                written = os.write(self._fd, piece)
            except OSError as exc:
                raise _write_error(exc, self.volumes[-1] + PARTIAL,
                                   self.position) from None
            view = view[written:]
            self._room -= written
            self.position += written

    def commit(self):
        """fsync and rename every volume; drop stale later volumes."""
        if self._fd is None:
            self._next_volume()
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise _write_error(exc, self.volumes[-1] + PARTIAL,
                               self.position) from None
        if self._fd != self._lock_fd:
            os.close(self._fd)
        self._fd = None
        with sighold.held():
            if self.replace:
                self._replace_all()
            else:
                self._link_all()
            os.close(self._lock_fd)
            self._lock_fd = None
            directory = os.open(os.path.dirname(os.path.abspath(self.path)),
                                os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            sighold.committed(self.path)

    def _replace_all(self):
        """Rename every volume over the old image's: the later volumes
        first, the first volume last (the commit point: from then on the
        name is the new image); the old image's volumes beyond the new
        ones are removed only after it.  commit() holds the signals over
        the whole sequence, so an interrupt leaves the old image whole or
        the new one.  A crash (SIGKILL, a power cut) in between can still
        leave a mix: new later volumes behind the old first one (neither
        image verifies: capture again), or, after the commit point, the new
        image with stale volumes of the old one behind it (find_volumes
        then counts them in: remove NAME.rNN beyond the new image's own)."""
        for name in reversed(self.volumes):
            os.replace(name + PARTIAL, name)
        number = len(self.volumes)
        while os.path.lexists(volume_name(self.path, number)):
            os.unlink(volume_name(self.path, number))
            number += 1

    def _link_all(self):
        """Give every volume its final name without replacing a file that
        appeared meanwhile (link fails on an existing name)."""
        self._refuse_existing(self.volumes +
                              [volume_name(self.path, len(self.volumes))])
        linked = []
        try:
            for name in reversed(self.volumes):
                try:
                    if no_links(lambda: os.link(name + PARTIAL, name)):
                        # no hard links (FAT, exFAT): checked, then renamed
                        self._refuse_existing([name])
                        os.rename(name + PARTIAL, name)
                except FileExistsError:
                    self._refuse_existing([name])
                linked.append(name)
        except BaseException:
            for name in linked:
                if not os.path.lexists(name + PARTIAL):
                    os.rename(name, name + PARTIAL)
                else:
                    os.unlink(name)
            raise
        for name in self.volumes:
            if os.path.lexists(name + PARTIAL):
                os.unlink(name + PARTIAL)

    def abort(self):
        """Remove every partial volume; the old image, if any, is untouched."""
        for fd in {self._fd, self._lock_fd} - {None}:
            os.close(fd)
        self._fd = self._lock_fd = None
        for name in self.volumes:
            try:
                os.unlink(name + PARTIAL)
            except FileNotFoundError:
                pass


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
        """Up to `size` bytes from the stream; fewer only at its end."""
        parts = []
        if self.base:
            size = min(size, self.size - self.position)
        while size > 0 and self._current < len(self.files):
            data = self.files[self._current].read(size)
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
                data = os.pread(f.fileno(), min(size, volume_size - local),
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
        buf = bytearray(size)
        got = 0
        with memoryview(buf) as view:
            while got < size:
                n = self.fileobj.readinto(view[got:])
                if not n:
                    break
                got += n
        self.position += got
        del buf[got:]
        return bytes(buf)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
