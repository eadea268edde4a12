"""Where capture leaves holes inside a chunk window: free space between
used pieces, and long runs of zeros.

lz4 spends about one byte for every 255 zero bytes, and a chunk that mixes
random data with zeros is compressed (at lz4's cost of about 0.4% on the
random part) where random data alone would be stored raw.  A record costs
96 bytes (its header and its index entry).  So:

* used pieces of a window are stored as one span (free space between them
  as zeros) only while the gaps are shorter than GAP; at a longer gap the
  span ends and the free space is not stored at all (restore leaves it
  alone, as it leaves free chunk windows alone);
* a span is cut at every run of at least LEAST zero bytes (used blocks that
  hold zeros, such as a fresh journal), which capture stores as a hole;
* a chunk that lz4 barely shrinks (random data with a few zero blocks in
  it) is cut at its shorter zero runs too, when the pieces, stored raw or
  compressed each as it suits them, cost less than the chunk compressed
  whole (cheaper_pieces).
"""

from .format import CODEC_NONE

GAP = 16 * 1024
BLOCK = 4096
LEAST = 64 * 1024


def split_at_gaps(pieces, gap=GAP):
    """Groups of consecutive (offset, length) pieces, a new group wherever
    the free space between two pieces is at least `gap` bytes."""
    group = []
    for piece in pieces:
        if group and piece[0] - (group[-1][0] + group[-1][1]) >= gap:
            yield group
            group = []
        group.append(piece)
    if group:
        yield group


def _zero_blocks_end(data, i, size, block):
    """The end of the whole zero blocks of `data` from `i` (`i` itself when
    the block there is not zeros): first past the blocks inside a part
    `data` knows to be zeros (Holed), then steps that double while they
    find zeros, then halve, each a memcmp (startswith: no copy of the
    slice) against zeros.  The search is exact from any start it is given
    within the run, so the jump changes no result."""
    j, step = _past_known(data, i, size, block), block
    while j + step <= size and data.startswith(_zeros(step), j):
        j += step
        step *= 2
    while step > block:
        step //= 2
        if j + step <= size and data.startswith(_zeros(step), j):
            j += step
    return j


class Holed(bytearray):
    """A span's bytes (zeros where nothing was read into it) that knows
    which of its parts are zeros without looking: `known`, sorted
    (from, to) offsets into it (the holes of a sparse disk file), which
    the zero-run search steps over instead of comparing."""

    def __init__(self, size, known=()):
        super().__init__(size)
        self.known = list(known)


def _past_known(data, i, size, block):
    """The last block boundary (from `data`'s start) at or after `i` up to
    which everything from `i` lies inside one of `data`'s known zero
    parts; `i` when none holds it."""
    for low, high in getattr(data, "known", ()):
        if low <= i < high:
            return max(i, min(high, size) // block * block)
        if low > i:
            break
    return i


_ZEROS = {}


def _zeros(length):
    found = _ZEROS.get(length)
    if found is None:
        found = _ZEROS[length] = bytes(length)
    return found


class Zeros:
    """A span known to be zeros without its bytes (a hole of a sparse disk
    file, not read): as long as the span, and stored as a hole."""

    __slots__ = ("size",)

    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size


#: Where in each block _may_hold_zero_block looks: a block of zeros has
#: zeros at all of them; a block of random bytes at all three once in
#: 16 million.
_PROBES = (0, BLOCK // 2 + 1, BLOCK - 1)


def _may_hold_zero_block(data, size, block):
    """False when no whole `block` of `data` on its grid can be zeros: some
    probe byte of every block is not zero.  Three strided slices (one byte
    a block) instead of bytes.find over the whole span, which reads every
    byte of a span just read from the disk (not in the CPU's caches: 9% of
    a capture's CPU on random data).  Known zero parts (Holed) say yes."""
    if getattr(data, "known", None):
        return True
    blocks = size // block
    if not blocks:
        return False
    seen = 0
    for probe in (_PROBES if block == BLOCK else (0, block - 1)):
        seen |= int.from_bytes(data[probe:blocks * block:block], "little")
    return b"\0" in seen.to_bytes(blocks, "little")


def split_zero_runs(spans, block=BLOCK, least=LEAST):
    """For each (offset, data, weight) of `spans` yield the same with long
    zero runs cut out as spans of their own (Zeros: no copy of them).  The pieces of one span keep
    their order and cover it exactly; the first piece carries the weight.
    Zeros spans pass as they are.  Candidate blocks are found with
    bytes.find and the end of a zero run by memcmp of growing slices:
    no Python loop over the blocks of a span."""
    zero = bytes(block)
    for offset, data, weight in spans:
        if isinstance(data, Zeros):
            yield offset, data, weight
            continue
        size = len(data)
        # bytes or bytearray: their slices compare with memcmp
        data = data if hasattr(data, "find") else bytes(data)
        if size < least or not _may_hold_zero_block(data, size, block):
            yield offset, data, weight
            continue
        start = i = 0
        while True:
            found = data.find(zero, i)
            if found < 0:
                break
            i = -(-found // block) * block
            j = _zero_blocks_end(data, i, size, block)
            if j == i:
                i += block
                continue
            if j == size - size % block and size % block and \
                    data[j:] == bytes(size - j):
                j = size
            if j - i >= least and j - i < size:
                if i > start:
                    yield offset + start, data[start:i], weight
                    weight = 0
                yield offset + i, Zeros(j - i), weight
                weight, start = 0, j
            i = j
        if start == 0:
            yield offset, data, weight
        elif start < size:
            yield offset + start, data[start:], weight


# A chunk compressed to more than this share of its length is "barely
# compressible", and cheaper_pieces looks for the zero runs that kept it
# from being stored raw.  Below it the chunk is left whole: the zero runs
# would take longer to find than lz4 took, for a saving of at most lz4's
# 0.4% on the random part.
BARELY = 0.9
SECTOR = 512
SHORT = 2 * SECTOR


def zero_runs(data, least=SHORT, align=SECTOR):
    """(start, end) of each run of at least `least` zero bytes in `data`,
    both on `align` boundaries from its start."""
    probe = bytes(least)
    size = len(data)
    block = bytes(align)
    # bytes.startswith compares in place; a memoryview's == goes element
    # by element (2 MiB: 6 ms against 0.06 ms)
    if hasattr(data, "startswith"):
        same = data.startswith
    else:
        view = memoryview(data)

        def same(pattern, at):
            return view[at:at + len(pattern)] == pattern
    pos = 0
    while True:
        found = data.find(probe, pos)
        if found < 0:
            return
        start = -(-found // align) * align
        end = start
        while end + align <= size and same(block, end):
            end += align
        if end - start >= least:
            yield start, end
        pos = max(end, found + 1)


def cheaper_pieces(data, whole, compressor, record_cost):
    """The cheapest way to store a chunk: `whole` is compressor(data), and
    the result a list of (start, length, stored) with stored either
    compressor's (codec, bytes, checksum) or None for a zero piece.  Only a
    barely compressible chunk with zero runs is tried in pieces."""
    single = [(0, len(data), whole)]
    codec, packed, _ = whole
    if codec == CODEC_NONE or len(packed) <= len(data) * BARELY:
        return single
    cuts = list(zero_runs(data))
    if not cuts:
        return single
    pieces, at = [], 0
    view = memoryview(data)
    for start, end in cuts:
        if start > at:
            pieces.append((at, start - at, compressor(view[at:start])))
        pieces.append((start, end - start, None))
        at = end
    if at < len(data):
        pieces.append((at, len(data) - at, compressor(view[at:])))
    cost = sum(record_cost + (len(p[2][1]) if p[2] else 0) for p in pieces)
    return pieces if cost < record_cost + len(packed) else single
