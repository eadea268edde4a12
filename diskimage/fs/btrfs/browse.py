"""imgx's reader of btrfs, over dissect.btrfs (diskimage.fs.read names it
"btrfs" in its _BACKENDS).

The root imgx shows is the top-level subvolume (id 5, what `mount -o
subvolid=5` shows), not the default subvolume a plain mount would pick:
every subvolume and snapshot is then a directory at the path where it was
created, so `IMAGE:1/home/notes.txt` reads notes.txt of the subvolume
"home", and `IMAGE:1/.snapshots/1/snapshot/etc/fstab` a file of a snapper
snapshot.  Inode numbers restart in each subvolume, so a directory's key
(for the loop check of a walk) is (subvolume id, inode number).
"""

from ..bounded import btrfs_cursor, link as link_target
from ..node import Node, kind_of


class Btrfs:
    def __init__(self, fh):
        from dissect.btrfs import Btrfs as Reader
        btrfs_cursor()          # dissect's B-tree walks bounded
        self.fs = Reader(fh)
        self.root = self._node("", self.fs.fs_tree.root)

    def _node(self, name, inode):
        item = inode.inode
        kind = kind_of(item.mode)
        node = Node(name, kind, item.size if kind == "file" else 0,
                    item.mode, inode.mtime_ns / 1e9,
                    inode.atime_ns / 1e9, item.uid, item.gid,
                    inode=(inode.subvolume.objectid, inode.inum),
                    nlink=item.nlink, handle=inode)
        if kind == "symlink":
            node.target = link_target(inode)
        return node

    def children(self, node):
        return [self._node(name, inode) for name, inode in
                node.handle.iterdir() if name not in (".", "..")]

    def open(self, node):
        return node.handle.open()
