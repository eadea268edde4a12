"""The streaming run helpers of diskimage.fs.usedmap against plain set
arithmetic on random runs."""

import random

from diskimage.fs.usedmap import (LazyRuns, bitmap_runs, coalesce,
                                  merge_runs, merged, scaled, survey)


def covered(runs):
    return {x for offset, length in runs for x in range(offset,
                                                         offset + length)}


def random_runs(rng, count=200, span=5000):
    return sorted((rng.randrange(span), rng.randrange(0, 40))
                  for _ in range(count))


def test_coalesce_and_merge_cover_the_same_bytes_without_touching():
    rng = random.Random(4)
    for _ in range(20):
        a, b = random_runs(rng), random_runs(rng)
        out = list(merged(iter(a), iter(b)))
        assert covered(out) == covered(a) | covered(b)
        assert all(x[0] + x[1] < y[0] for x, y in zip(out, out[1:]))
        assert merge_runs(a + b) == out == list(coalesce(sorted(a + b)))


def test_scaled_clips_at_the_limit():
    assert list(scaled([(0, 2), (5, 3), (9, 4), (20, 1)], 512, 6000)) == [
        (0, 1024), (2560, 1536), (4608, 1392)]


def test_survey_counts_and_finds_the_first_uncovered_range():
    rng = random.Random(5)
    for _ in range(50):
        runs = list(coalesce(random_runs(rng)))
        have = covered(runs)
        wanted = sorted((o, n, k) for k, (o, n) in enumerate(
            random_runs(rng, 10)) if n)
        total, missing = survey(iter(runs), wanted)
        assert total == len(have)
        first = next((w for w in wanted
                      if not set(range(w[0], w[0] + w[1])) <= have or
                      not any(o <= w[0] and w[0] + w[1] <= o + n
                              for o, n in runs)), None)
        assert missing == first


def test_lazy_runs_iterate_afresh():
    calls = []
    runs = LazyRuns(lambda: calls.append(1) or iter([(0, 1), (5, 2)]))
    assert list(runs) == list(runs) == [(0, 1), (5, 2)] and len(calls) == 2


def test_bitmap_runs_are_the_set_bits():
    """Against the bits one by one (bit 0 of byte 0 first), on bitmaps of
    full, empty and partly set bytes, cut at any bit, from bytes,
    bytearray and memoryview."""
    rng = random.Random(9)
    for trial in range(400):
        size = rng.randrange(0, 200)
        pick = [0, 0xFF, rng.randrange(256)] if trial % 2 else range(256)
        bitmap = bytes(rng.choice(pick) for _ in range(size))
        nbits = rng.randrange(0, 8 * size + 12)
        first = rng.randrange(50)
        bits = [i for i in range(min(nbits, 8 * size))
                if bitmap[i // 8] >> (i % 8) & 1]
        for kind in (bytes, bytearray, memoryview):
            out = list(bitmap_runs(kind(bitmap), nbits, first))
            assert covered(out) == {first + i for i in bits}
            assert all(x[0] + x[1] < y[0] for x, y in zip(out, out[1:]))
