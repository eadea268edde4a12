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
  hold zeros, such as a fresh journal), which capture stores as a hole.
"""

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


def split_zero_runs(spans, block=BLOCK, least=LEAST):
    """For each (offset, data, weight) of `spans` yield the same with long
    zero runs cut out as spans of their own.  The pieces of one span keep
    their order and cover it exactly; the first piece carries the weight."""
    zero = bytes(block)
    for offset, data, weight in spans:
        view, size = memoryview(data), len(data)
        start = i = 0
        while i + block <= size:
            if view[i:i + block] != zero:
                i += block
                continue
            j = i + block
            while j + block <= size and view[j:j + block] == zero:
                j += block
            if j == size - size % block and size % block and \
                    not any(view[j:]):
                j = size
            if j - i >= least and j - i < size:
                if i > start:
                    yield offset + start, data[start:i], weight
                    weight = 0
                yield offset + i, data[i:j], weight
                weight, start = 0, j
            i = j
        if start == 0:
            yield offset, data, weight
        elif start < size:
            yield offset + start, data[start:], weight
