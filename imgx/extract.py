"""Copying files and trees out of a filesystem in an image (imgx get), and
comparing two images file by file (imgx diff).

Files are written as ``NAME.partial`` and renamed when whole, so an
interrupted get never leaves a short file under the real name.  Modes are
kept where the filesystem has them (ext), times always (directories' after
their contents), symlinks are made as symlinks.
"""

import hashlib
import os
import stat

from diskimage.errors import InputError, NoSpaceError

from .image import Image

BLOCK = 1 << 20


def copy_stream(src, write):
    while block := src.read(BLOCK):
        write(block)


def _times(path, node, follow=True):
    if node.mtime is None:
        return
    atime = node.atime if node.atime is not None else node.mtime
    os.utime(path, ns=(int(atime * 1e9), int(node.mtime * 1e9)),
             follow_symlinks=follow)


def _write_file(fs, node, dest, keep_mode):
    partial = dest + ".partial"
    try:
        with open(partial, "wb") as out:
            copy_stream(fs.open(node), out.write)
        if keep_mode:
            os.chmod(partial, stat.S_IMODE(node.mode))
        _times(partial, node)
        os.replace(partial, dest)
    except BaseException as exc:
        try:
            os.unlink(partial)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno == 28:
            raise NoSpaceError(f"{dest}: no space left") from None
        raise


def _place(fs, node, dest, keep_mode, counts):
    if node.kind == "file":
        _write_file(fs, node, dest, keep_mode)
        counts["files"] += 1
        counts["bytes"] += node.size
    elif node.kind == "symlink":
        if os.path.lexists(dest):
            os.unlink(dest)
        os.symlink(node.target or "", dest)
        _times(dest, node, follow=False)
        counts["symlinks"] += 1
    elif node.is_dir:
        os.makedirs(dest, exist_ok=True)
        for child in fs.children(node):
            _place(fs, child, os.path.join(dest, child.name), keep_mode,
                   counts)
        if keep_mode:
            os.chmod(dest, stat.S_IMODE(node.mode))
        _times(dest, node)
        counts["dirs"] += 1
    else:
        counts["skipped"] += 1


def get(image_path, number, path, dest, recursive=False):
    """Copy `path` of partition `number` to `dest`.  A directory needs
    `recursive`; an existing directory `dest` receives the entry by its
    name (as cp does).  Returns counts."""
    with Image(image_path) as image:
        fs = image.filesystem(number)
        node = fs.lookup(path)
        if node.is_dir and not recursive:
            raise InputError(f"{fs.where}/{path}: is a directory (use -R)")
        if os.path.isdir(dest) and node.name:
            dest = os.path.join(dest, node.name)
        parent = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(parent):
            raise InputError(f"{dest}: directory {parent} does not exist")
        counts = dict.fromkeys(("files", "dirs", "symlinks", "skipped",
                                "bytes"), 0)
        _place(fs, node, dest, fs.kind.startswith("ext"), counts)
        return counts


def _digest(fs, node):
    digest = hashlib.sha256()
    copy_stream(fs.open(node), digest.update)
    return digest.hexdigest()


def _entries(fs):
    return {rel: node for rel, node in fs.walk(fs.root)}


def diff(path_a, path_b, number=None):
    """Yield (change, partition, path) with change "+" (only in B), "-"
    (only in A) or "M" (content, size, type or link target differ), for
    partition `number` or every filesystem both images hold."""
    with Image(path_a) as a, Image(path_b) as b:
        if number is None:
            numbers = [n for n in a.browsable_numbers()
                       if n in b.browsable_numbers()]
        else:
            numbers = [number]
        for n in numbers:
            fs_a, fs_b = a.filesystem(n), b.filesystem(n)
            old, new = _entries(fs_a), _entries(fs_b)
            label = "" if n is None else n
            for rel in sorted(set(old) | set(new)):
                if rel not in new:
                    yield "-", label, rel
                elif rel not in old:
                    yield "+", label, rel
                elif _changed(fs_a, old[rel], fs_b, new[rel]):
                    yield "M", label, rel


def _changed(fs_a, x, fs_b, y):
    if (x.kind, x.size, x.target) != (y.kind, y.size, y.target):
        return True
    if x.kind != "file":
        return False
    return _digest(fs_a, x) != _digest(fs_b, y)
