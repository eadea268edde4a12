"""What a test needs from the machine, and why it is skipped without it.

The one place that decides: `@pytest.mark.needs("mkfs.ext4", "mcopy",
root=True, fuse=True)` on a test, a class or a module (`pytestmark`), read
by tests/conftest.py before any fixture is built.  The project skips only
for what the machine lacks; `make deps` installs every tool below, so on a
machine set up by the Makefile nothing skips.
"""

import os
import shutil

# Root's tools live in sbin, which a user's PATH may not hold.
SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

#: The fault layers of tests/faults (tests/faultlayers.py: nbdkit's filters
#: under an nbdfuse mount; this kernel has no device-mapper and no nbd
#: module): `@pytest.mark.needs(*needs.NBD_TOOLS, root=True, fuse=True)`.
NBD_TOOLS = ("nbdkit", "nbdfuse", "fusermount3")


def package(tool):
    """The tool's Debian package, from the project's one table of them
    (diskimage.host.tools.PACKAGES), for the skip reason."""
    from diskimage.host.tools import package_of
    return package_of(tool)


def which(tool):
    return shutil.which(tool, path=SEARCH)


def missing(*tools, root=False, fuse=False):
    """Why a test needing `tools` (and root, /dev/fuse) cannot run here, as
    one line, or None when it can."""
    lacking = []
    if root and os.geteuid() != 0:
        lacking.append("root")
    if fuse and not os.path.exists("/dev/fuse"):
        lacking.append("/dev/fuse")
    for tool in tools:
        if which(tool) is None:
            pkg = package(tool)
            lacking.append(f"{tool} (Debian package {pkg})" if pkg else tool)
    if lacking:
        return ("needs " + ", ".join(lacking) +
                " (make deps installs the tools)")
    return None


def require(*tools, **kw):
    """Skip the calling test (or fixture) unless it can run here."""
    import pytest
    reason = missing(*tools, **kw)
    if reason:
        pytest.skip(reason)
