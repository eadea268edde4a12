"""Every corpus and crash file of every fuzz target, replayed in-process
without atheris: only the project's errors may escape, no input may run
over HANG seconds or allocate over ALLOCATION bytes at once (traced by
tracemalloc: a length field trusted without a cap shows here even when
the allocation would succeed).  One test per target, naming every input
that fails."""

import signal
import tracemalloc
import traceback

import pytest

from tests.fuzz import targets_index as index

HANG = 10                   # seconds one input may take
ALLOCATION = 256 << 20      # bytes one input may hold at its peak


class Hang(Exception):
    """An input ran past HANG seconds."""


def _alarm(signum, frame):
    raise Hang(f"over {HANG} s")


def replay(name):
    """[(path, why)] of the inputs of target `name` that fail the rule."""
    module = index.load(name)
    failures = []
    old = signal.signal(signal.SIGALRM, _alarm)
    tracemalloc.start()
    try:
        for path, data in index.inputs(name):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            signal.setitimer(signal.ITIMER_REAL, HANG)
            try:
                index.call(module, data)
            except Exception as exc:     # Hang, or any non-project error
                failures.append((path, "".join(
                    traceback.format_exception_only(type(exc), exc)).strip()
                    + "\n" + "".join(traceback.format_tb(exc.__traceback__)
                                     [-3:])))
                continue
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            peak = tracemalloc.get_traced_memory()[1] - base
            if peak > ALLOCATION:
                failures.append((path, f"allocated {peak >> 20} MiB at once"))
    finally:
        tracemalloc.stop()
        signal.signal(signal.SIGALRM, old)
    return failures


@pytest.mark.parametrize("name", index.names())
def test_replay(name):
    assert index.inputs(name), f"target {name} has no corpus: run " \
        f"tests/fuzz/seeds.py (or seeds_fs.py)"
    failures = replay(name)
    assert not failures, "\n\n".join(f"{path}: {why}"
                                     for path, why in failures)
