"""The local image store: /store on the service FAT.

An image NAME is kept as NAME.rdi, NAME.r01, NAME.r02 ... (the volumes of
diskimage.image.volumes: plain slices of one stream), each below 4 GiB,
FAT32's largest file, so any image, split or not, is cut again into
volumes of at most SPLIT bytes (4000 MiB, as the environment's `rdeploy
capture --split=4000M` does into $BWPART_STORE).

A volume is written as VOLUME.partial, read back (size and sha256: mcopy
exits 0 after a short write on a full FAT), and renamed only when every
volume is whole, later volumes first and NAME.rdi last, so a NAME.rdi
without ".partial" is always a whole image.  What does not fit is refused
before any write (NoSpaceError); a failed add removes its partials.
"""

import hashlib
import os
import re

from ..errors import CorruptImageError, InputError, NoSpaceError, \
    TargetChangedError, TargetError, UnsupportedError
from ..fs.fat.mtools import MTOOLS_ENV
from ..host import tools
from ..image.format import FILE_HEADER, unpack_file_header
from ..image.volumes import PARTIAL, find_volumes, volume_name
from . import fatfs, layout, lock

STORE_DIR = layout.STORE_DIR
SPLIT = 4000 << 20
BLOCK = 1 << 20
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_VOLUME = re.compile(r"^(?P<name>.+?)\.(?P<vol>rdi|r\d{2,})$", re.I)


def check_name(name):
    if not _NAME.match(name or "") or len(name) > 200 or \
            name.lower().endswith(".rdi"):
        raise InputError(f"{name!r}: not a store name (letters, digits, "
                         f"'_', '.', '+', '-'; no .rdi, no leading '.' or "
                         f"'-')")
    return name


def check_image(path):
    """InputError unless `path` (an image's first volume) starts with an
    .rdi file header the image reader takes (format.unpack_file_header:
    magic, version, crc32, sizes)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(FILE_HEADER.size)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    try:
        unpack_file_header(raw, name=path)
    except (CorruptImageError, UnsupportedError) as exc:
        raise InputError(f"{path}: not an image the store takes ({exc})") \
            from None


def _volume_path(name, number):
    return f"{STORE_DIR}/{volume_name(name + '.rdi', number)}"


def ls(service, fat=None):
    """[{"name", "size", "volumes"}] of the whole images in the store
    (partials left by an interrupted add are not images)."""
    if fat is None:
        with fatfs.open_fat(service) as fat:
            return ls(service, fat)
    if not fat.exists(STORE_DIR):
        return []
    images = {}
    for entry, size, is_dir in fat.ls(STORE_DIR):
        m = _VOLUME.match(entry)
        if is_dir or not m:
            continue
        key = m["name"]
        number = 0 if m["vol"].lower() == "rdi" else int(m["vol"][1:])
        images.setdefault(key, {})[number] = size
    found = []
    for name, volumes in sorted(images.items()):
        if 0 not in volumes:
            continue
        count = 0
        while count in volumes:
            count += 1
        found.append({"name": name, "volumes": count,
                      "size": sum(volumes[n] for n in range(count))})
    return found


def _cluster_size(fat):
    return 64 << 10     # the largest FAT32 cluster: a safe upper bound


def needed(total, split, cluster):
    """Bytes the FAT must have free for `total` bytes in volumes of
    `split`: every volume rounded up to a whole cluster, one more cluster
    for the directory."""
    count = max(1, -(-total // split))
    return total + count * cluster + cluster


def add(service, image_path, name=None, progress=None, split=SPLIT):
    """Copy the image at `image_path` (its first volume; later ones are
    found beside it) into the store as `name` (default: its file name
    without .rdi): {"name", "size", "volumes"}.  Holds the disk's lock
    (lock.held) throughout."""
    with lock.held(service.disk):
        return _add(service, image_path, name, progress, split)


def _add(service, image_path, name, progress, split):
    sources = find_volumes(os.fspath(image_path))
    check_image(sources[0])
    if name is None:
        base = os.path.basename(sources[0])
        name = base[:-4] if base.lower().endswith(".rdi") else base
    check_name(name)
    total = sum(os.path.getsize(p) for p in sources)
    with fatfs.open_fat(service) as fat:
        if any(i["name"].lower() == name.lower() for i in ls(service, fat)):
            raise TargetError(f"{service.disk}: the store already holds "
                              f"{name}; `bwpart store rm` it first")
        fat.makedirs(STORE_DIR)
        _remove_partials(fat, name)
        free = fat.free()
        want = needed(total, split, _cluster_size(fat))
        if want > free:
            raise NoSpaceError(
                f"{service.disk}: the store has {free >> 20} MiB free, "
                f"{name} needs {-(-want >> 20)} MiB; grow the service "
                f"partition (bwpart update --size) or rm an image")
        written = []
        try:
            for number, digest, size in _pieces(fat, sources, name, split,
                                                progress):
                written.append(number)
            for number in reversed(written):      # the first volume last
                path = _volume_path(name, number)
                fat.rename(path + PARTIAL, path)
        except BaseException:
            _remove_partials(fat, name)
            raise
    return {"name": name, "size": total, "volumes": len(written)}


def _pieces(fat, sources, name, split, progress):
    """Write the stream of `sources` as partial volumes of at most
    `split` bytes; yield (number, sha256, size) of each, read back."""
    stream = _Concat(sources)
    number = 0
    try:
        while True:
            path = _volume_path(name, number) + PARTIAL
            if progress:
                progress(f"writing {path}")
            digest, size = _stream_to(fat, stream, path, split)
            if size == 0 and number > 0:
                fat.rm(path)            # the stream ended on a boundary
                break
            got = fat.ls(STORE_DIR)
            on_fat = {n.lower(): s for n, s, _ in got}
            base = path.rsplit("/", 1)[1].lower()
            if on_fat.get(base) != size or fat.sha256(path) != digest:
                raise TargetChangedError(
                    f"{fat.where}: {path} did not read back whole (the FAT "
                    f"may be full); removed")
            yield number, digest, size
            number += 1
            if size < split:
                break
    finally:
        stream.close()


def _stream_to(fat, stream, path, limit):
    """Up to `limit` bytes of `stream` into `path` on the FAT: (sha256,
    size).  mtools reads it from a pipe; a mount is written directly."""
    digest = hashlib.sha256()
    size = 0
    if isinstance(fat, fatfs.MtoolsFat):
        proc = tools.start(["mcopy", "-o", "-i", fat.drive, "-",
                            f"::{fatfs.safe_path(path)}"], env=MTOOLS_ENV,
                           stdin=tools.PIPE, stdout=tools.DEVNULL,
                           stderr=tools.PIPE, no_tty=True)
        sink = proc.stdin
    else:
        proc, sink = None, open(fat._p(path), "wb")
    try:
        while size < limit:
            block = stream.read(min(BLOCK, limit - size))
            if not block:
                break
            sink.write(block)
            digest.update(block)
            size += len(block)
    finally:
        sink.close()
        if proc is not None:
            err = proc.stderr.read().decode("utf-8", "replace")
            proc.stderr.close()
            if proc.wait() != 0 or "No free cluster" in err:
                raise NoSpaceError(f"{fat.where}: {path}: no space left "
                                   f"({err.strip()[-200:]})")
    return digest.hexdigest(), size


class _Concat:
    """The volumes of an image read as one stream."""

    def __init__(self, paths):
        self.paths = list(paths)
        self.f = None

    def read(self, size):
        while True:
            if self.f is None:
                if not self.paths:
                    return b""
                self.f = open(self.paths.pop(0), "rb")
            data = self.f.read(size)
            if data:
                return data
            self.f.close()
            self.f = None

    def close(self):
        if self.f is not None:
            self.f.close()


def _remove_partials(fat, name):
    if not fat.exists(STORE_DIR):
        return
    prefix = name.lower() + "."
    for entry, _, is_dir in fat.ls(STORE_DIR):
        low = entry.lower()
        if not is_dir and low.startswith(prefix) and low.endswith(PARTIAL):
            fat.rm(f"{STORE_DIR}/{entry}")


def rm(service, name):
    """Remove image `name` from the store (NAME.rdi first, so it is no
    image from the first step on; then its later volumes).  Holds the
    disk's lock (lock.held)."""
    check_name(name)
    with lock.held(service.disk), fatfs.open_fat(service) as fat:
        found = [i for i in ls(service, fat)
                 if i["name"].lower() == name.lower()]
        if not found:
            raise InputError(f"{service.disk}: no image {name} in the store")
        for number in range(found[0]["volumes"]):
            fat.rm(_volume_path(found[0]["name"], number))
        _remove_partials(fat, found[0]["name"])
    return found[0]
