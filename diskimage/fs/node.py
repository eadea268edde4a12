"""One directory entry as imgx's readers give it (diskimage.fs.read and
the readers of fs/xfs, fs/btrfs and fs/lvm)."""

import stat
from dataclasses import dataclass, field

_KINDS = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink"}


def kind_of(mode):
    """A Node's kind for a POSIX mode: "dir", "file", "symlink" or
    "other"."""
    return _KINDS.get(stat.S_IFMT(mode), "other")


@dataclass
class Node:
    """One directory entry.  `mode` holds the file type and permission bits
    where the filesystem has them (ext), else a default that matches what
    Linux shows for it; times are POSIX seconds (None when unknown)."""

    name: str
    kind: str                   # "dir", "file", "symlink" or "other"
    size: int
    mode: int
    mtime: float | None = None
    atime: float | None = None
    uid: int | None = None
    gid: int | None = None
    target: str | None = None   # symlink target
    inode: int | None = None    # where the filesystem numbers them (ext)
    nlink: int = 1              # names of a file's inode (hard links)
    handle: object = field(default=None, repr=False, compare=False)

    @property
    def is_dir(self):
        return self.kind == "dir"
