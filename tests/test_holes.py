"""diskimage.holes on in-memory spans: the pieces cover each span exactly,
in order, and only long zero runs and long free gaps are cut."""

import random

from diskimage.holes import LEAST, split_at_gaps, split_zero_runs


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
    out = list(split_zero_runs([(1000, bytes(data), 77)]))
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


def test_spans_without_long_zero_runs_pass_unchanged():
    span = (5, bytes(100) + b"x" + bytes(LEAST - 4097), 3)
    assert list(split_zero_runs([span, (9, bytes(LEAST * 2), 1)])) == \
        [span, (9, bytes(LEAST * 2), 1)]
