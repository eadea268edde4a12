"""Reading and writing a FAT volume through a file descriptor, for the
resizers that rewrite it in place (grow.py, shrink.py)."""

import os


def pread(fd, length, offset, error):
    """*length* bytes at *offset*; *error* (a MapError class) on a short
    read."""
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise error(f"short read of {length} bytes at byte offset {offset}")
    return data


def pwrite(fd, data, offset):
    """All of *data* at *offset*."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done
