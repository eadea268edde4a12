"""Paths inside an image: resolving symlinks within the filesystem's own
root, and telling which names read from an image are safe host names.

:func:`resolve_in_root` walks a "/"-separated path from a root node,
following symlinks the way the kernel does inside a chroot: an absolute
target starts again at the filesystem's root (never the host's), ``..`` at
the root stays at the root, and more than :data:`MAX_LINKS` links on one
walk is an error, like ELOOP.  It knows nothing of how nodes are read:
the caller passes ``child(node, name)`` (the node named `name` in the
directory `node`, or None) and ``link(node)`` (the target of a symlink, or
None for anything else), so the same walk serves a read-only filesystem
reader (diskimage.fs.read) and a mounted tree (where ``link`` is os.readlink on
a path below the mount point and ``child`` a join that checks lexists).

:func:`unsafe_name` says why a directory entry's name cannot be used as a
host file name (it holds "/" or NUL, or is empty, "." or ".."), or None.
"""

from diskimage.errors import InputError

MAX_LINKS = 40          # as the kernel's MAXSYMLINKS


class LinkLoopError(InputError):
    """A path whose walk meets more than MAX_LINKS symlinks (ELOOP)."""


def unsafe_name(name):
    """Why `name` is not usable as one host path component, or None."""
    if name in ("", ".", ".."):
        return f"the name is {name!r}"
    if "/" in name:
        return "the name holds '/'"
    if "\0" in name:
        return "the name holds a NUL byte"
    return None


def resolve_in_root(root, path, child, link, is_dir, follow_last=True,
                    where="", is_root=None):
    """The node at `path` below `root`, every symlink on the way resolved
    inside the root; the last component's link is followed only when
    `follow_last`.  ``..`` stays at `root`, and at any directory for which
    `is_root(node)`, when given, is true (an LV's root in a PV's list of
    LVs: the root of its own filesystem).  Returns (node, canonical path
    as "/a/b").
    Raises InputError for a missing entry or a non-directory in the
    middle, and LinkLoopError after MAX_LINKS links."""
    stack = [(root, "")]              # the directories walked, root first
    todo = [p for p in path.split("/") if p][::-1]   # next component last
    links = 0
    while todo:
        part = todo.pop()
        parent = stack[-1][0]
        walked = "/" + "/".join(n for _, n in stack[1:])
        if not is_dir(parent):
            raise InputError(f"{where}{walked}: not a directory")
        if part == ".":
            continue
        if part == "..":
            if len(stack) > 1 and not (is_root and is_root(parent)):
                stack.pop()
            continue
        shown = walked.rstrip("/") + "/" + part
        found = child(parent, part)
        if found is None:
            raise InputError(f"{where}{shown}: no such file or "
                             f"directory")
        target = link(found)
        if target is not None and (todo or follow_last):
            links += 1
            if links > MAX_LINKS:
                raise LinkLoopError(f"{where}{shown}: too many levels of "
                                    f"symbolic links (more than "
                                    f"{MAX_LINKS})")
            if target.startswith("/"):
                stack = stack[:1]
            todo.extend([p for p in target.split("/") if p][::-1])
            continue
        stack.append((found, part))
    return stack[-1][0], "/" + "/".join(n for _, n in stack[1:])
