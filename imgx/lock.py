"""One writer per image: the lock every imgx command that rewrites an
image holds for its whole transaction.

The lock is flock(2) on the image file itself (the first volume of a split
image), so there is no lock file to leave behind.  An edit ends by renaming
a new file over the image, which changes the inode: a process that opened
the old file and then got its lock finds that the name now holds another
inode, and tries again on the new one.  The writer holds the lock on the
old inode until after its rename, so nobody can read the old image and
write it again in between.

Readers that copy an image into another file (split, join, recompress,
convert with an output, describe -o) hold a shared lock, so that no edit
replaces the volumes under them; edits in place, and an import over an
existing image, hold it exclusively.  A
second writer is refused at once (BusyError, exit 9) rather than left to
wait behind an edit that may take minutes.  The lock is advisory: it binds
imgx, not other programs.  An image on a filesystem without file locks
(ENOLCK: an NFS mount without its lock daemon) is refused with one line
naming it (InputError), never a raw OSError.
"""

import contextlib
import fcntl
import os

from diskimage.errors import BusyError, InputError
from diskimage.partial import lock


@contextlib.contextmanager
def image_lock(path, shared=False):
    """Hold the image at `path` locked (exclusively unless `shared`)."""
    fd = None
    for _ in range(10):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        try:
            lock(fd, path, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                 | fcntl.LOCK_NB)
        except BaseException as exc:
            os.close(fd)
            if not isinstance(exc, BlockingIOError):
                raise         # a filesystem without locks: one line
            raise BusyError(f"{path}: another imgx is editing or rewriting "
                            f"this image; nothing changed (try again when "
                            f"it is done)") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)                 # replaced meanwhile: lock the new one
        fd = None
    if fd is None:
        raise BusyError(f"{path}: replaced again and again while imgx "
                        f"tried to lock it; nothing changed")
    try:
        yield
    finally:
        os.close(fd)
