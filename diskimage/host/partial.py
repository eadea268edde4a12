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

A filesystem without flock (ENOLCK: an NFS mount without its lock daemon)
is refused with one line naming the file (InputError), never a raw OSError.

:func:`partial_file` is the whole way for one output file: its partial
created as above, written, fsynced, and given its final name only when
whole, over an existing file only when asked.
"""

import contextlib
import errno
import fcntl
import os
import stat

from .. import sighold
from ..errors import (NO_SPACE_ERRNOS, BusyError, InputError, NoSpaceError,
                      no_space_left)
from .links import what_is_there

PARTIAL = ".partial"

#: flock errors that mean "this filesystem has no locks", not "busy".
_NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)


def lock(fd, name, how):
    """flock(fd, how).  BlockingIOError (held by another) is raised as it
    is; a filesystem without locks is an InputError naming `name`."""
    try:
        fcntl.flock(fd, how)
    except BlockingIOError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LOCKS:
            raise
        raise InputError(f"{name}: cannot lock it: its filesystem has no "
                         f"file locks ({exc.strerror}); use a local "
                         f"filesystem, or mount it with locking") from None


def lock_named(path, how):
    """An fd of `path` (O_RDONLY, O_CLOEXEC, O_NONBLOCK: a FIFO there is
    opened, not waited on) holding flock(how) on the inode the name holds
    once it is locked.  A writer renames a new file over the name, so an
    fd that got its lock on an inode the name no longer holds is closed and
    the new one tried, up to 10 times (then BusyError).  FileNotFoundError
    and BlockingIOError (held by another) are raised as they are, for the
    caller to word; a filesystem without locks is InputError (lock)."""
    for _ in range(10):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            lock(fd, path, how)
        except BaseException:
            os.close(fd)
            raise
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)                 # replaced meanwhile: lock the new one
    raise BusyError(f"{path}: replaced again and again while it was being "
                    f"locked; nothing changed")


def create_partial(partial, warnings, locked=True):
    """An fd of a new, empty `partial` open for writing.  With `locked`,
    the fd holds an exclusive flock; without, the caller must hold a lock
    that every writer of `partial` takes first (a later volume of a split
    image is guarded by its first volume's).

    Call it with the signals held (sighold.held) over the call and the
    keeping of its fd: a signal just after the link, before the caller has
    the fd, would leave NAME.partial that no clean-up knows of."""
    sighold.started()       # a new output: an interrupt undoes it again
    private = f"{partial}.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                     os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise InputError(f"{partial}: cannot create: {exc.strerror}") \
            from None
    try:
        lock(fd, partial, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
        try:
            lock(fd, partial, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise
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
                lock(fd, partial, fcntl.LOCK_EX | fcntl.LOCK_NB)
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


def output_path(path, replace=False):
    """The file an output named `path` is written to, by the one rule of
    every command (docs/rdeploy.md, "Outputs"): a symlink to an existing
    regular file names that file (with `replace` it is replaced and the
    link stays a link); a symlink to nothing is refused, replace or not
    (InputError): nothing is created through a link."""
    path = os.fspath(path)
    if os.path.islink(path):
        if not os.path.exists(path):
            raise InputError(f"{path}: {what_is_there(path)}; an output is "
                             f"never created through a link, --force or "
                             f"not: give the new file's own path")
        if replace and os.path.isfile(path):
            path = os.path.realpath(path)
    return path


def refuse_existing(path, replace=False):
    """Refuse, before any work is done, an output that cannot be written:
    a symlink to nothing, an existing file without `replace`, a folder
    that does not exist (InputError).  Returns the file the output is
    written to (:func:`output_path`)."""
    target = output_path(path, replace)
    if os.path.lexists(path) and not replace:
        raise InputError(f"{path}: {what_is_there(path)} (give --force to "
                         f"replace it)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError(f"{parent}: no such directory for the output")
    return target


@contextlib.contextmanager
def partial_file(path, replace=False, warnings=None, mode=None):
    """Write the file `path` by way of ``PATH.partial``: yields a binary
    file open for writing on a new partial (:func:`create_partial`:
    exclusive, locked, never through a symlink; a stale one taken over is
    said in `warnings`).  When the block ends well the file is fsynced
    (and given `mode`) and takes the name `path`: over an existing file
    only with `replace`, else by link(2), which never replaces what is
    there (InputError).  When it fails, the partial is removed.  The lock
    is held until the file has its name.  A `path` that is a symlink to an
    existing file names that file (it is replaced, the link stays a link,
    as VolumeOutput does); a symlink to nothing is refused (InputError),
    replace or not: nothing is created through a link."""
    path = output_path(path, replace)
    if os.path.lexists(path) and not replace:
        raise InputError(f"{path}: exists; not replaced without --force")
    if os.path.exists(path) and not os.path.isfile(path):
        raise InputError(f"{path}: exists and is not a regular file; not "
                         f"replaced")
    partial = path + PARTIAL
    fd = None
    try:
        with sighold.held():    # the fd ours before a signal lands
            fd = create_partial(partial, [] if warnings is None else warnings)
        with open(fd, "wb", closefd=False) as f:
            yield f
        if mode is not None:
            os.fchmod(fd, mode)
        os.fsync(fd)
        publish(partial, path, replace)
    except BaseException as exc:
        if fd is not None:
            _remove_own(partial, fd)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS \
                and exc.filename is None:       # a write to the partial
            raise NoSpaceError(f"{path}: {no_space_left(exc)} while it was "
                               f"written (as {partial}, removed)") from None
        raise
    finally:
        if fd is not None:
            os.close(fd)


def publish(partial, path, replace=False):
    """Give the whole file `partial` the name `path`: os.replace with
    `replace`; else link(2), so that a file that appeared under `path`
    meanwhile is kept (InputError); then fsync the directory.  The
    commit step: signals held, then committed (diskimage.sighold)."""
    with sighold.held():
        _publish(partial, path, replace)
        sighold.committed(path)


def _publish(partial, path, replace):
    if replace:
        os.replace(partial, path)
    else:
        try:
            if no_links(lambda: os.link(partial, path)):
                if os.path.lexists(path):        # FAT: checked, renamed
                    raise FileExistsError
                os.rename(partial, path)
            else:
                os.unlink(partial)
        except FileExistsError:
            raise InputError(f"{path}: exists; not replaced without "
                             f"--force") from None
    directory = os.open(os.path.dirname(os.path.abspath(path)),
                        os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _remove_own(partial, fd):
    """Remove `partial` if it is still the file `fd` (never another's)."""
    with contextlib.suppress(OSError):
        if os.path.samestat(os.lstat(partial), os.fstat(fd)):
            os.unlink(partial)
