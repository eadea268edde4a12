"""Linux swap, and the hibernation images that take its place.

Swap is recognised as libblkid recognises it (docs/filesystems/detection.md):
``SWAPSPACE2`` (with version 1 and a page count) or ``SWAP-SPACE`` in the
last 10 bytes of the first page, for pages of 4, 8, 16, 32 or 64 KiB.
"Used" is that page alone (the header; the rest is scratch).  It is resized
and re-identified by making it again with ``mkswap``, keeping its label (and
its UUID, unless a new one is asked for).

A swap area that holds a hibernation image is ``swsuspend``: the kernel
writes ``S1SUSPEND``, ``S2SUSPEND``, ``ULSUSPEND`` or ``LINHIB0001`` where
the swap signature was, and TuxOnIce writes its magic at byte 0 and leaves
the swap signature in place.  Its pages are the saved memory of a machine
that will resume from them: it has no map and is copied whole.
"""

import os
import struct

from . import tooling
from .foreign import uuid as uuid_text
from .record import Filesystem
from .usedmap import MapError, UsedMap

MiB = 1 << 20
SIGNATURES = (b"SWAPSPACE2", b"SWAP-SPACE")
PAGE_SIZES = (4096, 8192, 16384, 32768, 65536)
#: The signatures a hibernation image leaves where SWAPSPACE2 was.
SUSPEND = (b"S1SUSPEND", b"S2SUSPEND", b"ULSUSPEND", b"LINHIB0001")
#: TuxOnIce's magic at byte 0 (its swap signature stays in place).
TUXONICE = b"\xed\xc3\x02\xe9\x98\x56\xe5\x0c"
#: libblkid probes neither on a volume smaller than 10 pages of 4 KiB.
MIN_SIZE = 10 * 4096
# swap_header_v1_2 at byte 1024, native-endian: version, last_page,
# nr_badpages (u32 each), uuid[16], volume_name[16], padding[117] (u32)
HEADER = 1024


def _big_enough(read):
    return len(read(MIN_SIZE - 1, 1)) == 1


def suspend_signature(read):
    """The hibernation signature of the volume (TuxOnIce's at 0, or one of
    SUSPEND at the end of a page), or None."""
    if not _big_enough(read):
        return None
    if read(0, len(TUXONICE)) == TUXONICE:
        return TUXONICE
    for page in PAGE_SIZES:
        tail = read(page - 10, 10)
        for magic in SUSPEND:
            if tail[:len(magic)] == magic:
                return magic
    return None


def swap_page(read):
    """The page size of a swap area as libblkid accepts one, or None."""
    if not _big_enough(read) or read(0, len(TUXONICE)) == TUXONICE:
        return None
    for page in PAGE_SIZES:
        tail = read(page - 10, 10)
        if tail == b"SWAP-SPACE":
            return page
        if tail == b"SWAPSPACE2":
            version, last_page = struct.unpack_from(
                "<II", read(HEADER, 8).ljust(8, b"\0"))
            if version not in (1, 1 << 24) or last_page == 0:
                return None            # libblkid stops at the first magic
            return page
    return None


def detect(read):
    return "swap" if swap_page(read) else None


def detect_suspend(read):
    return "swsuspend" if suspend_signature(read) else None


def _identity(read):
    """(label, uuid) as libblkid reads them: only when padding[32] and
    padding[33] are zero; no label when its first byte is NUL."""
    header = read(HEADER, 12 + 32 + 4 * 34).ljust(12 + 32 + 4 * 34, b"\0")
    if header[44 + 4 * 32:44 + 4 * 34] != bytes(8):
        return None
    raw_uuid, name = header[12:28], header[28:44]
    label = name.split(b"\0")[0].decode("utf-8", "replace")
    return label, uuid_text(raw_uuid) if any(raw_uuid) else ""


def open_volume(read, size):
    if suspend_signature(read):
        raise MapError("a hibernation image is in the swap area")
    page = swap_page(read)
    if page is None:
        return None
    # swap v0 (SWAP-SPACE) has no label or UUID
    found = ("", "") if read(page - 10, 10) == b"SWAP-SPACE" else \
        _identity(read) or ("", "")
    return UsedMap("swap", page, size, page, [(0, page)], *found)


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


SWSUSPEND = Filesystem(
    kinds=("swsuspend",), family="swsuspend", title="swsuspend",
    detect=detect_suspend, identity=_identity,
    whole=lambda read: "hibernation image in a swap area (swsuspend)")

SWAP = Filesystem(
    kinds=("swap",), family="swap", title="swap", detect=detect,
    open_map=open_volume, grow=resize, shrink=resize,
    min_size=lambda used, size: min(size, MiB), new_ids=new_ids,
    tools=("mkswap", "blkid"),
    sector_free=True, mbr_type="82",
    gpt_type="0657FD6D-A4AB-43C4-84E5-0933C84B4F4F")

# the hibernation image first: it may still carry the swap signature
FILESYSTEMS = (SWSUSPEND, SWAP)
