"""An ext directory's entries as imgx lists them over dissect.extfs, with
the reader's work bounded by what the volume holds (found by the imgx
fuzz target, tests/fuzz/crashes/imgx/timeout-7ca6bfce...).

dissect's INode.iterdir() maps the whole directory by its size before
reading a byte (an ext2 root directory claiming 4 GiB on a 4 MiB volume
built a list of four million block numbers, seconds each time it was
listed), then steps from entry to entry by rec_len however small, and
ends the whole directory at the first zero rec_len.  Here:

- a directory larger than its volume is damage (DirectoryTooLarge, a
  MapError: "damaged filesystem" in imgx), refused before it is mapped,
  and so is one whose blocks are past the volume's end (cut short);
- the directory is read one block at a time and each entry is checked as
  the kernel's ext4_check_dir_entry() checks it (rec_len at least the
  8-byte header and the name rounded up to 4, a multiple of 4, not past
  its block): a bad entry, a zero rec_len among them, ends its block and
  the walk goes on with the next block, as ext4_readdir() does.  Offsets
  only rise, so every entry is read at most once.

Entries whose inode number is 0 (unused, the metadata_csum tail) or
beyond s_inodes_count are skipped, as dissect skips them.
"""

import stat
import struct

from ..usedmap import MapError

DIRENT = struct.Struct("<IHBB")     # inode, rec_len, name_len, file_type
HEADER = DIRENT.size                # 8
FILETYPES = {1: stat.S_IFREG, 2: stat.S_IFDIR, 3: stat.S_IFCHR,
             4: stat.S_IFBLK, 5: stat.S_IFIFO, 6: stat.S_IFSOCK,
             7: stat.S_IFLNK}
EXT2_FEATURE_INCOMPAT_FILETYPE = 0x2


class DirectoryTooLarge(MapError):
    """A directory whose size is more than its volume holds, or whose
    blocks are past its end."""


def volume_bytes(extfs):
    """What the volume of the dissect ExtFS `extfs` holds: its blocks as
    the superblock counts them, and no more than the file it is read
    from."""
    limit = extfs.block_count * extfs.block_size
    size = getattr(extfs.fh, "size", None)
    return limit if size is None else min(limit, size)


def check_size(inode):
    """DirectoryTooLarge when the directory `inode` (a dissect INode)
    claims more bytes than its volume holds."""
    limit = volume_bytes(inode.extfs)
    if inode.size > limit:
        raise DirectoryTooLarge(
            f"directory inode {inode.inum} claims {inode.size} bytes, more "
            f"than its volume holds ({limit})")


def _rec_len(raw, block_size):
    # ext4_rec_len_from_disk: with 64 KiB blocks, 0 and 65535 mean 65536
    if block_size >= 65536 and raw in (0, 65535):
        return 65536
    return raw


def entries(inode):
    """Yield (inode number, name, file type or None) of every entry of
    the directory `inode` (a dissect INode, not inline), "." and ".."
    included, in on-disk order."""
    check_size(inode)
    extfs = inode.extfs
    block_size = extfs.block_size
    typed = bool(extfs.sb.s_feature_incompat &
                 EXT2_FEATURE_INCOMPAT_FILETYPE)
    inodes = extfs.sb.s_inodes_count
    stream = inode.open()
    size = inode.size
    for start in range(0, size, block_size):
        stream.seek(start)
        want = min(block_size, size - start)
        block = stream.read(want)
        if len(block) < want:
            raise DirectoryTooLarge(
                f"directory inode {inode.inum}: its block at byte {start} "
                f"is past the end of the volume")
        at = 0
        while at + HEADER <= len(block):
            number, raw, name_len, kind = DIRENT.unpack_from(block, at)
            rec_len = _rec_len(raw, block_size)
            if not typed:           # no filetype feature: byte 7 unused
                kind = 0
            if rec_len % 4 or rec_len < ((HEADER + name_len + 3) & ~3) or \
                    at + rec_len > len(block):
                break               # a bad entry ends its block
            if 0 < number <= inodes:
                name = block[at + HEADER:at + HEADER + name_len]
                yield (number, name.decode(errors="surrogateescape"),
                       FILETYPES.get(kind))
            at += rec_len


def children(inode):
    """dissect INodes of the entries of the directory `inode`, "." and
    ".." left out, as INode.iterdir() gives them."""
    extfs = inode.extfs
    return [extfs.get_inode(number, name, kind)
            for number, name, kind in entries(inode)
            if name not in (".", "..")]
