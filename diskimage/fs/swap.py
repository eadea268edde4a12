"""Linux swap: recognised by its signature at the end of the first page,
"used" is that page alone (the header; the rest is scratch), resized and
re-identified by making it again with ``mkswap``, keeping its label (and
its UUID, unless a new one is asked for)."""

import os

from . import tooling
from .record import Filesystem
from .usedmap import UsedMap

MiB = 1 << 20
SIGNATURES = (b"SWAPSPACE2", b"SWAP-SPACE")
PAGE_SIZES = (4096, 8192, 16384, 65536)


def detect(read):
    # detection looks at a 4 KiB page only, as it always has; the map below
    # finds larger pages
    return "swap" if read(4096 - 10, 10) in SIGNATURES else None


def open_volume(read, size):
    for page in PAGE_SIZES:
        tail = read(page - 10, 10)
        if tail in SIGNATURES:
            header = read(0, 1024 + 16 + 16)
            uuid = header[1036:1052].hex()
            label = header[1052:1068].split(b"\0")[0].decode(
                "utf-8", "replace")
            uuid = "-".join((uuid[:8], uuid[8:12], uuid[12:16], uuid[16:20],
                             uuid[20:]))
            return UsedMap("swap", page, size, page, [(0, page)], label, uuid)
    return None


def _mkswap(path, size, what, new_uuid=False):
    label = tooling.blkid(path, "LABEL")
    args = ["mkswap", "-U", "random" if new_uuid else
            (tooling.blkid(path, "UUID") or "random")]
    if label:
        args += ["-L", label]
    tooling.run(args + [path, str(size // 1024)], what)


def resize(path, size, what):
    _mkswap(path, size, what)
    return size


def new_ids(path, what):
    size = os.path.getsize(path) if os.path.isfile(path) \
        else tooling.device_size(path)
    _mkswap(path, size, what, new_uuid=True)


FILESYSTEM = Filesystem(
    kinds=("swap",), family="swap", title="swap", detect=detect,
    open_map=open_volume, grow=resize, shrink=resize,
    min_size=lambda used, size: min(size, MiB), new_ids=new_ids,
    tools=("mkswap", "blkid"),
    sector_free=True, mbr_type="82",
    gpt_type="0657FD6D-A4AB-43C4-84E5-0933C84B4F4F")
