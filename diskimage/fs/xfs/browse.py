"""How imgx reads an XFS volume: dissect.xfs over the image's view, behind
the small interface of diskimage.fs.read (a Node per directory entry,
children, open).  dissect.xfs reads v4 and v5 volumes, short-form, block,
leaf and node directories and extent-mapped files; it has no extended
attributes, so none are listed."""

from ..bounded import link as link_target
from ..node import Node, kind_of


class XfsReader:
    """The reader named "xfs" in diskimage.fs.read._BACKENDS."""

    def __init__(self, fh):
        from dissect.xfs import XFS
        self.fs = XFS(fh)
        self.root = self._node("", self.fs.root)

    def _node(self, name, inode):
        core = inode.inode
        mode = core.di_mode
        kind = kind_of(mode)
        # v1 inodes keep the link count in di_onlink
        nlink = core.di_nlink if core.di_version > 1 else core.di_onlink
        node = Node(name, kind, inode.size, mode, inode.mtime_ns / 1e9,
                    inode.atime_ns / 1e9, core.di_uid, core.di_gid,
                    inode=inode.inum, nlink=nlink, handle=inode)
        if kind == "symlink":
            node.target = link_target(inode)
        return node

    def children(self, node):
        return [self._node(i.filename, i) for i in node.handle.iterdir()
                if i.filename not in (".", "..")]

    def open(self, node):
        return node.handle.open()
