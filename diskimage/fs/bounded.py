"""Bounds put on dissect's readers where a hostile filesystem would make
them run without end (found by the imgx fuzz target, tests/fuzz).

dissect.fat follows a FAT cluster chain until it ends: a chain that loops
(an entry pointing back into its own chain) is followed forever, by a
directory listing and by a file's reads.  :func:`fat_chains` makes every
chain of a dissect FATFS stop with :class:`ChainLoop` at the first cluster
it meets twice, or when it grows longer than the volume has clusters.
The error reaches imgx through diskimage.fs.damage as "damaged filesystem:
the FAT chain from cluster N loops back to cluster M".  Its exFAT reader
gathers a chain into a list until it meets the end mark: a loop takes all
memory; :func:`exfat` opens the volume with that bounded the same way.
dissect.btrfs's B-tree cursor trusts node headers: :func:`btrfs_cursor`
makes it check levels, item counts and key order (TreeDamage).  The errors
are MapError, the filesystems' own error class (a DiskImageError).
"""

from ..errors import UnsupportedError
from .usedmap import MapError

EXFAT_EOC = 0xFFFFFFFF


class ChainLoop(MapError):
    """A FAT cluster chain that loops, or is longer than the volume."""


def fat_chains(fs, size=None):
    """Bound every cluster chain the dissect.fat FATFS `fs` follows (its
    FAT's chain(), which runlist() and the directory readers use); `size`:
    the volume's bytes, when known (no chain is longer than the clusters
    it holds, whatever the BPB claims)."""
    fat = fs.fat
    follow = fat.chain
    limit = fat.entry_count
    if size is not None:
        limit = min(limit, size // fs.cluster_size + 2)

    def chain(first):
        seen = set()
        for cluster in follow(first):
            if cluster in seen:
                raise ChainLoop(f"the FAT chain from cluster {first} loops "
                                f"back to cluster {cluster}")
            if len(seen) >= limit:
                raise ChainLoop(f"the FAT chain from cluster {first} is "
                                f"longer than the volume's {limit} clusters")
            seen.add(cluster)
            yield cluster
    fat.chain = chain
    return fs


def exfat(fh):
    """dissect.fat's ExFAT over `fh` with its cluster chains bounded: its
    get_cluster_chain() followed a looping chain until memory ran out,
    when the volume is opened (the root directory's chain) and when a
    fragmented file or directory is read."""
    from dissect.fat.exfat import ExFAT

    size = getattr(fh, "size", None)

    class BoundedExFAT(ExFAT):
        def get_cluster_chain(self, starting_cluster):
            chain, seen, cluster = [], set(), starting_cluster
            if cluster < 2:
                return chain
            limit = self.cluster_count + 2
            if size is not None:
                limit = min(limit, size // self.cluster_size + 2)
            while True:
                if cluster in seen:
                    raise ChainLoop(f"the exFAT cluster chain from cluster "
                                    f"{starting_cluster} loops back to "
                                    f"cluster {cluster}")
                if len(seen) >= limit:
                    raise ChainLoop(f"the exFAT cluster chain from cluster "
                                    f"{starting_cluster} is longer than the "
                                    f"volume's {limit} clusters")
                seen.add(cluster)
                chain.append(cluster)
                cluster = self._next_cluster(cluster)
                if cluster == EXFAT_EOC:
                    return chain

        def _next_cluster(self, cluster):
            self.fat.seek(cluster * 4)
            entry = self.fat.read(4)
            if len(entry) < 4:
                raise ChainLoop(f"the exFAT cluster chain reaches cluster "
                                f"{cluster}, past the end of the FAT")
            return int.from_bytes(entry, "little")

    return BoundedExFAT(fh)



class TreeDamage(MapError):
    """A btrfs B-tree node that breaks the tree's rules (not a ValueError,
    which dissect's walks take for the tree's end)."""


_BTRFS_MAX_LEVEL = 7


def btrfs_cursor():
    """Make dissect.btrfs's B-tree cursor keep the tree's rules, once per
    process: its search looped forever on a node of no items, its descent
    followed a child pointer back up or to itself without end, and its
    walk over shared children repeated leaves.  Every node pushed must be
    one level below its parent (at most level 7) and hold at least one
    item and no more than fit; leaf keys must rise strictly along a walk.
    A broken rule is TreeDamage ("damaged filesystem" in imgx)."""
    from dissect.btrfs import tree

    cursor = tree.Cursor
    if getattr(cursor, "_bounded", False):
        return
    push, search, next_leaf = cursor.push, cursor.search, cursor.next

    def checked_push(self, address, initial_index=0):
        parent = self._header
        push(self, address, initial_index)
        header = self._header
        item = tree.c_btrfs.btrfs_key_ptr if header.level else \
            tree.c_btrfs.btrfs_item
        room = (len(self._node) - len(tree.c_btrfs.btrfs_header)) // \
            len(item)
        if parent is None:
            if header.level > _BTRFS_MAX_LEVEL:
                raise TreeDamage(f"btrfs tree root at {address} is level "
                                 f"{header.level}")
        elif header.level != parent.level - 1:
            raise TreeDamage(f"btrfs tree node at {address} is level "
                             f"{header.level} under a node of level "
                             f"{parent.level}")
        if header.nritems > room or (parent is not None and
                                     not header.nritems):
            raise TreeDamage(f"btrfs tree node at {address} holds "
                             f"{header.nritems} items (room for {room})")

    def checked_search(self, *args, **kw):
        if not self._header.nritems:        # an empty tree (its root)
            return False
        return search(self, *args, **kw)

    def checked_next(self):
        before = self.item().key if self._index is not None and \
            not self._header.level else None
        next_leaf(self)
        if before is not None:
            after = self.item().key
            if (after.objectid, after.type, after.offset) <= \
                    (before.objectid, before.type, before.offset):
                raise TreeDamage("btrfs tree keys do not rise from leaf "
                                 "to leaf (a shared or looping child)")

    cursor.push, cursor.search, cursor.next = \
        checked_push, checked_search, checked_next
    cursor._bounded = True


#: The most blocks of a file mapped by indirect blocks (ext2/3) that imgx
#: reads: dissect.extfs lists every block number of such a file before
#: the first read, holes included (16 GiB of 4 KiB blocks, a 32 MiB list).
EXT_INDIRECT_BLOCKS = 1 << 22
_EXT4_EXTENTS_FL, _EXT4_INLINE_DATA_FL = 0x80000, 0x10000000


def ext_blocks(inode):
    """UnsupportedError before dissect.extfs maps an indirect-block file
    or directory whose size needs more than EXT_INDIRECT_BLOCKS blocks (a
    size field of terabytes made it build a list of billions)."""
    flags = inode.inode.i_flags
    if flags & (_EXT4_EXTENTS_FL | _EXT4_INLINE_DATA_FL) or \
            inode.size <= 60:
        return
    blocks = -(-inode.size // inode.extfs.block_size)
    if blocks > EXT_INDIRECT_BLOCKS:
        raise UnsupportedError(
            f"inode {inode.inum}: {inode.size} bytes mapped by indirect "
            f"blocks ({blocks} blocks); imgx reads such files of at most "
            f"{EXT_INDIRECT_BLOCKS} blocks")


#: The longest symlink target Linux keeps (PATH_MAX, its NUL included).
LINK_MAX = 4096


def link(inode):
    """A dissect inode's symlink target (ext, XFS, btrfs), refused when its
    size is more than a symlink can hold: dissect reads the target as a
    file, to its end, so a symlink inode claiming terabytes was read as
    terabytes of holes (imgx ls hung on a root directory turned symlink)."""
    if inode.size > LINK_MAX:
        raise MapError(f"symlink inode {inode.inum} claims {inode.size} "
                       f"bytes, more than a symlink holds ({LINK_MAX})")
    return inode.link
