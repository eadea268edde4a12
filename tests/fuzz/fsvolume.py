"""The input of the filesystem fuzz targets (tests/fuzz/targets/ext.py ...
imgx.py): a sparse volume, so that a few hundred KiB of a filesystem's
metadata stand for a volume of its real size and atheris mutates what
the readers read, not megabytes of zeros.

An input, little-endian:

    offset  size  field
    0       8     volume size in bytes (capped at MAX_VOLUME)
    8       2     piece count N (capped at MAX_PIECES)
    10      2     kind hint: index into KINDS (modulo its length), the kind
                  an image's metadata claims for the volume
    12      12*N  pieces: volume offset (8), length (4)
    12+12N  ...   the pieces' bytes, one after the other

Every byte of the volume outside the pieces is zero; a piece that runs past
the input's end is cut there, one past the volume's end is clipped, and
where pieces overlap the earlier one wins.  seeds_fs.py makes the seeds:
real volumes made by mkfs.*, cut down to the sectors the readers read.

Reads mirror diskimage.host.device: a read past the end is short, a read
at a negative offset is a reader's bug (ReadOutside, a finding).
"""

import bisect
import json
import struct

from diskimage.errors import DiskImageError
from diskimage.fs import registry
from diskimage.fs.usedmap import LazyRuns

# Every filesystem module now, so that run.py's instrumented import of the
# target covers them (the registry imports them on first use).
registry.filesystems()

HEADER = struct.Struct("<QHH")
PIECE = struct.Struct("<QI")
#: XFS's least volume (300 MiB) fits; a read of the whole volume stays
#: under the fuzzer's 1 GiB RSS limit.
MAX_VOLUME = 320 << 20
MAX_PIECES = 4096
#: The kinds an image's metadata may name (the hint).
KINDS = ("ext2", "ext3", "ext4", "fat12", "fat16", "fat32", "exfat", "ntfs",
         "xfs", "btrfs", "LVM2_member", "swap")
#: A used map of more runs than this is not iterated further (a 320 MiB
#: volume of 512-byte blocks, every other one used).
MAX_RUNS = 400_000


class ReadOutside(Exception):
    """A reader asked for bytes before its volume's start: on a disk it
    would read another partition (a finding, never an expected error)."""


class BadRuns(Exception):
    """A used map whose runs are out of order, overlap or are empty (capture
    would store bytes twice or out of disk order): a finding.  Runs that
    touch are let pass (capture copes)."""


class Volume:
    """The sparse volume an input describes: `size`, `hint` (a kind) and
    read(offset, length)."""

    def __init__(self, data):
        data = bytes(data)
        if len(data) < HEADER.size:
            data = data.ljust(HEADER.size, b"\0")
        size, count, hint = HEADER.unpack_from(data)
        self.size = min(size, MAX_VOLUME)
        self.hint = KINDS[hint % len(KINDS)]
        count = min(count, MAX_PIECES, (len(data) - HEADER.size) //
                    PIECE.size)
        at = HEADER.size + count * PIECE.size
        pieces, end = [], 0
        for i in range(count):
            offset, length = PIECE.unpack_from(data, HEADER.size +
                                               i * PIECE.size)
            body = data[at:at + length]
            at += length
            if offset < self.size and body:
                pieces.append((offset, body[:self.size - offset]))
        pieces.sort(key=lambda p: p[0])
        self.starts, self.pieces = [], []
        for offset, body in pieces:       # the earlier one wins
            if offset < end:
                body, offset = body[end - offset:], end
            if body:
                self.starts.append(offset)
                self.pieces.append(body)
                end = offset + len(body)

    def read(self, offset, length):
        if offset < 0:
            raise ReadOutside(f"read at offset {offset}")
        length = max(0, min(length, self.size - offset))
        if not length:
            return b""
        out = bytearray(length)
        stop = offset + length
        i = max(0, bisect.bisect_right(self.starts, offset) - 1)
        while i < len(self.starts) and self.starts[i] < stop:
            start, body = self.starts[i], self.pieces[i]
            lo, hi = max(start, offset), min(start + len(body), stop)
            if lo < hi:
                out[lo - offset:hi - offset] = body[lo - start:hi - start]
            i += 1
        return bytes(out)

    def file(self):
        return VolumeFile(self)


class VolumeFile:
    """The volume as the seekable file object imgx's readers take (as an
    ImageView is): read, seek, tell."""

    def __init__(self, volume):
        self.volume = volume
        self.size = volume.size
        self.at = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        base = {0: 0, 1: self.at, 2: self.volume.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self.at = base + offset
        return self.at

    def tell(self):
        return self.at

    def read(self, size=-1):
        if size is None or size < 0:
            size = self.volume.size - self.at
        data = self.volume.read(self.at, size)
        self.at += len(data)
        return data


def pack(size, pieces, hint="ext4"):
    """An input: a volume of `size` bytes holding `pieces` [(offset,
    bytes)], its metadata naming `hint`."""
    head = HEADER.pack(size, len(pieces), KINDS.index(hint))
    table = b"".join(PIECE.pack(o, len(b)) for o, b in pieces)
    return head + table + b"".join(b for _, b in pieces)


def check_runs(runs):
    """Iterate a map's runs once as capture does, checking its contract."""
    last_end = -1
    for count, (offset, length) in enumerate(runs):
        if count >= MAX_RUNS:
            return
        if length <= 0 or offset < 0 or offset < last_end:
            raise BadRuns(f"run {count} ({offset}, {length}) after one "
                          f"ending at {last_end}")
        last_end = offset + length


def map_volume(read, size, hint):
    """What capture asks of a volume (diskimage.capture._volume_area):
    its kind, identity and used map, the map's description and runs; and
    then the map of the kind the image metadata names (`hint`), as a
    restore or the service room asks for it.  Only DiskImageError
    escapes."""
    kind = registry.detect(read, 0, size)
    kinds = [kind] if kind else []
    if hint != kind:
        kinds.append(hint)
    registry.identity(read, 0, size, kind)
    if kind is None:
        registry.signatures(read, 0, size)
    for kind in kinds:
        try:
            used = registry.used_map(read, 0, size, kind)
            if used is None:
                registry.why_whole(read, 0, size, kind)
                continue
            json.dumps(used.describe())     # into the image metadata
            check_runs(used.runs)
            if isinstance(used.runs, LazyRuns):
                check_runs(used.runs)       # a second pass reads again
        except DiskImageError:              # MapError: capture copies the
            pass                            # volume whole; the next kind
