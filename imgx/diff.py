"""Comparing two images file by file (imgx diff)."""

import hashlib

from .extract import copy_stream
from .image import Image


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
