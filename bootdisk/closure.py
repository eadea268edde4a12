"""What a binary needs to run on boot media: its shared-library closure.

``ldd`` gives a dynamic binary's libraries.  The frozen toolkit is a
PyInstaller onefile binary: at run time it unpacks libpython and its
extension modules, which bundle their own libraries but leave out the C
library family (libc, libm, libpthread, the loader), so those extension
modules are unpacked here (carchive.py, without PyInstaller) and asked
too.  A static binary (busybox-static)
needs nothing.
"""

import os
import re
import tempfile

from diskimage.errors import InputError
from diskimage.host import tools

from . import carchive

_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found")


def ldd(paths, library_path=None, static_ok=True):
    """Absolute paths of the libraries that `paths` load (set).  A static
    executable loads none (with `static_ok`); any other answer of ldd but
    a list is an InputError: the closure would be incomplete."""
    env = {"LD_LIBRARY_PATH": library_path} if library_path else {}
    found = set()
    for path in paths:
        proc = tools.run(["ldd", os.fspath(path)], check=False, env=env)
        if proc.returncode != 0:
            said = (proc.stdout + proc.stderr).strip()
            if static_ok and "not a dynamic executable" in said:
                continue
            tail = " | ".join(said.splitlines()[-2:])
            raise InputError(f"{path}: ldd cannot list the libraries it "
                             f"needs (exit {proc.returncode}: {tail})")
        for line in proc.stdout.splitlines():
            missing = _NOT_FOUND.match(line)
            if missing:
                raise InputError(f"{path}: needs {missing.group(1)}, which "
                                 f"this system does not have")
            match = _LDD_LINE.match(line)
            if match:
                found.add(match.group(1))
    return found


def _bundled_elves(binary, into):
    """Unpack the shared objects of a PyInstaller onefile archive into
    `into` (carchive.py reads it, PyInstaller need not be installed):
    (their paths, the name of the libpython the bootloader loads); ([],
    None) when `binary` carries no such archive (a plain binary)."""
    archive = carchive.open_archive(binary)
    if archive is None:
        return [], None
    paths = []
    for name, entry in archive.toc.items():
        if not (name.endswith(".so") or ".so." in name):
            continue
        if entry[4] == carchive.SYMLINK:
            # its data is the name of its target, not an ELF: the target
            # is a member of its own, and ldd below finds it by directory
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
    if archive.pylib_name not in archive.toc:
        raise carchive.unreadable(
            binary, f"it loads {archive.pylib_name}, which its archive "
                    f"does not hold")
    return paths, archive.pylib_name


def library_closure(binary):
    """The host libraries `binary` loads, its unpacked parts included,
    resolved through symbolic links: {path as loaded: real file}.  A
    closure that cannot be computed completely (an archive that cannot be
    read, a library this system lacks) is an InputError: a medium built
    without it would fail at boot."""
    with tempfile.TemporaryDirectory(prefix="bootdisk-closure-") as tmp:
        inner, pylib = _bundled_elves(binary, tmp)
        found = ldd([binary])
        if pylib:
            dirs = sorted({os.path.dirname(p) for p in inner})
            bundled = os.path.commonpath(inner)
            found |= {p for p in ldd(inner, ":".join(dirs), static_ok=False)
                      if not p.startswith((tmp + os.sep, bundled + os.sep))}
    return {path: os.path.realpath(path) for path in sorted(found)}
