"""diskimage.image.holes on in-memory spans: the pieces cover each span exactly,
in order, and only long zero runs and long free gaps are cut; a barely
compressible chunk is cut at its shorter zero runs only when that costs
less."""

import random

from diskimage.capture import RECORD_COST
from diskimage.image.compression import Compressor
from diskimage.image.format import CODEC_LZ4, CODEC_NONE
from diskimage.image.holes import (LEAST, Holed, Zeros, cheaper_pieces,
                                   split_at_gaps, split_zero_runs, zero_runs)


def test_gaps_split_only_where_long():
    pieces = [(0, 4096), (8192, 4096), (8192 + 4096 + 16384, 512),
              (100000, 10)]
    assert list(split_at_gaps(pieces, gap=16384)) == [
        pieces[:2], [pieces[2]], [pieces[3]]]
    assert list(split_at_gaps(pieces, gap=1 << 30)) == [pieces]


def test_zero_runs_become_spans_of_their_own():
    rng = random.Random(1)
    data = bytearray(rng.randbytes(4 << 20))
    cuts = [(4096 * 3, LEAST), (4096 * 100 + 7, LEAST + 3 * 4096),
            (len(data) - LEAST - 100, LEAST + 100), (4096 * 400, LEAST - 4096)]
    for start, length in cuts:
        data[start:start + length] = bytes(length)
    raw = list(split_zero_runs([(1000, bytes(data), 77)]))
    # the cut runs come as Zeros (no copy of them), the rest as bytes
    assert [type(d) for _, d, _ in raw].count(Zeros) == 3
    out = [(o, bytes(len(d)) if isinstance(d, Zeros) else d, w)
           for o, d, w in raw]
    assert b"".join(d for _, d, _ in out) == data
    assert [o for o, _, _ in out] == [1000 + sum(len(d) for _, d, _ in
                                                 out[:k]) for k in
                                      range(len(out))]
    assert sum(w for _, _, w in out) == 77
    zero = [(o - 1000, len(d)) for o, d, _ in out if not any(d)]
    # on the 4 KiB grid: the runs long enough, the tail to its very end
    assert zero == [(4096 * 3, LEAST), (4096 * 101, LEAST + 2 * 4096),
                    (len(data) - LEAST - 100 + 4096 - (len(data) - LEAST -
                                                       100) % 4096,
                     LEAST + 100 - 4096 + (len(data) - LEAST - 100) % 4096)]


def _plain(spans):
    return [(o, ("zeros", len(d)) if isinstance(d, Zeros) else bytes(d), w)
            for o, d, w in spans]


def test_known_zero_parts_are_stepped_over_with_the_same_cuts():
    """A Holed span (a sparse file's holes, known zeros) is cut exactly
    where the same bytes without the knowledge are: the known parts start
    and end off the 4 KiB grid, and zeros run on past them into data."""
    rng = random.Random(5)
    size = 4 << 20
    data = bytearray(rng.randbytes(size))
    known = [(1000, 300_000), (700_001, 1_500_000), (3_000_000, size)]
    for low, high in known:
        data[low:high] = bytes(high - low)
    data[300_000:400_000] = bytes(100_000)      # zeros beyond a known part
    data[5000:5001] = b"x"                      # data inside a "hole" edge
    known[0] = (5001, 300_000)
    holed = Holed(size, known)
    holed[:] = data
    assert len(holed) == size and holed.known == known
    assert _plain(split_zero_runs([(7, holed, 3)])) == \
        _plain(split_zero_runs([(7, bytes(data), 3)]))


def test_spans_without_long_zero_runs_pass_unchanged():
    span = (5, bytes(100) + b"x" + bytes(LEAST - 4097), 3)
    assert list(split_zero_runs([span, (9, bytes(LEAST * 2), 1)])) == \
        [span, (9, bytes(LEAST * 2), 1)]


def test_zero_runs_on_the_sector_grid():
    data = bytearray(b"x" * 20000)
    data[700:4000] = bytes(3300)        # 1024..3584 on the grid
    data[5120:5632] = bytes(512)        # shorter than SHORT: kept
    data[8192:20000] = bytes(11808)     # runs to the end
    assert list(zero_runs(bytes(data))) == [(1024, 3584), (8192, 19968)]
    assert list(zero_runs(b"y" * 4096)) == []


def test_random_chunk_with_zero_blocks_stores_its_random_parts_raw():
    rng = random.Random(3)
    data = bytearray(rng.randbytes(1 << 20))
    for start in (4096, 300 * 1024, 700 * 1024):
        data[start:start + 10240] = bytes(10240)
    data = bytes(data)
    compress = Compressor("lz4")
    whole = compress(data)
    assert whole[0] == CODEC_LZ4        # the zeros made lz4 worth it ...
    pieces = cheaper_pieces(data, whole, compress, RECORD_COST)
    # ... but the pieces cost less: random parts raw, zero runs as holes
    assert [(s, n) for s, n, p in pieces if p is None] == [
        (4096, 10240), (300 * 1024, 10240), (700 * 1024, 10240)]
    assert all(p[0] == CODEC_NONE for _, _, p in pieces if p)
    assert sum(n for _, n, _ in pieces) == len(data)
    assert b"".join(bytes(n) if p is None else p[1]
                    for _, n, p in pieces) == data
    cost = sum(RECORD_COST + (len(p[1]) if p else 0) for _, _, p in pieces)
    assert cost < RECORD_COST + len(whole[1])


def test_compressible_or_raw_chunks_stay_whole():
    compress = Compressor("lz4")
    text = b"".join(b"line %d of a text file\n" % i for i in range(40000)) + \
        bytes(8192)
    whole = compress(text)
    assert cheaper_pieces(text, whole, compress, RECORD_COST) == \
        [(0, len(text), whole)]
    noise = random.Random(4).randbytes(1 << 16)
    whole = compress(noise)
    assert whole[0] == CODEC_NONE
    assert cheaper_pieces(noise, whole, compress, RECORD_COST) == \
        [(0, len(noise), whole)]


def test_the_probe_finds_every_zero_block_and_passes_random_bytes():
    from diskimage.image.holes import BLOCK, _may_hold_zero_block
    rng = random.Random(8)
    data = bytearray(rng.randbytes(4 << 20))
    assert not _may_hold_zero_block(bytes(data), len(data), BLOCK)
    for at in (0, 517 * BLOCK, len(data) - BLOCK):
        probe = bytearray(data)
        probe[at:at + BLOCK] = bytes(BLOCK)
        assert _may_hold_zero_block(bytes(probe), len(probe), BLOCK), at
    # zeros off the grid hold no whole block on it: the search would
    # cut nothing there either
    probe = bytearray(data)
    probe[100:100 + 2 * BLOCK - 200] = bytes(2 * BLOCK - 200)
    assert list(split_zero_runs([(0, bytes(probe), 1)])) == \
        [(0, bytes(probe), 1)]
