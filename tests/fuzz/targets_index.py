"""The fuzz targets, found by file name, and what the harness allows.

A target is ``tests/fuzz/targets/<name>.py`` defining ``one_input(data:
bytes) -> None``; optional ``MAX_LEN`` (the largest input libFuzzer makes,
default 65536).  It feeds the bytes to a reader of untrusted data; only the
project's own errors (:class:`diskimage.errors.DiskImageError` and its
subclasses) may escape, and :func:`call` swallows exactly those.  Anything
else (an IndexError, a struct.error, a MemoryError, a RecursionError) is a
finding.  Used by run.py (under atheris) and test_replay.py (without).
"""

import importlib
import os

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = os.path.join(HERE, "targets")
CORPUS = os.path.join(HERE, "corpus")
CRASHES = os.path.join(HERE, "crashes")
DEFAULT_MAX_LEN = 65536


def names():
    """Every target's name, sorted: the .py files of targets/."""
    return sorted(name[:-3] for name in os.listdir(TARGETS)
                  if name.endswith(".py") and not name.startswith("_"))


def load(name):
    """The target module `name` (ImportError naming it if unknown)."""
    if name not in names():
        raise ImportError(f"no fuzz target {name!r} in {TARGETS} "
                          f"(known: {' '.join(names())})")
    return importlib.import_module(f"tests.fuzz.targets.{name}")


def max_len(module):
    return getattr(module, "MAX_LEN", DEFAULT_MAX_LEN)


def call(module, data):
    """Feed `data` to the target; the project's errors are expected."""
    from diskimage.errors import DiskImageError
    try:
        module.one_input(bytes(data))
    except DiskImageError:
        pass


def inputs(name):
    """(path, bytes) of every corpus and crash file of target `name`."""
    found = []
    for top in (CORPUS, CRASHES):
        folder = os.path.join(top, name)
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry)
            if os.path.isfile(path) and not entry.startswith("."):
                with open(path, "rb") as f:
                    found.append((path, f.read()))
    return found


def scratch(name, memory=True):
    """A directory for a target's files, removed when the process ends:
    in /dev/shm when there is one and `memory` (many small writes per
    input), else in the temp directory (a boot root may not be under
    /dev: pxeconf refuses system directories)."""
    import atexit
    import shutil
    import tempfile
    base = "/dev/shm" if memory and os.path.isdir("/dev/shm") else None
    path = tempfile.mkdtemp(prefix=f"fuzz-{name}-", dir=base)
    atexit.register(shutil.rmtree, path, True)
    return path


class SetupFailed(RuntimeError):
    """A target could not build what it feeds inputs to: every input would
    end in the same project error and the campaign would test nothing, so
    this is raised instead (not a DiskImageError: it stops the run)."""


def set_up(build):
    """build(), with a project error turned into SetupFailed."""
    from diskimage.errors import DiskImageError
    try:
        return build()
    except DiskImageError as exc:
        raise SetupFailed(f"{build.__module__}: {exc}") from exc
