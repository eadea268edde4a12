"""FAT12/16/32 changed here: grown in place (grow), shrunk in place
(shrink), and a new volume ID written into the boot sector (and the FAT32
backup boot sector), through the structures declared in bpb."""

import secrets

from .. import tooling
from ..usedmap import MapError
from . import grow as fatgrow
from . import shrink as fatshrink
from .bpb import BPB16, BPB32


def grow(path, size, what):
    """Grown to *size*, or to its type's cluster limit: the size reached."""
    try:
        return fatgrow.grow(path, size)
    except MapError as exc:
        raise tooling.ResizeError(f"{what}: cannot grow: {exc}") from None


def shrink(path, size, what):
    """Shrunk to *size* (its used clusters moved below the new end): the
    size reached, at most *size*."""
    try:
        return fatshrink.shrink(path, size)
    except MapError as exc:
        raise tooling.ResizeError(f"{what}: cannot shrink: {exc}") from None


def new_ids(path, what):
    """A random BS_VolID; FAT32 (BPB_FATSz16 zero, as used.py tells the
    types) has it in its backup boot sector (BPB_BkBootSec) as well."""
    new = int.from_bytes(secrets.token_bytes(4), "little")
    with open(path, "r+b") as dev:
        head = dev.read(BPB32.size)
        fat32 = BPB16.unpack(head).BPB_FATSz16 == 0
        layout = BPB32 if fat32 else BPB16
        boot = layout.unpack(head)
        sectors = [0]
        if fat32 and boot.BPB_BkBootSec not in (0, 0xFFFF):
            sectors.append(boot.BPB_BkBootSec)
        for sector in sectors:
            dev.seek(sector * boot.BPB_BytsPerSec)
            copy = layout.unpack(dev.read(layout.size))
            dev.seek(sector * boot.BPB_BytsPerSec)
            dev.write(layout.pack(**copy._replace(BS_VolID=new)._asdict()))
