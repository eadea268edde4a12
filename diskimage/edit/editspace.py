"""What an `imgx put` needs of a filesystem, and the message when it did
not fit: a filesystem runs out of blocks or of inodes, and a tree of many
small files needs far more blocks than its bytes (each file takes whole
blocks, each directory at least one), so the two are counted apart and
the message says which ran out."""

from dataclasses import dataclass, field

from diskimage.errors import NoSpaceError
from diskimage.sizes import format_size

_DIRENT = 8                     # an ext4 directory entry before its name
_FAST_LINK = 60                 # targets this long live in the inode


def _up(value, unit):
    return -(-value // unit)


@dataclass
class Need:
    """The files, directories and symlinks of a source tree."""

    bytes: int = 0
    files: list = field(default_factory=list)   # (size, allocated bytes)
    dirs: list = field(default_factory=list)    # bytes of their entries
    links: list = field(default_factory=list)   # target lengths
    hardlinks: int = 0          # second names of a file of the tree
    _inodes: set = field(default_factory=set)

    def add(self, st, kind, target_len=0):
        if kind == "file" and st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in self._inodes:
                self.hardlinks += 1      # no data of its own
                return
            self._inodes.add((st.st_dev, st.st_ino))
        if kind == "file":
            self.bytes += st.st_size
            self.files.append((st.st_size, st.st_blocks * 512))
        elif kind == "dir":
            self.dirs.append(0)
        else:
            self.links.append(target_len)

    def entry(self, name):
        """One more entry named `name` in the last directory added."""
        if self.dirs:
            self.dirs[-1] += _DIRENT + _up(len(name.encode()), 4) * 4

    @property
    def inodes(self):
        return len(self.files) + len(self.dirs) + len(self.links)

    def blocks(self, size):
        """About how many blocks of `size` bytes the tree takes (holes
        stay holes; each directory at least one block)."""
        data = sum(_up(min(n, alloc), size) for n, alloc in self.files)
        dirs = sum(max(1, _up(n, size)) for n in self.dirs)
        return data + dirs + sum(1 for n in self.links if n >= _FAST_LINK)


def no_space(what, area, free, source=None, need=None):
    """NoSpaceError naming the partition and what ran out.  `free`:
    (bytes, inodes, block size) as the filesystem reported them before the
    edit, any of them None when unknown, or None."""
    free_bytes, free_inodes, block = free if free is not None \
        else (None, None, None)
    part = f"partition {area['partition']}"
    if source is None or need is None:
        room = " (no free inodes)" if free_inodes == 0 else \
            f" ({format_size(free_bytes)} free)" if free_bytes is not None \
            else ""
        return NoSpaceError(f"{what}: no space left in {part}{room}; "
                            f"image unchanged")
    if free_inodes is not None and need.inodes > free_inodes:
        head = "no free inodes" if free_inodes == 0 else "inodes ran out"
        why = (f"{head}: {source} needs {need.inodes} (one per file, "
               f"directory and symlink), {free_inodes} were free")
    elif block:
        blocks = need.blocks(block)
        free_blocks = free_bytes // block if free_bytes is not None else None
        if free_blocks is not None and blocks > free_blocks:
            why = (f"blocks ran out: {source} needs about {blocks} blocks "
                   f"of {format_size(block)} ({format_size(blocks * block)})"
                   f", {free_blocks} were free ({format_size(free_bytes)})")
            if blocks * block > 2 * need.bytes + block:
                why += (f"; each file takes whole blocks and each directory "
                        f"at least one, so {format_size(need.bytes)} of "
                        f"data takes that much")
        else:
            why = (f"{source} needs about {blocks} blocks of "
                   f"{format_size(block)} and {need.inodes} inodes, and "
                   f"{free_blocks} blocks and {free_inodes} inodes were "
                   f"free; the filesystem's own metadata (extent and "
                   f"directory index blocks) took the rest")
    else:
        more = f", {format_size(need.bytes - free_bytes)} more than was " \
            f"free" if free_bytes is not None and need.bytes > free_bytes \
            else ""
        have = f"{format_size(free_bytes)} free; " \
            if free_bytes is not None else ""
        why = f"{have}{source} needs {format_size(need.bytes)}{more}"
    return NoSpaceError(f"{what}: no space left in {part} ({why}); image "
                        f"unchanged")
