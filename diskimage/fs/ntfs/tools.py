"""NTFS changed by ntfs-3g's tools: grown and shrunk by ``ntfsresize``, a
new serial by ``ntfslabel --new-serial``."""

import os

from .. import tooling
from ..usedmap import MapError
from .used import volume_dirty


def resize(path, size, what):
    tooling.run(["ntfsresize", "--force", "--force", "--no-progress-bar",
                 "--size", str(size), path], what, input_text="y\n")
    return size


def new_ids(path, what):
    """ntfslabel --new-serial, which refuses a volume marked dirty (as
    ntfsresize leaves it): the mark is cleared for it (ntfsfix -d) and set
    again after (ntfsfix), so that Windows still checks a resized volume."""
    with open(path, "rb") as dev:
        size = dev.seek(0, os.SEEK_END)
        try:
            dirty = volume_dirty(
                lambda offset, length: os.pread(dev.fileno(), length, offset),
                size)
        except MapError as exc:
            raise tooling.ResizeError(f"{what}: {exc}") from None
    if dirty:
        tooling.run(["ntfsfix", "-d", path], what)
    tooling.run(["ntfslabel", "--new-serial", path], what)
    if dirty:
        tooling.run(["ntfsfix", path], what)
