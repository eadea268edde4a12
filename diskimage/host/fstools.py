"""Running the field's filesystem tools: a tool's failure as one exception,
loop devices over byte ranges of a disk or disk file, and the FUSE mounts
(ntfs-3g, exfat-fuse) that must be waited for.  Used by the demo disks, by
imgx's edits and by restore's filesystem resizing.  Nothing prints."""

import contextlib
import os
import subprocess
import tempfile
import time

from .. import sighold
from .tools import tool_env


class ToolError(RuntimeError):
    """A tool failed (`returncode` set, message has its stderr) or is missing
    (`returncode` None)."""

    def __init__(self, message, returncode=None, output=""):
        super().__init__(message)
        self.returncode = returncode
        self.output = output


def run(args, *, check=True, input=None, env=None, cwd=None):
    """The tool's CompletedProcess (text); ToolError when it is missing or,
    with `check`, exits non-zero."""
    full_env = tool_env(env)
    try:
        proc = subprocess.run(args, input=input, capture_output=True,
                              encoding="utf-8", errors="replace",
                              env=full_env, cwd=cwd,
                              stdin=None if input is not None
                              else subprocess.DEVNULL)
    except FileNotFoundError:
        raise ToolError(f"{args[0]}: not found (needs e2fsprogs, dosfstools, "
                        "mtools, ntfs-3g, fdisk)") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise ToolError(f"{' '.join(map(str, args))} failed with exit "
                        f"{proc.returncode}: {detail}", proc.returncode,
                        proc.stdout + proc.stderr)
    return proc


@contextlib.contextmanager
def loop_device(path, start, size, read_only=True):
    """A loop device over bytes [start, start+size) of `path`, detached on
    exit."""
    args = ["losetup", "--find", "--show", "-o", str(start),
            "--sizelimit", str(size)]
    if read_only:
        args.append("--read-only")
    # Signals that end the command (Ctrl-C, SIGTERM, SIGHUP) wait while
    # losetup attaches and detaches: Python would kill it on one, and a
    # device attached before its name came back would be left behind.
    old = _hold_signals()
    try:
        dev = run(args + [os.fspath(path)]).stdout.strip()
    except BaseException:
        _release_signals(old)
        raise
    try:
        _release_signals(old)       # one that came meanwhile raises here
        yield dev
    finally:
        old = _hold_signals()
        try:
            run(["losetup", "-d", dev])
        finally:
            _release_signals(old)


def _hold_signals():
    """Hold the signals that end a command (sighold): the state to give
    _release_signals."""
    return sighold.hold()


def _release_signals(old):
    sighold.release(old)


@contextlib.contextmanager
def ntfs_mount(source, mountpoint, options):
    """ntfs-3g kept in the foreground, so unmounting waits for its flush."""
    os.makedirs(mountpoint, exist_ok=True)
    with tempfile.TemporaryFile() as log:
        held = sighold.hold()     # until the mount is up and its undo armed
        try:
            proc = subprocess.Popen(
                ["ntfs-3g", "-o", f"{options},no_detach", os.fspath(source),
                 mountpoint], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=tool_env())
        except FileNotFoundError:
            sighold.release(held)
            raise ToolError("ntfs-3g: not found (install ntfs-3g)") from None

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
            _unmount(mountpoint)
        finally:
            sighold.release(held)


def _unmount(mountpoint):
    if run(["umount", mountpoint], check=False).returncode:
        run(["umount", "-l", mountpoint], check=False)
