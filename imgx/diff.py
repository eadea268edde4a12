"""Comparing two images file by file (imgx diff).

The answer follows diff(1): the same (0), different (1), or trouble (2):
a partition that could not be compared (a filesystem imgx cannot read in
either image) is trouble, never "the same".
"""

import hashlib

from diskimage.errors import DiskImageError
from diskimage.fs.read import READS, browsable
from diskimage.image.browse import Image

from .extract import copy_stream


class DiffTrouble(DiskImageError):
    """imgx diff could not compare: exit 2, as diff(1)'s trouble."""

    exit_code = 2


def _digest(fs, node):
    digest = hashlib.sha256()
    copy_stream(fs.open(node), digest.update)
    return digest.hexdigest()


def _entries(fs):
    return {rel: node for rel, node in fs.walk(fs.root)}


def _kinds(image):
    return {a["partition"]: a["filesystem"] for a in image.volumes}


def _shown(kind):
    return kind or "no filesystem found"


def plan(a, b, number=None):
    """(partitions to compare, [(partition, change)] of partitions only in
    one image, [(partition, reason)] of those that cannot be compared)."""
    kinds_a, kinds_b = _kinds(a), _kinds(b)
    if number is not None:
        a.area(number), b.area(number)      # no such partition: bad input
        numbers = [number]
    else:
        numbers = sorted(set(kinds_a) | set(kinds_b),
                         key=lambda n: -1 if n is None else n)
    compare, only, cannot = [], [], []
    if not numbers:
        cannot.append((None, "neither image holds a partition or a "
                             "filesystem"))
    for n in numbers:
        ka, kb = kinds_a.get(n, False), kinds_b.get(n, False)
        if ka is False or kb is False:
            only.append((n, "-" if kb is False else "+"))
        elif browsable(ka) and browsable(kb):
            compare.append(n)
        elif ka == kb:
            cannot.append((n, f"{_shown(ka)} in both images (imgx reads "
                              f"{READS})"))
        else:
            cannot.append((n, f"{_shown(ka)} in {a.path}, {_shown(kb)} in "
                              f"{b.path}"))
    return compare, only, cannot


def diff(path_a, path_b, number=None, passphrase=None, ca_file=None,
         on_retry=None):
    """Compare partition `number`, or every partition of either image.
    Returns (changes, not_compared): changes are (change, partition, path)
    with change "+" (only in B), "-" (only in A) or "M" (content, size,
    type or link target differ), a whole partition in one image only being
    path ""; not_compared are (partition, reason).  Either image may be a
    URL (`ca_file`: its TLS CA bundle)."""
    with Image(path_a, passphrase=passphrase, ca_file=ca_file,
               on_retry=on_retry) as a, \
            Image(path_b, passphrase=passphrase, ca_file=ca_file,
                  on_retry=on_retry) as b:
        compare, only, cannot = plan(a, b, number)
        changes = [(change, "" if n is None else n, "")
                   for n, change in only]
        for n in compare:
            fs_a, fs_b = a.filesystem(n), b.filesystem(n)
            old, new = _entries(fs_a), _entries(fs_b)
            label = "" if n is None else n
            for rel in sorted(set(old) | set(new)):
                if rel not in new:
                    changes.append(("-", label, rel))
                elif rel not in old:
                    changes.append(("+", label, rel))
                elif _changed(fs_a, old[rel], fs_b, new[rel]):
                    changes.append(("M", label, rel))
        return changes, cannot


def _changed(fs_a, x, fs_b, y):
    if (x.kind, x.size, x.target) != (y.kind, y.size, y.target):
        return True
    if x.kind != "file":
        return False
    return _digest(fs_a, x) != _digest(fs_b, y)
