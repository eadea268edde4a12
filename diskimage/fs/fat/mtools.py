"""mtools, the one way the toolkit (and its tests, demo disks, boot media and
benchmarks) reaches inside a FAT volume without mounting it (vfat does not
mount here): the environment every mtools command runs with."""

from ...host.tools import tool_env

# No geometry checks on images (a volume at an offset, a floppy-sized
# image), UTF-8 names whatever the caller's locale.
MTOOLS_ENV = {"LC_ALL": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1"}


def mtools_env(extra=None):
    """The whole environment for an mtools command: tool_env (the system's
    PATH and libraries, also from the frozen binary) with MTOOLS_ENV."""
    return tool_env(dict(MTOOLS_ENV, **(extra or {})))
