"""Where image bytes go: stdout, or split volumes written under
``NAME.partial`` and renamed only when the image is complete, the first
volume last, so a name without ``.partial`` is always a whole image.

Each ``NAME.partial`` is created exclusively and the first volume's stays
locked by its writer until the image is committed or aborted, so a second
writer of the same image is refused (see :mod:`diskimage.host.partial`); an image
that is replaced is locked as imgx edits lock it (:mod:`diskimage.image.lock`).
Reading volumes back is :mod:`diskimage.image.volumes`.
"""

import os

from . import lock as imagelock
from .. import sighold
from ..errors import (NO_SPACE_ERRNOS, BusyError, DiskImageError, InputError,
                      NoSpaceError, UsageError, no_space_left)
from ..host.links import what_is_there
from ..host.partial import create_partial, no_links, output_path
from .volumes import MIN_SPLIT, PARTIAL, volume_name



def _write_error(exc, name, offset, total=None):
    """The error for a failed write to `name` after `offset` bytes of it;
    `total`, when it differs, is the bytes of the whole image so far (a
    split image's volume holds only its part)."""
    whole = "" if total is None or total == offset else \
        f" ({total} bytes of the image in all)"
    if exc.errno in NO_SPACE_ERRNOS:
        return NoSpaceError(f"{name}: {no_space_left(exc)} after {offset} "
                            f"bytes written to it{whole}")
    return DiskImageError(f"{name}: write failed at byte {offset}{whole}: "
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
    when a volume is started and again when the volumes are renamed.  With
    `replace`, an existing image is held under imagelock's exclusive lock
    until it is replaced (BusyError while an edit holds it), and a symlink
    to an image names the file replaced, the link staying a link."""

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
        # A link to an existing file names it (the link stays), a link to
        # nothing is refused: the one rule of every output (partial.py).
        path = output_path(path, replace)
        self.path = path
        self.split = split
        self.replace = replace
        self._image_lock = None  # of an existing image replaced (imagelock)
        self.position = 0
        self.volumes = []   # final names of volumes opened so far
        self.warnings = []  # stale partial files taken over
        self._fd = None
        self._lock_fd = None    # the first volume's, locked until the end
        self._made = []         # (NAME.partial, its stat) this writer made
        self._room = 0

    def _refuse_existing(self, names=None):
        for name in names or [self.path]:
            if os.path.lexists(name):
                raise InputError(f"{name}: {what_is_there(name)}; not "
                                 f"replaced without --force")

    def _next_volume(self):
        if self._fd is not None:
            os.fsync(self._fd)
            if self._fd != self._lock_fd:
                os.close(self._fd)
            self._fd = None
        name = volume_name(self.path, len(self.volumes))
        if not self.replace:
            self._refuse_existing([name])
        elif not self.volumes and os.path.isfile(self.path):
            # so an edit of it (imgx) and this writer never both win
            self._image_lock = imagelock.acquire(self.path)
        self.volumes.append(name)
        try:
            # Held from the link of the partial to the keeping of its fd
            # and identity, so a signal there finds it in abort().
            with sighold.held():
                self._fd = create_partial(name + PARTIAL, self.warnings,
                                          locked=len(self.volumes) == 1)
                self._made.append((name + PARTIAL, os.fstat(self._fd)))
                if self._lock_fd is None:
                    self._lock_fd = self._fd
        except (BusyError, InputError):
            self.volumes.pop()      # refused: no volume of ours
            self._unlock_image()
            raise
        except BaseException:
            self._unlock_image()
            raise
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
                in_volume = self.split - self._room if self.split \
                    else self.position
                raise _write_error(exc, self.volumes[-1] + PARTIAL,
                                   in_volume, self.position) from None
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
            self._unlock_image()
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

    def _unlock_image(self):
        if self._image_lock is not None:
            imagelock.release(self._image_lock)
            self._image_lock = None

    def _link_all(self):
        """Give every volume its final name without replacing a file that
        appeared meanwhile (link fails on an existing name)."""
        self._refuse_existing(self.volumes +
                              [volume_name(self.path, len(self.volumes))])
        linked = []
        try:
            for name in reversed(self.volumes):
                self._link_one(name)
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

    def _link_one(self, name, tries=10):
        """NAME.partial linked (or, without hard links, renamed) to NAME.
        A name that was there when link looked and is gone when
        _refuse_existing looks is tried again, never taken as linked."""
        for _ in range(tries):
            try:
                if no_links(lambda: os.link(name + PARTIAL, name)):
                    # no hard links (FAT, exFAT): checked, then renamed
                    self._refuse_existing([name])
                    os.rename(name + PARTIAL, name)
                return
            except FileExistsError:
                self._refuse_existing([name])
        raise BusyError(f"{name}: another process keeps creating and "
                        f"removing this name; the image was not written")

    def abort(self):
        """Remove every partial volume this writer made (by identity: never
        another's file under the name); the old image, if any, is
        untouched."""
        for fd in {self._fd, self._lock_fd} - {None}:
            os.close(fd)
        self._fd = self._lock_fd = None
        self._unlock_image()
        for partial, made in self._made:
            try:
                if os.path.samestat(os.lstat(partial), made):
                    os.unlink(partial)
            except FileNotFoundError:
                pass
