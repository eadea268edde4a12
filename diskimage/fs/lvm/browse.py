"""imgx inside an LVM2 PV: the PV reads as a directory of its logical
volumes, each LV's directory being the root of its own filesystem, read by
that filesystem's reader through the LV's segments.  So
``IMAGE:N/lvname/path`` is partition N, then the LV, then the path in it
(`imgx ls IMAGE:N` lists the LVs).

An LV that is not a plain linear LV of this PV (thin, RAID, snapshot, a
multi-PV group), or whose filesystem imgx does not read, is listed as an
entry of kind "other".  `link(node)` gives a symlink's target as a walk
from the PV's directory of LVs must follow it: an absolute target starts
at the root of the link's own LV (fs/read.py's resolve uses it when the
backend has it), and `is_root(node)` keeps ``..`` at an LV's root (a path
or a relative link never climbs out of its LV into the list of LVs).
"""

import dataclasses
import io
import stat

from .. import registry
from ..usedmap import MapError
from .used import read_group

DIR_MODE = stat.S_IFDIR | 0o755


class LvFile(io.RawIOBase):
    """A seekable, read-only file of an LV's bytes, read through its
    [(lv offset, pv offset, bytes)] places from the PV's file `fh`."""

    def __init__(self, fh, places, size):
        super().__init__()
        self.fh, self.places, self.size = fh, sorted(places), size
        self.pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos,
                io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self.pos = base + offset
        return self.pos

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self.pos < self.size:
            piece = next((p for p in self.places
                          if p[0] <= self.pos < p[0] + p[2]), None)
            if piece is None:
                break
            lv_offset, pv_offset, size = piece
            take = min(len(view) - done, lv_offset + size - self.pos)
            self.fh.seek(pv_offset + self.pos - lv_offset)
            data = self.fh.read(take)
            if not data:
                break
            view[done:done + len(data)] = data
            done += len(data)
            self.pos += len(data)
        return done


class Volumes:
    """The reader backend of an LVM2 PV (fs/read.py's interface: root,
    children, open, xattrs)."""

    def __init__(self, fh):
        def read(offset, length):
            fh.seek(offset)
            return fh.read(length)
        size = fh.seek(0, io.SEEK_END)
        try:
            _, self.group = read_group(read, size)
        except MapError as exc:
            raise ValueError(f"LVM2 metadata: {exc}") from None
        self.fh = fh
        self.backends = {}
        self.root = dataclasses.replace(_dir(""), handle=(None, None))

    def _backend(self, lv):
        """(reader backend, its kind) of the LV's filesystem, or None."""
        if lv.name not in self.backends:
            found = None
            if lv.whole is None and lv.places:
                from ..read import _BACKENDS
                lv_fh = LvFile(self.fh, lv.places, lv.size)

                def read(offset, length):
                    lv_fh.seek(offset)
                    return lv_fh.read(length)
                kind = registry.detect(read, 0, lv.size)
                record = registry.lookup(kind)
                if record and record.browse in _BACKENDS and \
                        record.browse != "lvm":
                    found = _BACKENDS[record.browse](LvFile(
                        self.fh, lv.places, lv.size))
            self.backends[lv.name] = found
        return self.backends[lv.name]

    def children(self, node):
        backend, inner = node.handle
        if backend is not None:
            return [dataclasses.replace(c, handle=(backend, c))
                    for c in backend.children(inner)]
        found = []
        for lv in self.group.lvs:
            if not lv.visible:
                continue
            lv_backend = self._backend(lv)
            if lv_backend is None:
                found.append(dataclasses.replace(
                    _dir(lv.name), kind="other", size=lv.size,
                    mode=stat.S_IFREG | 0o600, handle=(None, None)))
            else:
                root = lv_backend.root
                found.append(dataclasses.replace(
                    root, name=lv.name, handle=(lv_backend, root)))
        return found

    def link(self, node):
        """The target of the symlink `node` as the walk from the PV's
        directory of LVs must follow it (None for anything else): an
        absolute target starts at the root of the link's own LV."""
        if node.kind != "symlink":
            return None
        backend, _ = node.handle
        if backend is not None and node.target.startswith("/"):
            name = next(n for n, b in self.backends.items() if b is backend)
            return f"/{name}{node.target}"
        return node.target

    def is_root(self, node):
        """True for an LV's directory, the root of its own filesystem:
        ``..`` there stays there, as at any filesystem's root."""
        backend, inner = node.handle
        return backend is not None and inner is backend.root

    def open(self, node):
        backend, inner = node.handle
        return backend.open(inner)

    def xattrs(self, node):
        backend, inner = node.handle
        get = getattr(backend, "xattrs", None)
        return get(inner) if get and inner is not None else []


def _dir(name):
    from ..node import Node
    return Node(name, "dir", 0, DIR_MODE)
