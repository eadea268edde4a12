"""The FUSE mounts that must be waited for: ntfs-3g kept in the foreground
(so unmounting waits for its flush) and a read-only exfat-fuse mount, each
set up and torn down with the signals that end a command held.  Used by the
demo disks and imgx's edits.  Nothing prints."""

import contextlib
import os
import tempfile
import time

from .. import sighold
from ..errors import ToolError
from .tools import run, start


@contextlib.contextmanager
def ntfs_mount(source, mountpoint, options):
    """ntfs-3g kept in the foreground, so unmounting waits for its flush."""
    os.makedirs(mountpoint, exist_ok=True)
    with tempfile.TemporaryFile() as log:
        held = sighold.hold()     # until the mount is up and its undo armed
        try:
            proc = start(
                ["ntfs-3g", "-o", f"{options},no_detach", os.fspath(source),
                 mountpoint], stdout=log, stderr=log)
        except BaseException:
            sighold.release(held)
            raise

        def fail(message):
            log.seek(0)
            text = log.read().decode("utf-8", "replace").strip()
            return ToolError(f"ntfs-3g {source}: {message}: {text}",
                             proc.returncode, text)

        deadline = time.monotonic() + 30
        try:
            while not os.path.ismount(mountpoint):
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    raise fail(f"not mounted (exit {proc.returncode})")
                time.sleep(0.01)
        except BaseException:
            sighold.release(held)
            raise
        try:
            sighold.release(held)   # one that came meanwhile raises here
            yield mountpoint
        finally:
            held = sighold.hold()
            try:
                _unmount(mountpoint)
                try:
                    proc.wait(timeout=60)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
            finally:
                sighold.release(held)
            if proc.returncode:
                raise fail(f"exited with {proc.returncode} after unmount")


@contextlib.contextmanager
def exfat_mount(device, mountpoint):
    """A read-only exfat-fuse mount; umount waits for the driver."""
    os.makedirs(mountpoint, exist_ok=True)
    held = sighold.hold()      # as for losetup: the mount, then its undo
    try:
        run(["mount.exfat-fuse", "-o", "ro", device, mountpoint])
    except BaseException:
        sighold.release(held)
        raise
    try:
        sighold.release(held)       # one that came meanwhile raises here
        yield mountpoint
    finally:
        held = sighold.hold()
        try:
            unmount_fuse(mountpoint)
        finally:
            sighold.release(held)


def _unmount(mountpoint):
    if run(["umount", mountpoint], check=False).returncode:
        run(["umount", "-l", mountpoint], check=False)


def _daemons(mountpoint, driver):
    """The processes serving the FUSE mount at `mountpoint`: `driver`
    (e.g. mount.exfat-fuse) run with the mountpoint in its argv."""
    wanted, found = os.fsencode(os.path.abspath(mountpoint)), []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == os.fsencode(driver) and \
                wanted in argv[1:]:
            found.append(name)
    return found


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def unmount_fuse(mountpoint, driver="mount.exfat-fuse", timeout=60):
    """Unmount a FUSE mount whose daemon runs in the background
    (exfat-fuse) and wait for that daemon to end: umount returns before it
    has written its last blocks (exFAT's VolumeDirty flag cleared), so the
    disk under it is not complete until then.  ntfs-3g needs none of this:
    :func:`ntfs_mount` keeps it in the foreground and waits for it."""
    daemons = _daemons(mountpoint, driver)
    _unmount(mountpoint)
    deadline = time.monotonic() + timeout
    while any(_running(pid) for pid in daemons):
        if time.monotonic() > deadline:
            raise ToolError(f"{mountpoint}: the FUSE driver did not end "
                            f"{timeout} s after the unmount")
        time.sleep(0.01)
