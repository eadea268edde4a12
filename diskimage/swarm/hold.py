"""Who may write a swarm's disk bytes: a receive holds its TARGET, a
seeder the NAME.raw files it serves, for their whole lives.

A block device is held by an O_EXCL descriptor (the kernel then refuses
every other O_EXCL open: another receive, `rdeploy restore`, a mount); a
disk file by flock(2) on it, exclusive for a receive, shared for a
seeder (several seeders may serve one file; nobody may write it while
one does).  The lock is advisory and binds this toolkit only.  Refused:
TargetError (exit 5) "in use", nothing written.
"""

import errno
import fcntl
import os
import stat

from ..errors import TargetError
from ..host.partial import lock
from ..host.identity import same_storage
from ..image import format as fmt

BUSY = "another rdeploy swarm receive or seed holds it"


def hold(path, *, shared=False, error=TargetError):
    """An fd of `path` that holds it (see above); close it to let go."""
    st = os.stat(path)
    block = stat.S_ISBLK(st.st_mode)
    flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_EXCL if block and not shared
                                           else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise error(f"{path} is in use (mounted or held by another "
                        f"program)") from None
        raise error(f"{path}: cannot open: {exc.strerror}") from None
    if block:
        return fd
    try:
        lock(fd, path, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) |
             fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise error(f"{path} is in use ({BUSY})") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def refuse_own_files(target, torrent, desc):
    """A receive whose TARGET is the torrent file SOURCE or the NAME.raw
    beside it (what a seeder serves the torrent from) would destroy them:
    TargetError (exit 5); so would one onto an rdeploy image file (a
    disk does not start with the .rdi magic)."""
    if os.path.isfile(target):
        with open(target, "rb") as f:
            if f.read(len(fmt.MAGIC)) == fmt.MAGIC:
                raise TargetError(f"{target}: is an rdeploy image, not a "
                                  f"disk: receiving onto it would destroy "
                                  f"it; give another target")
    if not isinstance(torrent, (str, os.PathLike)) or \
            "://" in os.fspath(torrent) or \
            os.fspath(torrent).startswith("magnet:") or \
            not os.path.exists(target):
        return
    raw = os.path.join(os.path.dirname(os.path.abspath(torrent)), desc.name)
    for name, what in ((torrent, "the torrent itself"),
                       (raw, "the torrent's own NAME.raw (what it is "
                             "seeded from)")):
        if os.path.exists(name) and same_storage(target, name):
            raise TargetError(f"{target}: is {what}: receiving onto it "
                              f"would destroy it; give another target")


