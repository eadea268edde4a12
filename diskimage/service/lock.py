"""One bwpart changing a disk at a time.

Every operation that writes to a disk's service partition, its table or
its boot variables (install, update and its grow, remove, boot-next and
the arming it does, store add and rm, the service boot's state writes)
holds :func:`held` on the disk for its whole course.  The lock is flock(2)
LOCK_EX on the disk's path opened O_RDONLY: a disk image file and a block
device alike (for a device node, on its inode: /dev/disk/by-* links
resolve to the same node).  A second bwpart is refused at once, before it
reads anything it would act on (BusyError, exit 9: "DISK: another bwpart
is changing it (pid N); nothing changed"), never left to wait behind an
update or a store add that may take minutes.

It is the lock systemd-udevd honours on a whole block device ("Locking
Block Device Access", systemd.io/BLOCK_DEVICE_LOCKING): while it is held
udev does not probe the disk's half-written table; `sfdisk --lock` and
`systemd-repart` take the same one.  The lock is advisory: it binds the
tools that take it, not a plain dd.

Reads (status, store ls) do not lock: they may see a step half done, and
say what they see.  Within one process the lock is re-entrant (update
calls partition.grow and store.ls, remove calls arming.disarm); the fd is
O_CLOEXEC, so the tools bwpart runs (mkfs.fat, syslinux, resize2fs) do not
inherit it, and a job the service boot runs is started with the lock
released (the job may run ``bwpart boot-next`` or ``bwpart store add``
itself).
"""

import contextlib
import fcntl
import os
import stat

from ..errors import BusyError, InputError
from ..host.partial import lock as _flock

PROC_LOCKS = "/proc/locks"

#: key of a locked disk -> [fd, count] of the holds of this process.
_HELD = {}


def _key(st):
    if stat.S_ISBLK(st.st_mode):
        return ("blk", st.st_rdev)
    return ("file", st.st_dev, st.st_ino)


def holder(st, locks=PROC_LOCKS):
    """The pid of the process holding a FLOCK WRITE lock on the inode of
    `st` (from /proc/locks), or None when it cannot be told."""
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    try:
        with open(locks, encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == want:
                return int(fields[4])
        except ValueError:
            continue
    return None


def _open(disk):
    try:
        return os.open(disk, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"{disk}: no such disk") from None
    except OSError as exc:
        raise InputError(f"{disk}: cannot open it to lock it: "
                         f"{exc.strerror}") from None


@contextlib.contextmanager
def held(disk):
    """Hold the exclusive lock on `disk` over the block; BusyError at once
    while another process holds it."""
    disk = os.fspath(disk)
    fd = _open(disk)
    st = os.fstat(fd)
    key = _key(st)
    if key in _HELD:
        os.close(fd)
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _release(key)
        return
    try:
        _flock(fd, disk, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = holder(st)
        os.close(fd)
        who = f" (pid {pid})" if pid else ""
        raise BusyError(f"{disk}: another bwpart is changing it{who}; "
                        f"nothing changed (try again when it is done)") \
            from None
    except BaseException:
        os.close(fd)
        raise
    _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        _release(key)


def _release(key):
    hold = _HELD[key]
    hold[1] -= 1
    if hold[1] == 0:
        del _HELD[key]
        os.close(hold[0])       # closing the last fd drops the flock
