"""Creating ``NAME.partial`` files that no second writer can truncate.

A writer creates its partial file under a private name, locks it
(``flock``), and only then links it to ``NAME.partial``: link fails when the
name exists, so the file is never truncated or shared, and it is locked from
the moment it has its name.  The writer holds the lock until it renames the
file to its final name or removes it.

When ``NAME.partial`` exists:

* locked by a live process: another writer is at work; :class:`BusyError`
  (exit 9) naming the file.
* not a regular file (a symlink, a directory, a FIFO): refused, and never
  followed or opened for writing; the user removes it.
* not locked: its writer died (a crash, SIGKILL, a power cut); such a file
  can never become whole, so it is removed, the new one takes its place, and
  a warning says so.  (flock locks vanish with the process that held them.)
"""

import errno
import fcntl
import os
import stat

from .errors import BusyError, InputError


def create_partial(partial, warnings, locked=True):
    """An fd of a new, empty `partial` open for writing.  With `locked`,
    the fd holds an exclusive flock; without, the caller must hold a lock
    that every writer of `partial` takes first (a later volume of a split
    image is guarded by its first volume's)."""
    private = f"{partial}.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                     os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise InputError(f"{partial}: cannot create: {exc.strerror}") \
            from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        while True:
            try:
                if no_links(lambda: os.link(private, partial)):
                    fd, mine = None, fd
                    os.close(mine)
                    return _create_in_place(partial, warnings, locked)
                return fd
            except FileExistsError:
                _take_over(partial, warnings, locked)
            except OSError as exc:
                raise InputError(f"{partial}: cannot create: "
                                 f"{exc.strerror}") from None
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    finally:
        try:
            os.unlink(private)
        except FileNotFoundError:
            pass


_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK)


def no_links(do_link):
    """Call do_link(); True when the filesystem has no hard links (FAT,
    exFAT: a USB stick), False when it linked; other errors are raised."""
    try:
        do_link()
    except OSError as exc:
        if exc.errno in _NO_LINKS:
            return True
        raise
    return False


def _create_in_place(partial, warnings, locked):
    """Where there are no hard links: O_EXCL under the final name, then
    the lock.  A second writer that opens it in between finds it unlocked
    and empty; so a file is only taken over when it holds bytes."""
    while True:
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                         os.O_CLOEXEC, 0o644)
        except FileExistsError:
            _take_over(partial, warnings, locked, empty_is_busy=locked)
            continue
        except OSError as exc:
            raise InputError(f"{partial}: cannot create: {exc.strerror}") \
                from None
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd


def _take_over(partial, warnings, locked, empty_is_busy=False):
    """Remove `partial` when no live writer holds it; else BusyError."""
    try:
        fd = os.open(partial, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW |
                     os.O_NONBLOCK)
    except FileNotFoundError:
        return      # its writer just finished or gave up: try again
    except OSError as exc:     # ELOOP: a symlink, never followed
        what = "a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise InputError(f"{partial}: exists and is not a partial file "
                         f"({what}); remove it") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{partial}: exists and is not a partial file "
                             f"(not a regular file); remove it")
        if locked:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BusyError(f"{partial}: another process is writing "
                                f"this file now; wait for it to finish, or "
                                f"choose another name") from None
        st = os.fstat(fd)
        if empty_is_busy and st.st_size == 0:
            raise BusyError(f"{partial}: another process is creating this "
                            f"file now; wait for it to finish, or choose "
                            f"another name")
        try:
            now = os.stat(partial)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
            os.unlink(partial)
            warnings.append(f"{partial}: left by an earlier run that did "
                            f"not finish (no process holds it); replaced")
    finally:
        os.close(fd)
