"""One writer per image: the lock every program that rewrites or replaces
an image holds for its whole transaction (imgx's edits and rewrites, and
any :class:`~diskimage.image.volumeout.VolumeOutput` that replaces an existing
image, such as ``rdeploy capture --force``).

The lock is flock(2) on the image file itself (the first volume of a split
image), so there is no lock file to leave behind.  An edit ends by renaming
a new file over the image, which changes the inode: a process that opened
the old file and then got its lock finds that the name now holds another
inode, and tries again on the new one.  The writer holds the lock on the
old inode until after its rename, so nobody can read the old image and
write it again in between.

Readers that copy an image into another file hold a shared lock, so that
no edit replaces the volumes under them; edits in place, and writers over
an existing image, hold it exclusively.  A second writer is refused at
once (BusyError, exit 9) rather than left to wait behind an edit that may
take minutes; the message says whether readers or a writer hold it.
Within one process the lock is re-entrant: an edit that holds its image
and then replaces it through VolumeOutput does not lock itself out.  A
shared hold is never upgraded to an exclusive one (flock would see its own
process as the other holder): asking for that is a bug and says so.  The lock is advisory: it binds this toolkit, not other
programs.  An image on a filesystem without file locks (ENOLCK: an NFS
mount without its lock daemon) is refused with one line naming it
(InputError), never a raw OSError.
"""

import contextlib
import fcntl
import os

from ..errors import BusyError, DiskImageError, InputError
from ..host.partial import lock_named

#: (st_dev, st_ino) -> [shared, count] of the locks this process holds.
_HELD = {}


def _held(path):
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    key = (st.st_dev, st.st_ino)
    return key, _HELD.get(key)


def _holder(path, shared):
    """What the process that holds `path` does, for the busy message: a
    shared lock that can be had means only readers hold it."""
    if not shared:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return ("another process is reading this image (copying, "
                        "converting or splitting it)")
            except OSError:
                pass
            finally:
                os.close(fd)
    return "another process is editing, rewriting or replacing this image"


def acquire(path, shared=False):
    """Lock the image at `path` (exclusively unless `shared`); returns a
    token for :func:`release`.  BusyError while another process holds it."""
    key, held = _held(path)
    if held is not None:
        if held[0] and not shared:
            # flock would treat our own shared hold as another process's
            # lock; upgrading in place would drop it for a moment.  No
            # caller needs this: it is a bug.
            raise DiskImageError(f"{path}: the shared lock this process "
                                 f"holds cannot be upgraded to an "
                                 f"exclusive one (a bug)")
        held[1] += 1              # held here already, as strongly
        return (key, None)
    try:
        fd = lock_named(path, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                        | fcntl.LOCK_NB)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except BlockingIOError:
        raise BusyError(f"{path}: {_holder(path, shared)}; nothing "
                        f"changed (try again when it is done)") from None
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    _HELD[key] = [shared, 1]
    return (key, fd)


def release(token):
    key, fd = token
    held = _HELD.get(key)
    if held is not None:
        held[1] -= 1
        if held[1] == 0:
            del _HELD[key]
    if fd is not None:
        os.close(fd)


@contextlib.contextmanager
def image_lock(path, shared=False):
    """Hold the image at `path` locked (exclusively unless `shared`)."""
    token = acquire(path, shared)
    try:
        yield
    finally:
        release(token)
