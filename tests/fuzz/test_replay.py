"""Every corpus and crash file of every fuzz target, replayed in-process
without atheris: only the project's errors may escape, no input may run
over HANG seconds, and none may allocate without bound: the process's
address space is capped at ALLOCATION bytes over what it uses while the
inputs run, so a length field trusted without a cap is a MemoryError here
even on a machine that would have the memory.  One test per target,
naming every input that fails."""

import resource
import signal
import traceback

import pytest

from tests.fuzz import targets_index as index

HANG = 10                   # seconds one input may take
ALLOCATION = 1 << 30        # bytes of address space the inputs may add


class Hang(BaseException):
    """An input ran past HANG seconds.  A BaseException, so a reader's
    `except Exception` (which turns a library's fault into the project's
    error) does not take it for a fault of the data and go on."""


def _alarm(signum, frame):
    raise Hang(f"over {HANG} s")


def _mapped():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f
                    if line.startswith("VmSize:"))


def replay(name):
    """[(path, why)] of the inputs of target `name` that fail the rule."""
    module = index.load(name)
    inputs = index.inputs(name)
    failures = []
    old = signal.signal(signal.SIGALRM, _alarm)
    limits = resource.getrlimit(resource.RLIMIT_AS)
    cap = _mapped() + ALLOCATION
    if limits[0] == resource.RLIM_INFINITY or limits[0] > cap:
        resource.setrlimit(resource.RLIMIT_AS, (cap, limits[1]))
    try:
        for path, data in inputs:
            signal.setitimer(signal.ITIMER_REAL, HANG)
            try:
                index.call(module, data)
            except (Exception, Hang) as exc:    # MemoryError, any other
                failures.append((path, "".join(
                    traceback.format_exception_only(type(exc), exc)).strip()
                    + "\n" + "".join(traceback.format_tb(exc.__traceback__)
                                     [-3:])))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, limits)
        signal.signal(signal.SIGALRM, old)
    return failures


@pytest.mark.parametrize("name", index.names())
def test_replay(name):
    assert index.inputs(name), f"target {name} has no corpus: run " \
        f"tests/fuzz/seeds.py (or seeds_fs.py)"
    failures = replay(name)
    assert not failures, "\n\n".join(f"{path}: {why}"
                                     for path, why in failures)
