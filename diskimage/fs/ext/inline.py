"""ext4 inline data (the inline_data feature) as imgx reads it over
dissect.extfs, which takes an inline directory's i_block for ordinary
directory entries (its first four bytes, the parent's inode number,
become an entry naming the directory itself: "a directory that is one of
its own parents") and reads an inline file only as far as i_block's 60
bytes.

An inode with EXT4_INLINE_DATA_FL keeps its first 60 bytes in i_block and
the rest in the value of its extended attribute "system.data"
(Documentation/filesystems/ext4/inlinedata.rst).  An inline directory's
i_block starts with the parent's inode number (4 bytes, in place of "."
and ".."); entries (struct ext4_dir_entry_2) follow, and go on at the
start of system.data.
"""

import io
import struct

EXT4_INLINE_DATA_FL = 0x10000000
I_BLOCK = 60
DOTDOT = 4
DIRENT = struct.Struct("<IHBB")     # inode, rec_len, name_len, file_type


def is_inline(inode):
    """Whether the dissect INode keeps its data inline."""
    return bool(inode.inode.i_flags & EXT4_INLINE_DATA_FL)


def data(inode):
    """The inline data: i_block, then system.data's value, cut to the
    inode's size."""
    extra = b""
    for attr in inode.xattr:
        if attr.name == "system.data":
            extra = bytes(attr.value)
            break
    return (bytes(inode.inode.i_block)[:I_BLOCK] + extra)[:inode.size]


def open_inline(inode):
    return io.BytesIO(data(inode))


def entries(inode):
    """[(inode number, name)] of an inline directory, in order; an entry
    whose record length is too short or runs past the data is damage
    (ValueError)."""
    raw = data(inode)
    found, at = [], DOTDOT
    while at + DIRENT.size <= len(raw):
        number, rec_len, name_len, _ = DIRENT.unpack_from(raw, at)
        if rec_len < DIRENT.size or at + rec_len > len(raw) or \
                DIRENT.size + name_len > rec_len:
            raise ValueError(f"inline directory entry at byte {at} of "
                             f"inode {inode.inum} has record length "
                             f"{rec_len} (name {name_len} bytes)")
        if number:
            name = raw[at + DIRENT.size:at + DIRENT.size + name_len]
            found.append((number, name.decode(errors="surrogateescape")))
        at += rec_len
    return found
