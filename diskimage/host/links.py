"""Symlinks at output paths: how a refusal names one, and the refusal of a
link to nothing as a target (an output is never created through a link).
Kept apart from device.py so that volumes.py, bootdisk and imgx can use it
without importing the device layer."""

import os

from ..errors import TargetError


def what_is_there(path):
    """How a refusal names what is at an output path: "exists", or, for a
    symlink to nothing, that (an output is never written through it)."""
    if os.path.islink(path) and not os.path.exists(path):
        return (f"is a symlink to {os.readlink(path)}, which does not "
                f"exist")
    return "exists"


def refuse_dangling_link(path):
    """A target that is a symlink to nothing: refused, not created at the
    link's end (a link to an existing file or device is followed)."""
    if os.path.islink(path) and not os.path.exists(path):
        raise TargetError(
            f"{path}: {what_is_there(path)}; restore does not create files "
            f"through links: give the new file's own path")
