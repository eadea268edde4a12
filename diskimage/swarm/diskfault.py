"""TARGET's faults on a receiver, each as one line naming TARGET.

* fault(alert, target): what a libtorrent storage alert (file_error_alert,
  torrent_error_alert) says.  libtorrent's own message names the torrent
  by a cut infohash and the file by the private symlink
  (rdeploy-swarm-XXXX/NAME.raw), gone by the time anyone reads it:

      /mnt/pc.img: swarm receive failed: file_write: No space left on
      device (ENOSPC)

* flush(target): before the check, everything libtorrent wrote is synced
  to the medium and dropped from the page cache.  libtorrent never syncs,
  and a disk whose writes fail only when the kernel writes its cache back
  (EIO: a bad disk, a loop device over a full filesystem) would otherwise
  pass the check from the cache: "verified", and not on the disk.

* mark_again(target, marker, exc): the restore marker written back over
  byte 0 after a failed or interrupted check; when that write fails too,
  one line says both and that the disk must not be trusted.
"""

import errno
import os
import re

from .. import restoremark
from ..errors import DiskImageError, TargetChangedError
from ..host.device import open_target as open_disk

#: libtorrent's message: "NAME OPERATION (FILE) error: WHAT"
_OPERATION = re.compile(r"\s(\w+) \([^()]*\) error:")
MARKED = "it is marked incomplete (rdeploy verify-target exits 13)"


def named(number, text):
    """`text` with the errno's name after it: "... (ENOSPC)"."""
    name = errno.errorcode.get(number)
    return f"{text} ({name})" if name else text


def fault(alert, target):
    """One line naming TARGET, the operation that failed (file_write,
    file_read, file_open ...) and the cause, with its errno name when the
    error is the system's."""
    text = alert.message()
    found = _OPERATION.search(text)
    operation = found.group(1) if found else "access"
    error = getattr(alert, "error", None)
    if error is None or not error.value():
        return f"{target}: swarm receive failed: {text}"
    why = error.message()
    if error.category().name() in ("system", "generic"):
        why = named(error.value(), why)
    return f"{target}: swarm receive failed: {operation}: {why}"


def flush(target):
    """TARGET synced (a write-back error: TargetChangedError, exit 8) and
    its pages dropped from the cache, so that the check reads the disk."""
    with open_disk(target, exclusive=False) as disk:
        try:
            os.fsync(disk.fd)
        except OSError as exc:
            raise write_back_failed(target, exc) from None
        os.posix_fadvise(disk.fd, 0, 0, os.POSIX_FADV_DONTNEED)


def write_back_failed(target, exc):
    """The TargetChangedError (exit 8) of a sync of TARGET that failed
    (`exc`: the OSError, or the DiskImageError host.device.sync made of
    it): the pieces libtorrent wrote did not reach the disk."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    why = named(cause.errno, cause.strerror) \
        if isinstance(cause, OSError) else str(exc)
    return TargetChangedError(f"{target}: swarm receive failed: writing "
                              f"the pieces back to the disk: {why}; "
                              f"{MARKED}")


def mark_again(target, marker, exc):
    """The marker written back at byte 0 of TARGET; a failure of that
    write is TargetChangedError naming it and `exc`, what went first."""
    try:
        with open_disk(target, exclusive=False) as disk:
            restoremark.write(disk, marker)
    except DiskImageError as second:
        first = str(exc).removesuffix(f"; {MARKED}") or type(exc).__name__
        raise TargetChangedError(
            f"{first}; writing the restore marker back failed too "
            f"({second}): do not trust this disk") from None
