"""What the filesystems' grow, shrink and new-identity functions share: one
way to run their tools (through :func:`diskimage.host.tools.run`), the
error they raise, reading a tag back with ``blkid -p``, and the temporary
mount of the filesystems that resize only while mounted (XFS, btrfs)."""

import contextlib
import os
import stat
import tempfile

from .. import sighold
from ..errors import DiskImageError, MissingToolError
from ..host.loop import loop_device
from ..host.tools import run as run_tool


class ResizeError(DiskImageError):
    """A filesystem tool refused or failed (restore reports it as
    TargetChangedError: the tools run after the first write)."""


def call(args, what, input_text=None):
    """The tool's CompletedProcess, whatever its exit; MissingToolError
    (exit 10) naming *what* and the package when it is not installed."""
    return run_tool(args, check=False, input=input_text, what=what)


def run(args, what, input_text=None):
    """The tool's stdout; ResizeError naming *what* when it fails,
    MissingToolError when it is not installed."""
    done = call(args, what, input_text)
    if done.returncode != 0:
        raise ResizeError(f"{what}: {args[0]} failed: {detail(done)}")
    return done.stdout


def detail(done):
    """The last line a failed tool wrote (or its exit code)."""
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"


def blkid(path, tag):
    """The value of `tag` (UUID, LABEL) as `blkid -p` reads it, or ""."""
    try:
        done = run_tool(["blkid", "-p", "-o", "value", "-s", tag,
                         os.fspath(path)], check=False)
    except MissingToolError:
        return ""
    return done.stdout.strip()


def device_size(path):
    """The size of a file or block device in bytes."""
    with open(path, "rb") as dev:
        return dev.seek(0, os.SEEK_END)


@contextlib.contextmanager
def _device(path):
    """A block device for *path*: itself, or a loop device over the file."""
    if stat.S_ISBLK(os.stat(path).st_mode):
        yield os.fspath(path)
    else:
        with loop_device(path, 0, device_size(path),
                         read_only=False) as dev:
            yield dev


@contextlib.contextmanager
def mounted(path, kind, what, after=None):
    """*path* (a file or block device) mounted as *kind* on a private
    temporary directory, unmounted after (mount and umount with the
    signals held); then after(device), if given, with them held too."""
    with _device(path) as dev, tempfile.TemporaryDirectory(
            prefix=f"rdeploy-{kind}-") as mnt:
        with sighold.held():
            run(["mount", "-t", kind, dev, mnt], what)
        try:
            yield mnt
        finally:
            with sighold.held():
                run(["umount", mnt], what)
                if after is not None:
                    after(dev)
