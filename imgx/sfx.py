"""Self-restoring images (imgx sfx): the frozen multi-call binary with an
image appended, the classic ".EXE image".

Layout of the output file::

    the frozen binary (dist/deploytool) as built
    the image stream (its volumes, concatenated)
    a copy of PyInstaller's 88-byte archive cookie, its length grown to
    reach back to the archive's start
    a 32-byte trailer: "RDI-SFX\\n", the stream's offset and length, CRC-32

PyInstaller's boot loader finds its archive by searching backwards from the
end of the file for the cookie, which gives the archive's length, and so
its start.  The copy, a few bytes from the end and counting the image in
that length, is found at once; without it (an image of 4 GiB or more, the
length being 32 bits) the loader still finds the original cookie, after
reading back through the whole image at every start.  Run, the
binary sees the trailer on itself (deploytool/selfrestore.py) and restores the
image it carries through ``rdeploy restore``, with all of its checks.  Any
reader of the toolkit opens the file as the image it carries
(diskimage.image.volumes.sfx_window), so ``rdeploy info restore.run`` works too.
"""

import os
import shutil
import struct
import sys

from diskimage.errors import InputError
from diskimage.image.lock import image_lock
from diskimage.host.partial import output_path, partial_file
from diskimage.image.reader import ImageReader
from diskimage.image.volumes import pack_sfx_trailer, sfx_window

from .rewrite import refuse_over_input

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_binary():
    """This program when it is the frozen binary, else dist/deploytool of
    the source tree (built by `make freeze`)."""
    if getattr(sys, "frozen", False):
        return sys.executable
    return os.path.join(HERE, "dist", "deploytool")


COOKIE_MAGIC = b"MEI\014\013\012\013\016"
COOKIE = struct.Struct("!8sIIII64s")


def _grown_cookie(binary, appended):
    """PyInstaller's cookie (near the end of its binary; on Linux the ELF
    section table follows it) with the archive length grown to reach this
    copy of it, placed after `appended` more bytes; b"" when it cannot."""
    size = os.path.getsize(binary)
    with open(binary, "rb") as f:
        f.seek(max(0, size - (64 << 10)))
        tail = f.read()
    at = tail.rfind(COOKIE_MAGIC)
    if at < 0 or len(tail) - at < COOKIE.size:
        return b""
    magic, length, toc_offset, toc_length, pyvers, pylib = COOKIE.unpack(
        tail[at:at + COOKIE.size])
    start = size - len(tail) + at + COOKIE.size - length
    grown = size + appended + COOKIE.size - start
    if start < 0 or grown >= 1 << 32:
        return b""
    return COOKIE.pack(magic, grown, toc_offset, toc_length, pyvers, pylib)


def make_sfx(image_path, out, binary=None, force=False):
    """Write the self-restoring binary `out` for `image_path`: through
    ``OUT.partial`` (diskimage.host.partial: exclusive, locked, never through a
    symlink), over an existing `out` only with `force`, while the image is
    held with the shared image lock (no edit replaces it meanwhile).
    Returns sizes and the warnings to show."""
    binary = binary or default_binary()
    if not os.path.isfile(binary):
        raise InputError(f"{binary}: no frozen binary to build on (run "
                         f"`make freeze`, or give --binary)")
    refuse_over_input(image_path, out)      # exit 5, --force or not
    out = output_path(out, force)           # a link: its file, or refused
    if not force and os.path.lexists(out):
        raise InputError(f"{out}: exists; not replaced without --force")
    warnings = []
    with image_lock(image_path, shared=True), \
            ImageReader(image_path) as reader:      # whole and checked
        source = reader.source
        stream_length = source.size
        with open(binary, "rb") as b:
            if sfx_window(b.fileno()):
                raise InputError(f"{binary}: carries an image already; "
                                 f"give the plain frozen binary")
        cookie = _grown_cookie(binary, stream_length)
        with partial_file(out, replace=force, warnings=warnings,
                          mode=0o755) as f, open(binary, "rb") as b:
            shutil.copyfileobj(b, f, 1 << 20)
            offset = f.tell()
            position = 0
            while position < stream_length:
                block = source.read_at(position, min(
                    4 << 20, stream_length - position))
                if not block:
                    raise InputError(f"{image_path}: image ends early")
                f.write(block)
                position += len(block)
            f.write(cookie)
            f.write(pack_sfx_trailer(offset, stream_length))
    return {"binary_bytes": offset, "image_bytes": stream_length,
            "warnings": warnings}
