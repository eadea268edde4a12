"""What a binary needs to run on boot media: its shared-library closure.

``ldd`` gives a dynamic binary's libraries.  The frozen toolkit is a
PyInstaller onefile binary: at run time it unpacks libpython and its
extension modules, which bundle their own libraries but leave out the C
library family (libc, libm, libpthread, the loader), so those extension
modules are unpacked here and asked too.  A static binary (busybox-static)
needs nothing.
"""

import os
import re
import sys
import tempfile

from diskimage.errors import InputError
from diskimage.host import tools

_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found")


def ldd(paths, library_path=None):
    """Absolute paths of the libraries that `paths` load (set)."""
    env = {"LD_LIBRARY_PATH": library_path} if library_path else {}
    found = set()
    for path in paths:
        proc = tools.run(["ldd", os.fspath(path)], check=False, env=env)
        if proc.returncode != 0:  # "not a dynamic executable": static
            continue
        for line in proc.stdout.splitlines():
            missing = _NOT_FOUND.match(line)
            if missing:
                raise InputError(f"{path}: needs {missing.group(1)}, which "
                                 f"this system does not have")
            match = _LDD_LINE.match(line)
            if match:
                found.add(match.group(1))
    return found


def _shared_objects(root):
    return [os.path.join(d, f) for d, _, names in os.walk(root)
            for f in names if f.endswith(".so") or ".so." in f]


def _bundled_elves(binary, into):
    """Unpack the shared objects of a PyInstaller onefile archive into
    `into`; [] when `binary` is no such archive or PyInstaller is absent.
    When `binary` is the frozen program running this, its own unpacked
    directory already holds them."""
    if getattr(sys, "frozen", False) and hasattr(sys, "_MEIPASS") and \
            os.path.realpath(binary) == os.path.realpath(sys.executable):
        return _shared_objects(sys._MEIPASS)
    try:
        from PyInstaller.archive.readers import CArchiveReader
    except ImportError:
        return []
    try:
        archive = CArchiveReader(os.fspath(binary))
    except Exception:  # not a PyInstaller archive: a plain binary
        return []
    paths = []
    for name in archive.toc:
        if not (name.endswith(".so") or ".so." in name):
            continue
        parts = name.split("/")
        if name.startswith("/") or "\0" in name or \
                any(p in ("", ".", "..") for p in parts):
            # joined to `into` it would be written elsewhere on the host
            raise InputError(f"{binary}: its archive holds {name!r}, a "
                             f"name that leaves the directory it is "
                             f"unpacked into; not a toolkit to use")
        path = os.path.join(into, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:     # in a private mkdtemp
            f.write(archive.extract(name))
        paths.append(path)
    return paths


def library_closure(binary):
    """The host libraries `binary` loads, its unpacked parts included,
    resolved through symbolic links: {path as loaded: real file}."""
    with tempfile.TemporaryDirectory(prefix="bootdisk-closure-") as tmp:
        inner = _bundled_elves(binary, tmp)
        found = ldd([binary])
        if inner:
            dirs = sorted({os.path.dirname(p) for p in inner})
            bundled = os.path.commonpath(inner)
            found |= {p for p in ldd(inner, ":".join(dirs))
                      if not p.startswith((tmp + os.sep, bundled + os.sep))}
    return {path: os.path.realpath(path) for path in sorted(found)}
