"""A name a client asked for, resolved inside the boot root, or refused.

Both servers (TFTP and HTTP) open files only through here, so the rules are
one set:

- one leading ``/`` means the root (what loaders send: ``/pxelinux.0``);
  ``//x``, backslashes, ``C:`` drive names and ``~`` are refused;
- a ``..`` component is refused, not clamped;
- NUL and other control characters, a name over MAX_NAME bytes or a
  component over MAX_COMPONENT bytes are refused;
- a symlink may point anywhere inside the root; one that leads out of it
  (dnsmasq's TFTP follows those) is refused, and so is a directory;
- the file is opened, then checked to be the very file that was resolved
  (device and inode), so a link swapped in meanwhile is caught.

Refused raises Refused (with the reason, for the server's log line);
a name that is allowed but absent raises FileNotFoundError.
"""

import os
import stat

from ..errors import InputError

MAX_NAME = 512
MAX_COMPONENT = 255


class Refused(InputError):
    """The request names something the server will not serve (a client's
    bad input: the servers log it and answer with an error)."""


def _check_name(name):
    if isinstance(name, bytes):
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused("name is not UTF-8") from None
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
        raise Refused(f"name longer than {MAX_NAME} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in name):
        raise Refused("control character (NUL, newline ...) in the name")
    if "\\" in name:
        raise Refused("backslash in the name")
    if name.startswith("//"):
        raise Refused("absolute path")
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        raise Refused("drive-letter path")
    if name.startswith("~"):
        raise Refused("home-directory path")
    parts = [p for p in name.lstrip("/").split("/") if p not in ("", ".")]
    if not parts:
        raise Refused("names no file")
    for part in parts:
        if part == "..":
            raise Refused("'..' in the path (traversal)")
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT:
            raise Refused(f"a path component longer than {MAX_COMPONENT} "
                          f"bytes")
    return "/".join(parts)


def relative(name):
    """The clean root-relative form of `name` ("pxelinux.cfg/default"),
    or Refused."""
    return _check_name(name)


def resolve(root, name):
    """(absolute real path, root-relative name) of an allowed, existing
    regular file."""
    rel = _check_name(name)
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, rel))
    if os.path.commonpath([real_root, path]) != real_root:
        raise Refused("leads out of the boot root (a symlink)")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except NotADirectoryError:
        raise FileNotFoundError(rel) from None
    if stat.S_ISDIR(st.st_mode):
        raise Refused("is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise Refused("not a regular file")
    return path, rel


def open_file(root, name):
    """(binary file object, size, root-relative name) of an allowed file,
    opened read-only.  The caller closes it."""
    path, rel = resolve(root, name)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        again = os.stat(path)
        if (st.st_dev, st.st_ino) != (again.st_dev, again.st_ino) or \
                not stat.S_ISREG(st.st_mode):
            raise Refused("changed while it was opened")
        return os.fdopen(fd, "rb"), st.st_size, rel
    except BaseException:
        os.close(fd)
        raise


def stamp(path):
    """(inode, mtime in ns, size) of the file at `path`, or None when it
    cannot be looked at: a change of any of them is a new version (what
    serve compares to see the site file, a torrent, edited)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
