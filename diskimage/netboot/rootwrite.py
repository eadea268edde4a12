"""Files written into the boot root: each one whole (NAME.partial, fsync,
rename), never through a symlink, only inside the root; and the removal
of per-machine files of machines the site no longer has."""

import os
import stat

from ..errors import InputError
from ..host.partial import partial_file
from . import macaddr
from .rootpath import Refused, relative


def own_directory(path, why):
    """Make `path` a directory of its own: made (0755) when missing; a
    symlink or a file there is refused, never followed.  `why` ends the
    refusal: what is never done through it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return
    if not stat.S_ISDIR(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise InputError(f"{path}: {kind}; {why}")


def _directory(root, rel):
    """The directory of `rel` inside root, each component made as needed
    and refused when it is a symlink or a file (own_directory)."""
    path = root
    for part in rel.split("/")[:-1]:
        path = os.path.join(path, part)
        own_directory(path, "configs are never written through it")
    return path


def write(root, files):
    """Write each file whole (NAME.partial, fsync, rename), never through
    a symlink.  Returns the root-relative names written."""
    root = os.fspath(root)
    if os.path.islink(root) or not os.path.isdir(root):
        raise InputError(f"{root}: the boot root must be a directory of its "
                         f"own")
    written = []
    for rel, data in sorted(files.items()):
        try:
            rel = relative(rel)
        except Refused as exc:
            raise InputError(f"{rel!r}: {exc}") from None
        _directory(root, rel)
        path = os.path.join(root, rel)
        if os.path.islink(path):
            raise InputError(f"{path}: a symlink; configs are never written "
                             f"through one")
        with partial_file(path, replace=True, mode=0o644) as out:
            out.write(data)
        written.append(rel)
    return written


def prune(root, keep):
    """Remove the per-machine files of machines no longer in the site
    (names macaddr knows that are not in `keep`): a machine taken out of
    the site must not keep its job.  Returns the names removed."""
    root = os.fspath(root)
    removed = []
    for folder in ("pxelinux.cfg", "grub", "ipxe"):
        directory = os.path.join(root, folder)
        if os.path.islink(directory) or not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            rel = f"{folder}/{name}"
            if rel in keep or macaddr.from_request(rel) is None:
                continue
            path = os.path.join(directory, name)
            if os.path.isfile(path) or os.path.islink(path):
                os.unlink(path)
                removed.append(rel)
    return removed
