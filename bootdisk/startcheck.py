"""The build-time proof that the toolkit starts on the medium: its binary
and the libraries of its closure, taken from the assembled tree (what the
medium will hold), are written into a scratch root, and
``chroot ROOT /usr/bin/deploytool --version`` runs there with an empty
environment, as /init runs it at boot (and the same for udp-receiver,
``--license``).  A toolkit that cannot start there
(a library left out of the closure: "Failed to load Python shared library
... libm.so.6") fails the build, instead of a medium that boots and then
fails its job.

Only files are written into the scratch root, never symbolic links, so no
name from the tree can lead a write out of it.
"""

import os
import shutil
import tempfile

from diskimage.errors import InputError, MissingToolError, ToolError
from diskimage.host import tools

#: How long the toolkit may take to print its version (it unpacks itself).
TIMEOUT = 120


def _scratch_path(root, name):
    parts = name.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InputError(f"/{name}: not a plain path inside the medium")
    return os.path.join(root, *parts)


def _write(tree, name, root):
    entry = tree.entries.get(name.strip("/"))
    if entry is None or entry[0] != "file":
        return                  # not on the medium as a file: it will fail
    path = _scratch_path(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                 entry[2] & 0o777 | 0o400)
    with os.fdopen(fd, "wb") as f:
        f.write(entry[1])


def toolkit_starts(tree, binary, libraries, given, chroot=None,
                   args=("--version",), what="the toolkit"):
    """Run `binary` (its path in the tree) with `args` (--version) in a
    root made of it and `libraries` (paths in the tree); `given` is the
    host file and `what` the program, for the messages.  Returns the first
    line it printed; an InputError when it does not start; None when this
    process may not chroot (not root), so nothing was proved."""
    chroot = chroot or shutil.which("chroot") or "/usr/sbin/chroot"
    if os.geteuid() != 0:
        return None
    with tempfile.TemporaryDirectory(prefix="bootdisk-root-") as root:
        for name in [binary, *libraries]:
            _write(tree, name, root)
        os.makedirs(os.path.join(root, "tmp"), exist_ok=True)
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        argv = [chroot, root, binary, *args]
        shown = " ".join([binary, *args])
        try:
            proc = tools.run(argv, check=False, text=False, env={},
                             inherit=False, timeout=TIMEOUT)
        except MissingToolError:
            raise
        except ToolError:                   # it ran past TIMEOUT
            raise InputError(f"{given}: {what} does not start in the "
                             f"medium's root: `chroot ROOT {shown}` "
                             f"gave no answer in {TIMEOUT} s") from None
    # the first line it printed (udp-receiver prints its licence on stderr)
    out = (proc.stdout.decode(errors="replace").strip() or
           proc.stderr.decode(errors="replace").strip())
    if proc.returncode != 0:
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"{given}: {what} does not start in the "
                         f"medium's root: `chroot ROOT {shown}` exit "
                         f"{proc.returncode}: "
                         f"{said[-1][:300] if said else '(nothing said)'}")
    return out.splitlines()[0] if out else ""
