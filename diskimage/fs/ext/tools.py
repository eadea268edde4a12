"""ext2/3/4 changed by e2fsprogs: grown and shrunk by ``resize2fs`` (after
``e2fsck -fy``), a new UUID by ``tune2fs -U random``; and how to read the
verdict of ``e2fsck -fn``."""

import re

from .. import tooling

_UNCLEAN = re.compile(r"Superblock invalid|Bad magic number")


def verdict(returncode, output):
    """e2fsck -n falls back to a backup superblock and still exits 0."""
    return returncode == 0 and not _UNCLEAN.search(output)


def e2fsck(path, what):
    """e2fsck -fy: exit 1 means errors were fixed, which resize2fs needs."""
    done = tooling.call(["e2fsck", "-fy", path], what)
    if done.returncode not in (0, 1):
        raise tooling.ResizeError(f"{what}: e2fsck found errors it could not "
                                  f"fix (exit {done.returncode})")


def resize(path, size, what):
    e2fsck(path, what)
    tooling.run(["resize2fs", "-f", path, f"{size // 1024}K"], what)
    return size


def new_ids(path, what):
    e2fsck(path, what)
    tooling.run(["tune2fs", "-U", "random", path], what, input_text="y\n")
