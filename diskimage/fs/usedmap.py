"""The one small interface between filesystems and capture: which bytes of a
volume are in use.

Each filesystem's record (:mod:`diskimage.fs.registry`) names its
``open_map(read, size) -> UsedMap`` (ext/used.py, fat/used.py, exfat.py,
ntfs/used.py, swap.py call it ``open_volume``), which reads the
filesystem's own allocation structures.  Capture copies only the runs a
UsedMap gives; when a map cannot be trusted the module raises
:class:`MapError` and capture falls back to the whole volume, with a warning
that says why.

A map's runs may be a list or :class:`LazyRuns`: an iterable that reads the
allocation structures again, bitmap block by bitmap block, each time it is
iterated, so a fragmented multi-terabyte volume never has its runs in memory.
``used_bytes`` is counted when the map is opened, by a first pass that keeps
nothing.
"""

import heapq
import re
from dataclasses import dataclass, field

from ..errors import DiskImageError


class MapError(DiskImageError):
    """The filesystem's allocation structures cannot be trusted: bad magic,
    counts that disagree, a bitmap outside the volume.  The message says
    which and where."""


@dataclass
class UsedMap:
    kind: str                # "ext4", "fat32", "ntfs" ...
    block_size: int          # allocation unit (block, cluster) in bytes
    total_bytes: int         # size of the filesystem
    used_bytes: int          # bytes in the runs
    runs: object             # iterable, again and again, of (offset, length)
    #                          in bytes from the volume start, ascending, not
    #                          overlapping, not touching: a list or LazyRuns
    label: str = ""
    uuid: str = ""
    warnings: list = field(default_factory=list)
    #: A container's volumes (LVM2: the logical volumes, each a dict) and
    #: their group, described only when present.
    volumes: list = field(default_factory=list)
    volume_group: dict = None

    def describe(self):
        """The fields that go into the image metadata and `info`."""
        found = {"filesystem": self.kind, "label": self.label,
                 "uuid": self.uuid, "block_size": self.block_size,
                 "total_bytes": self.total_bytes,
                 "used_bytes": self.used_bytes}
        if self.volume_group:
            found["volume_group"] = self.volume_group
        if self.volumes:
            found["logical_volumes"] = self.volumes
        return found


class LazyRuns:
    """Runs made on demand: each iteration calls `factory()` for a fresh
    iterator, so the runs are streamed, never stored."""

    def __init__(self, factory):
        self.factory = factory

    def __iter__(self):
        return iter(self.factory())


def coalesce(runs):
    """Merge (offset, length) runs sorted by offset where they overlap or
    touch, as a stream."""
    current = None
    for offset, length in runs:
        if length <= 0:
            continue
        if current is None:
            current = [offset, offset + length]
        elif offset <= current[1]:
            current[1] = max(current[1], offset + length)
        else:
            yield current[0], current[1] - current[0]
            current = [offset, offset + length]
    if current is not None:
        yield current[0], current[1] - current[0]


def merged(*streams):
    """Several (offset, length) streams, each sorted by offset, as one
    sorted, coalesced stream."""
    return coalesce(heapq.merge(*streams))


def scaled(block_runs, block_size, limit):
    """(first_block, count) runs sorted by block as byte runs clipped to
    `limit`, as a stream."""
    for block, count in block_runs:
        offset = block * block_size
        if offset >= limit:
            return
        yield offset, min(count * block_size, limit - offset)


def survey(runs, wanted=()):
    """One pass over sorted, coalesced runs: (bytes in them, the first of
    the sorted (offset, length, what) `wanted` ranges they do not cover, or
    None)."""
    wanted = iter(wanted)
    need = next(wanted, None)
    total, missing = 0, None
    for offset, length in runs:
        total += length
        while missing is None and need is not None and \
                need[0] < offset + length:
            if need[0] >= offset and need[0] + need[1] <= offset + length:
                need = next(wanted, None)
            else:
                missing = need
    if missing is None and need is not None:
        missing = need
    return total, missing


# Bit-reversal of every byte value: on-disk bitmaps number bits from the
# least significant, Python's binary text from the most significant.
_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
_ONES = re.compile(r"1+")
#: Bytes of bitmap turned into text (a character per bit) at a time.
SLICE = 4096
_EMPTY, _FULL = bytes(SLICE), b"\xff" * SLICE


def bitmap_runs(bitmap, nbits, first=0):
    """Runs of set bits in an on-disk bitmap (bit 0 = least significant bit
    of byte 0) as (first_index, count), the indexes offset by `first`.  Only
    the first `nbits` bits count.  The bitmap is taken SLICE bytes at a
    time: an empty or a full slice is known by one comparison, any other
    is made text (32 Ki characters, however large the bitmap) for a
    regular expression over its bits: C speed, Python once per run."""
    view = memoryview(bitmap).cast("B")[:(nbits + 7) // 8]
    pending = None
    for at in range(0, len(view), SLICE):
        piece = bytes(view[at:at + SLICE])
        if piece == _EMPTY:
            continue
        base = at * 8
        if piece == _FULL and nbits - base >= SLICE * 8:
            runs = ((base, base + SLICE * 8),)
        else:
            text = format(int.from_bytes(piece.translate(_REVERSE), "big"),
                          f"0{len(piece) * 8}b")
            runs = (run.span() for run in _ONES.finditer(text, 0,
                                                          nbits - base))
            runs = ((base + low, base + high) for low, high in runs)
        for start, end in runs:
            if pending is not None:
                if pending[1] == start:
                    start = pending[0]
                else:
                    yield first + pending[0], pending[1] - pending[0]
            pending = (start, end)
    if pending is not None:
        yield first + pending[0], pending[1] - pending[0]


def merge_runs(runs):
    """Sort (offset, length) runs and merge those that overlap or touch,
    into a list."""
    return list(coalesce(sorted(runs)))


def read_exact(read, offset, length, what):
    """read(offset, length), or a MapError naming `what` and the offset."""
    data = read(offset, length)
    if len(data) < length:
        raise MapError(f"short read of the {what} at byte offset {offset}: "
                       f"{len(data)} of {length} bytes")
    return bytes(data)
