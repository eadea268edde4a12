"""The one small interface between filesystems and capture: which bytes of a
volume are in use.

Each filesystem module (ext.py, fat.py, exfat.py, ntfs.py, swap in
filesystems.py) has ``open_volume(read, size) -> UsedMap`` that reads the
filesystem's own allocation structures.  Capture copies only the runs a
UsedMap gives; when a map cannot be trusted the module raises
:class:`MapError` and capture falls back to the whole volume, with a warning
that says why.
"""

import re
from dataclasses import dataclass, field

from .errors import DiskImageError


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
    runs: list               # [(offset, length)] in bytes from the volume
    #                          start, ascending, not overlapping, not touching
    label: str = ""
    uuid: str = ""
    warnings: list = field(default_factory=list)

    def describe(self):
        """The fields that go into the image metadata and `info`."""
        return {"filesystem": self.kind, "label": self.label,
                "uuid": self.uuid, "block_size": self.block_size,
                "total_bytes": self.total_bytes,
                "used_bytes": self.used_bytes}


# Bit-reversal of every byte value: on-disk bitmaps number bits from the
# least significant, Python's binary text from the most significant.
_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
_ONES = re.compile(r"1+")


def bitmap_runs(bitmap, nbits, first=0):
    """Runs of set bits in an on-disk bitmap (bit 0 = least significant bit
    of byte 0) as (first_index, count), the indexes offset by `first`.  Only
    the first `nbits` bits count.  Runs in C speed, no per-bit Python loop."""
    nbytes = (nbits + 7) // 8
    data = bytes(bitmap[:nbytes]).translate(_REVERSE)
    if len(data) < nbytes:
        data += bytes(nbytes - len(data))
    text = format(int.from_bytes(data, "big"), f"0{nbytes * 8}b")[:nbits]
    for match in _ONES.finditer(text):
        yield first + match.start(), match.end() - match.start()


def merge_runs(runs):
    """Sort (offset, length) runs and merge those that overlap or touch."""
    merged = []
    for offset, length in sorted(runs):
        if length <= 0:
            continue
        if merged and offset <= merged[-1][0] + merged[-1][1]:
            last_offset, last_length = merged[-1]
            merged[-1] = (last_offset, max(last_length,
                                           offset + length - last_offset))
        else:
            merged.append((offset, length))
    return merged


def blocks_to_runs(block_runs, block_size, limit):
    """(first_block, count) runs to merged byte runs, clipped to `limit`."""
    return merge_runs((b * block_size, min(n * block_size,
                                           limit - b * block_size))
                      for b, n in block_runs if b * block_size < limit)


def read_exact(read, offset, length, what):
    """read(offset, length), or a MapError naming `what` and the offset."""
    data = read(offset, length)
    if len(data) < length:
        raise MapError(f"short read of the {what} at byte offset {offset}: "
                       f"{len(data)} of {length} bytes")
    return bytes(data)
