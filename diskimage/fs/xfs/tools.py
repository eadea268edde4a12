"""XFS changed by xfsprogs: grown with ``xfs_growfs`` on a temporary mount
(XFS grows only while mounted, and never shrinks), a new UUID with
``xfs_admin -U generate`` (unmounted, log clean)."""

import contextlib
import os
import stat
import tempfile

from ... import sighold
from ...host.loop import loop_device
from .. import tooling
from .super import SUPERBLOCK


@contextlib.contextmanager
def _device(path):
    """A block device for *path*: itself, or a loop device over the file."""
    if stat.S_ISBLK(os.stat(path).st_mode):
        yield os.fspath(path)
    else:
        with loop_device(path, 0, tooling.device_size(path),
                         read_only=False) as dev:
            yield dev


@contextlib.contextmanager
def _mounted(path, what):
    """*path* mounted on a private temporary directory, unmounted after."""
    with _device(path) as dev, tempfile.TemporaryDirectory(
            prefix="rdeploy-xfs-") as mnt:
        with sighold.held():
            tooling.run(["mount", "-t", "xfs", dev, mnt], what)
        try:
            yield mnt
        finally:
            with sighold.held():
                tooling.run(["umount", mnt], what)


def _blocks(path):
    """(block size, data blocks) from the superblock at *path*."""
    with open(path, "rb") as dev:
        sb = SUPERBLOCK.unpack(dev.read(SUPERBLOCK.size))
    return sb.sb_blocksize, sb.sb_dblocks


def grow(path, size, what):
    """Grow the XFS at *path* to *size* bytes (whole blocks); returns the
    size reached."""
    bs, _ = _blocks(path)
    with _mounted(path, what) as mnt:
        tooling.run(["xfs_growfs", "-D", str(size // bs), mnt], what)
    bs, blocks = _blocks(path)
    return blocks * bs


def new_ids(path, what):
    tooling.run(["xfs_admin", "-U", "generate", os.fspath(path)], what)
