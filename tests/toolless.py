"""Running the frozen toolkit where the field's tools are really missing.

A scratch root holds the toolkit (dist/deploytool, as boot media hold it),
the libraries it loads, /dev/null, /tmp, and the few tools a test keeps
(with their libraries); the command runs in it with chroot and an empty
environment, as /init runs it on a medium.  No mount namespace is needed:
that works in a chroot too, whose / is not a mount point and cannot be
made private (`unshare -m` fails there), and nothing is mounted, so
nothing can leak onto the host.
"""

import os
import shutil
import stat
import subprocess

from bootdisk.closure import ldd, library_closure
from diskimage.host.tools import SYSTEM_PATH
from tests import needs
from tests.bootdisk_helpers import toolkit

BINARY = "/usr/bin/deploytool"


def _copy(source, root, name):
    target = os.path.join(root, name.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(os.path.realpath(source), target)


def toolless_root(tmp_path, kept=(), trees=()):
    """The scratch root, with the tools named in `kept` (e.g. "sfdisk")
    and the folders in `trees` (e.g. what iconv loads) copied in at the
    paths they have here."""
    needs.require("chroot", root=True)
    root = os.path.join(tmp_path, "root")
    binary = toolkit()
    _copy(binary, root, BINARY)
    for loaded, real in library_closure(binary).items():
        _copy(real, root, loaded)
    for tool in kept:
        path = shutil.which(tool, path=SYSTEM_PATH)
        assert path, f"{tool} is not installed here (make deps)"
        _copy(path, root, path)
        for library in ldd([path]):
            _copy(library, root, library)
    for tree in trees:
        shutil.copytree(tree, os.path.join(root, tree.lstrip("/")),
                        symlinks=True)
    os.makedirs(os.path.join(root, "tmp"))
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    os.makedirs(os.path.join(root, "dev"))
    os.mknod(os.path.join(root, "dev", "null"), 0o666 | stat.S_IFCHR,
             os.makedev(1, 3))
    return root


def run_in(root, command, *args, text=True):
    """`command args` of the toolkit inside `root` (a CompletedProcess)."""
    return subprocess.run(
        [shutil.which("chroot", path=SYSTEM_PATH), root, BINARY, command,
         *map(str, args)], env={}, capture_output=True, text=text,
        stdin=subprocess.DEVNULL)
