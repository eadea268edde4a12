"""A file-like, read-only, random-access view of a range of the disk that an
image holds (one partition, or the whole disk), for filesystem readers.

``read(size)`` at any position finds the index entries that cover it
(binary search on ``disk_offset``), decodes only those chunks through
:meth:`ImageReader.read_entry` (so every chunk is checked as it is read) and
keeps the last few decoded chunks in a small LRU cache, since filesystem
readers come back to the same metadata blocks again and again.  Holes read
as zeros without touching the image; so do disk ranges that no entry covers
(free space that a used-blocks capture did not store, reads as zeros just as
a restore onto a fresh disk file would give).

How many bytes of the image file were read is in ``reader.source.bytes_read``
(tests check that looking at one small file reads a small part of a large
image).
"""

import bisect
import io
from collections import OrderedDict

from ..errors import InputError

DEFAULT_CACHE_CHUNKS = 8


class ImageView(io.RawIOBase):
    """Bytes [start, start+size) of the image's disk as a seekable file."""

    def __init__(self, reader, start=0, size=None,
                 cache_chunks=DEFAULT_CACHE_CHUNKS):
        super().__init__()
        disk_size = reader.metadata["source"]["size"]
        if size is None:
            size = disk_size - start
        if start < 0 or size < 0 or start + size > disk_size:
            raise InputError(f"range {start}+{size} is outside the "
                             f"{disk_size}-byte disk of the image")
        self.reader = reader
        self.start = start
        self.size = size
        self._pos = 0
        # Entries in disk order (stream order is disk order, but do not rely
        # on it), with their numbers for read_entry.
        order = sorted(range(len(reader.entries)),
                       key=lambda n: reader.entries[n].disk_offset)
        self._numbers = order
        self._offsets = [reader.entries[n].disk_offset for n in order]
        self._cache = OrderedDict()
        self._cache_chunks = max(1, cache_chunks)
        self.chunks_decoded = 0

    # io.RawIOBase protocol
    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, size=-1):
        if size is None or size < 0:
            size = self.size - self._pos
        size = max(0, min(size, self.size - self._pos))
        data = self.pread(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self):
        return self.read(-1)

    # random access
    def pread(self, offset, size):
        """`size` bytes at view `offset` (fewer only at the view's end)."""
        size = max(0, min(size, self.size - offset))
        out = bytearray(size)
        disk = self.start + offset
        end = disk + size
        i = max(0, bisect.bisect_right(self._offsets, disk) - 1)
        while disk < end and i < len(self._numbers):
            entry = self.reader.entries[self._numbers[i]]
            e_start, e_end = entry.disk_offset, entry.disk_offset + \
                entry.length
            if e_start >= end:
                break
            lo, hi = max(disk, e_start), min(end, e_end)
            if lo < hi and not entry.is_zero:
                chunk = self._chunk(self._numbers[i])
                out[lo - self.start - offset:hi - self.start - offset] = \
                    chunk[lo - e_start:hi - e_start]
            if e_end > disk:
                disk = max(disk, min(e_end, end))
            i += 1
        return bytes(out)

    def _chunk(self, number):
        data = self._cache.get(number)
        if data is not None:
            self._cache.move_to_end(number)
            return data
        data = self.reader.read_entry(number)
        self.chunks_decoded += 1
        self._cache[number] = data
        if len(self._cache) > self._cache_chunks:
            self._cache.popitem(last=False)
        return data
