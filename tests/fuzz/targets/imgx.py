"""Fuzz target imgx: the readers imgx browses a filesystem inside an image
with (diskimage/fs/read.py, node.py, inpath.py over dissect.extfs, .fat,
.ntfs, .xfs, .btrfs and the project's LVM2 reader), asked as `imgx ls -R`,
`imgx cat` and `imgx extract` ask them: open the filesystem of the kind
the image metadata names, walk the whole tree (the walk's own cycle check
on), read every regular file and its extended attributes, check every
name, resolve every symlink inside the root.

Bounds, so one input stays well under libFuzzer's 10 s: at most MAX_NODES
entries, READ_LIMIT bytes of each file.  A directory tree deeper than
that, or a file longer, is not a finding by itself; a hang before that
bound is.

Input: a sparse volume (tests/fuzz/fsvolume.py), its kind hint the kind
the metadata names.  Seeds: the volumes of every filesystem target
(tests/fuzz/seeds_fs.py), traced through this walk."""

import sys

import dissect.cstruct   # noqa: F401 (loaded before the hook widens: not
import dissect.util      # noqa: F401  instrumented, they only decode)


def _instrument_dissect():
    """run.py instruments the modules of diskimage only; imgx's readers
    are mostly dissect's, so while run.py's atheris hook is active (this
    module is imported inside it) dissect's filesystem readers are added
    to it.  Without atheris (the replay) nothing happens."""
    for finder in sys.meta_path:
        if type(finder).__name__ == "AtherisMetaPathFinder":
            finder._include_packages.add("dissect")


_instrument_dissect()
import dissect.btrfs     # noqa: E402,F401
import dissect.extfs     # noqa: E402,F401
import dissect.fat       # noqa: E402,F401
import dissect.ntfs      # noqa: E402,F401
import dissect.xfs       # noqa: E402,F401

from diskimage.errors import DiskImageError   # noqa: E402
from diskimage.fs.inpath import unsafe_name   # noqa: E402
from diskimage.fs.read import Filesystem      # noqa: E402
from tests.fuzz.fsvolume import Volume        # noqa: E402

MAX_LEN = 1 << 20
MAX_NODES = 2000
MAX_LINKS = 20
READ_LIMIT = 1 << 20
BLOCK = 64 << 10


def read_all(fs, node, shown):
    stream = fs.open(node, shown)
    total = 0
    while total < READ_LIMIT:
        data = stream.read(BLOCK)
        if not data:
            return
        total += len(data)


def browse(fh, kind):
    """What imgx does to the filesystem of `kind` in the file object
    `fh`: only DiskImageError escapes, and only from opening it."""
    fs = Filesystem(fh, kind, "fuzz.rdi:1:")
    links = []
    try:
        for count, (rel, node) in enumerate(fs.walk(fs.root)):
            if count >= MAX_NODES:
                break
            unsafe_name(node.name)
            try:
                fs.xattrs(node)
                if node.kind == "file":
                    read_all(fs, node, rel)
            except DiskImageError:          # imgx extract: one file
                pass                        # fails, the walk goes on
            if node.kind == "symlink" and len(links) < MAX_LINKS:
                links.append(rel)
    except DiskImageError:
        pass
    for rel in links:
        try:
            node, _ = fs.resolve(rel)
            if node.kind == "file":
                read_all(fs, node, rel)
        except DiskImageError:
            pass


def one_input(data: bytes) -> None:
    volume = Volume(data)
    browse(volume.file(), volume.hint)
