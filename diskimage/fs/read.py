"""Reading the filesystems inside an image through dissect's readers.

dissect.extfs (ext2/3/4), dissect.fat (FAT12/16/32 and exFAT) and
dissect.ntfs are maintained readers made for exactly this: they take any
seekable file object, here an :class:`~diskimage.image.view.ImageView`, and
read only the blocks they need.  This module puts one small interface over
the four: a :class:`Node` per directory entry, ``children(node)``,
``open(node)``, ``lookup(path)`` (no symlink followed) and
``resolve(path)`` (symlinks followed inside the image, diskimage.fs.inpath).

Faults in the filesystem structures (a reader that raises on a bad
directory block, say) become :class:`CorruptImageError`: the image's chunk
checks passed, but what they hold is not a readable filesystem.
"""

import stat
from datetime import datetime, timezone

from diskimage.errors import CorruptImageError, InputError, UnsupportedError
from diskimage.fs import registry

from .ext import blockmap, dirents, inline
from .bounded import exfat as bounded_exfat, ext_blocks, fat_chains
from .bounded import link as link_target
from .btrfs.browse import Btrfs as _Btrfs
from .damage import Checked as _Checked, damaged
from .inpath import resolve_in_root
from .node import Node, kind_of
from .lvm.browse import Volumes as LvmVolumes
from .xfs.browse import XfsReader


def browsable(kind):
    """The registry's record of `kind` when imgx reads it, else None."""
    record = registry.lookup(kind)
    return record if record and record.browse and kind in record.kinds \
        else None


def _seconds(value):
    if value is None:
        return None
    if value.tzinfo is None:   # FAT keeps local time; taken as UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


class _Ext:
    def __init__(self, fh):
        from dissect.extfs import ExtFS
        self.fs = ExtFS(fh)
        self.root = self._node("", self.fs.get(2))

    def _node(self, name, inode):
        mode = inode.inode.i_mode
        kind = kind_of(mode)
        node = Node(name, kind, inode.size, mode,
                    inode.mtime_ns / 1e9, inode.atime_ns / 1e9,
                    inode.inode.i_uid | (inode.inode.i_uid_high << 16),
                    inode.inode.i_gid | (inode.inode.i_gid_high << 16),
                    inode=inode.inum, nlink=inode.inode.i_links_count,
                    handle=inode)
        if kind == "symlink":
            node.target = link_target(inode)
        return node

    def children(self, node):
        if inline.is_inline(node.handle):
            return [self._node(name, self.fs.get_inode(number, name))
                    for number, name in inline.entries(node.handle)]
        ext_blocks(node.handle)
        blockmap.prepare(node.handle)
        return [self._node(i.filename, i)
                for i in dirents.children(node.handle)]

    def open(self, node):
        if inline.is_inline(node.handle):
            return inline.open_inline(node.handle)
        ext_blocks(node.handle)
        blockmap.prepare(node.handle)
        return node.handle.open()

    def xattrs(self, node):
        # system.data is where ext4 keeps inline data, not an attribute.
        return [(x.name, x.value) for x in node.handle.xattr
                if x.name != "system.data"]


class _Fat:
    def __init__(self, fh):
        from dissect.fat.fat import FATFS
        # 8.3 names are in an OEM code page; mtools (and so mdir) uses
        # 850 unless told otherwise, Windows in Western Europe too.
        self.fs = fat_chains(FATFS(fh, encoding="cp850"),
                             getattr(fh, "size", None))
        root = self.fs.get("/")
        # A directory's key is its first cluster; the root's is 0 (as a
        # ".." entry names it), or its cluster on FAT32.
        self.root_cluster = getattr(self.fs.bpb_ext, "BPB_RootClus", 0)
        self.root = Node("", "dir", 0, stat.S_IFDIR | 0o755, inode=0,
                         handle=root)

    def children(self, node):
        found = []
        for entry in node.handle.iterdir():
            if entry.is_volume_id() or entry.name in (".", ".."):
                continue
            is_dir = entry.is_directory()
            cluster = None
            if is_dir:
                d = entry.dirent
                cluster = (d.DIR_FstClusHI << 16) | d.DIR_FstClusLO
                cluster = 0 if cluster == self.root_cluster else cluster
            found.append(Node(
                _fat_name(entry), "dir" if is_dir else "file",
                0 if is_dir else entry.size,
                (stat.S_IFDIR | 0o755) if is_dir else (stat.S_IFREG | 0o644),
                _seconds(entry.mtime), _seconds(entry.atime), inode=cluster,
                handle=entry))
        return found

    def open(self, node):
        return node.handle.open()


def _fat_name(entry):
    """The long name, or the 8.3 name with the case Windows NT keeps in
    DIR_NTRes (0x08 base lower case, 0x10 extension lower case), as
    mtools and Linux show it."""
    if entry.ldirents:
        return entry.name
    flags = entry.dirent.DIR_NTRes
    base, _, ext = entry.short_name.partition(".")
    if flags & 0x08:
        base = base.lower()
    if flags & 0x10:
        ext = ext.lower()
    return f"{base}.{ext}" if ext else base


def _dos_time(stamp):
    if not stamp:
        return None
    date, time_ = stamp >> 16, stamp & 0xFFFF
    try:
        return datetime(1980 + (date >> 9), (date >> 5) & 15 or 1,
                        date & 31 or 1, time_ >> 11, (time_ >> 5) & 63,
                        min(59, (time_ & 31) * 2), tzinfo=timezone.utc)
    except ValueError:
        return None


class _ExFat:
    """dissect.fat's exFAT reader parses the whole directory tree when it
    opens the volume (not lazily, as the others do); exFAT volumes of an
    imaging job are small and flat enough for that."""

    def __init__(self, fh):
        self.fs = bounded_exfat(fh)
        self.fh = fh
        self.root = Node("", "dir", 0, stat.S_IFDIR | 0o755,
                         handle=(None, self.fs.files))

    def children(self, node):
        # The root dict holds one entry for the root itself, named "/".
        found = []
        for name, (entry, sub) in node.handle[1].items():
            if name == "/" and node is self.root:
                return self.children(Node("", "dir", 0, 0, handle=(None,
                                                                   sub)))
            is_dir = sub is not None
            found.append(Node(
                name, "dir" if is_dir else "file",
                0 if is_dir else entry.stream.data_length,
                (stat.S_IFDIR | 0o755) if is_dir else (stat.S_IFREG | 0o644),
                _seconds(_dos_time(entry.metadata.modified_time)),
                _seconds(_dos_time(entry.metadata.access_time)),
                handle=(entry, sub)))
        return found

    def open(self, node):
        import io
        from dissect.util.stream import RunlistStream
        entry = node.handle[0]
        length = entry.stream.data_length
        if length == 0:
            return io.BytesIO()
        contiguous = bool(entry.stream.flags.not_fragmented)
        runs = self.fs.runlist(entry.stream.location, contiguous,
                               size=length if contiguous else None)
        return RunlistStream(self.fh, runs, length, self.fs.sector_size)


class _Ntfs:
    # MFT records 0-23 are the filesystem's own ($MFT ... $Extend and
    # reserved ones); Windows and ntfsls hide them.
    SYSTEM_RECORDS = 24

    def __init__(self, fh):
        from dissect.ntfs import NTFS
        self.fs = NTFS(fh)
        self.root = self._node("", self.fs.mft.get(5))

    def _node(self, name, record):
        from dissect.ntfs.c_ntfs import ATTRIBUTE_TYPE_CODE
        info = record.attributes[ATTRIBUTE_TYPE_CODE.STANDARD_INFORMATION]
        mtime = atime = None
        if info:
            mtime = info.last_modification_time_ns / 1e9
            atime = info.last_access_time_ns / 1e9
        if record.is_symlink():
            return Node(name, "symlink", 0, stat.S_IFLNK | 0o777, mtime,
                        atime, target=record.reparse_point_name.replace(
                            "\\", "/"), handle=record)
        if record.is_dir():
            return Node(name, "dir", 0, stat.S_IFDIR | 0o777, mtime, atime,
                        inode=record.segment, handle=record)
        size = record.size() if record.has_stream("") else 0
        # Hard links are more Win32/POSIX names of one MFT record.
        return Node(name, "file", size, stat.S_IFREG | 0o777, mtime, atime,
                    inode=record.segment,
                    nlink=len(record.filenames(ignore_dos=True)),
                    handle=record)

    def children(self, node):
        found = []
        for entry in node.handle.iterdir(ignore_dos=True):
            name = entry.attribute.file_name
            if name == ".":
                continue
            record = entry.dereference()
            if node is self.root and record.segment < self.SYSTEM_RECORDS:
                continue
            found.append(self._node(name, record))
        return found

    def open(self, node):
        return node.handle.open()


def _link(node):
    """A symlink's target (None: not a link), for readers with no `link`
    of their own (an LVM2 PV's resolves absolute targets in their LV)."""
    return node.target if node.kind == "symlink" else None


# The readers a registry record names in its `browse`.
_BACKENDS = {"ext": _Ext, "fat": _Fat, "exfat": _ExFat, "ntfs": _Ntfs}
_BACKENDS["xfs"] = XfsReader
_BACKENDS["btrfs"] = _Btrfs
_BACKENDS["lvm"] = LvmVolumes     # an LVM2 PV: a directory of its LVs
#: What imgx reads, for messages: "ext2/3/4, FAT12/16/32, exFAT and NTFS".
READS = registry.titles(lambda record: record.browse in _BACKENDS)


class Filesystem:
    """The filesystem of kind `kind` (as in the image metadata) read from
    the file object `fh`; `where` names it in messages."""

    def __init__(self, fh, kind, where):
        record = browsable(kind)
        if record is None:
            raise UnsupportedError(
                f"{where.removesuffix(':')}: "
                f"{'unknown filesystem' if kind is None else kind}"
                f" cannot be browsed (imgx reads {READS})")
        self.kind = kind
        self.where = where
        self.case_sensitive = record.case_sensitive
        with damaged(where):
            self.backend = _BACKENDS[record.browse](fh)
        self.root = self.backend.root

    def children(self, node, shown=None):
        """The entries of the directory `node`; `shown`: its path, for
        the message when it is not one (else its name)."""
        if not node.is_dir:
            raise InputError(f"{self.where}/"
                             f"{node.name if shown is None else shown}: "
                             f"not a directory")
        with damaged(self.where if shown is None else
                     f"{self.where}/{shown}"):
            return sorted(self.backend.children(node), key=lambda n: n.name)

    def open(self, node, shown=None):
        """A file object of the regular file `node`; `shown`: its path,
        for the message when it is not one (else its name)."""
        if node.kind != "file":
            raise InputError(f"{self.where}/"
                             f"{node.name if shown is None else shown}: "
                             f"not a regular file")
        where = self.where if shown is None else f"{self.where}/{shown}"
        with damaged(where):
            return _Checked(self.backend.open(node), where, node.size)

    def xattrs(self, node):
        """[(name, value)] of the node's extended attributes where the
        reader has them (ext), else []."""
        get = getattr(self.backend, "xattrs", None)
        if get is None:
            return []
        with damaged(self.where):
            return get(node)

    def read(self, node):
        with damaged(self.where):
            return self.open(node).read()

    def child(self, node, name):
        """The entry `name` of the directory `node` (case-insensitively on
        FAT, exFAT and NTFS when no exact match), or None."""
        return self._match(self.children(node), name)

    def _match(self, entries, name):
        match = [n for n in entries if n.name == name]
        if not match and not self.case_sensitive:
            match = [n for n in entries
                     if n.name.casefold() == name.casefold()]
        return match[0] if match else None

    def resolve(self, path, follow_last=True):
        """(node, canonical path) of `path` ("/" separated, from the root),
        symlinks resolved inside this filesystem (diskimage.fs.inpath); the
        last component's link is followed only when `follow_last`."""
        return resolve_in_root(
            self.root, path, self._child_named(),
            getattr(self.backend, "link", None) or _link,
            lambda n: n.is_dir, follow_last, self.where,
            getattr(self.backend, "is_root", None))

    def _child_named(self):
        """child() for one walk down a path: a directory that cannot be
        read is named by its path in the message."""
        paths = {id(self.root): (self.root, "")}

        def child(node, name):
            at = paths.get(id(node), (node, None))[1]
            entries = self.children(node, at or None)
            found = self._match(entries, name)
            if found is not None and at is not None:
                paths[id(found)] = (found, f"{at}/{name}".lstrip("/"))
            return found
        return child

    def lookup(self, path):
        """The entry at `path` without following any symlink: a link in
        the middle is "not a directory" (readers that follow links, and
        imgx edit's checks, use resolve)."""
        return resolve_in_root(self.root, path, self.child, lambda n: None,
                               lambda n: n.is_dir, False, self.where,
                               getattr(self.backend, "is_root", None))[0]

    def loop(self, node, ancestors):
        """True when the directory `node` is one of `ancestors` (the
        directory keys, inode numbers or first clusters, of the path that
        led to it): a damaged or hostile filesystem whose directories
        contain themselves, which would be walked without end."""
        return node.inode is not None and node.inode in ancestors

    def walk(self, node, prefix="", ancestors=frozenset(), at=""):
        """Yield (relative path, node) for every entry below `node`,
        directories before their contents.  A directory that contains
        itself is CorruptImageError, named by its path from the root
        (`at`: the path of `node`)."""
        ancestors = ancestors | {node.inode}
        shown = "/".join(p for p in (at.strip("/"), prefix.rstrip("/")) if p)
        for child in self.children(node, shown or None):
            rel = f"{prefix}{child.name}"
            yield rel, child
            if child.is_dir:
                if self.loop(child, ancestors):
                    shown = "/".join(p for p in (at.strip("/"), rel) if p)
                    raise CorruptImageError(
                        f"{self.where}/{shown}: damaged filesystem: a "
                        f"directory that is one of its own parents")
                yield from self.walk(child, rel + "/", ancestors, at)
