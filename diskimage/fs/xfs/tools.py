"""XFS changed by xfsprogs: grown with ``xfs_growfs`` on a temporary mount
(XFS grows only while mounted, and never shrinks), a new UUID with
``xfs_admin -U generate`` (unmounted, log clean)."""

import os

from .. import tooling
from .super import SUPERBLOCK


def _mounted(path, what):
    return tooling.mounted(path, "xfs", what)


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
