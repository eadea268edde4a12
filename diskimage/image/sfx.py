"""Self-restoring images (imgx sfx): the frozen multi-call binary (the
toolkit) with an image appended, the classic ".EXE image", and the trailer
that marks one.

Layout of the output file::

    the frozen toolkit binary (dist/deploytool) as built
    the image stream (its volumes, concatenated)
    a copy of PyInstaller's 88-byte archive cookie, its length grown to
    reach back to the archive's start
    a 32-byte trailer: "RDI-SFX\\n", the stream's offset and length, CRC-32

PyInstaller's boot loader finds its archive by searching backwards from the
end of the file for the cookie, which gives the archive's length, and so
its start.  The copy, a few bytes from the end and counting the image in
that length, is found at once; without it (an image of 4 GiB or more, the
length being 32 bits) the loader still finds the original cookie, after
reading back through the whole image at every start.  Run, the binary
sees the trailer on itself (deploytool/selfrestore.py) and restores the
image it carries through ``rdeploy restore``, with all of its checks.  Any
reader of the toolkit opens the file as the image it carries (sfx_window,
through diskimage.image.volumes), so ``rdeploy info restore.run`` works too.
"""

import os
import shutil
import struct
import zlib

from diskimage.errors import InputError


# A self-restoring image (imgx sfx) is the frozen binary with the image
# stream appended and this trailer last: magic, the stream's offset and
# length in the file, reserved, CRC-32 of the bytes before it.  Between the
# stream and the trailer there may be bytes for the binary's own loader.
SFX_MAGIC = b"RDI-SFX\n"
SFX_TRAILER = struct.Struct("<8sQQII")


def pack_sfx_trailer(offset, length):
    raw = SFX_TRAILER.pack(SFX_MAGIC, offset, length, 0, 0)[:-4]
    return raw + struct.pack("<I", zlib.crc32(raw))


def sfx_window(fd):
    """(offset, length) of the image inside a self-restoring binary open
    as `fd`, or None when the file has no valid SFX trailer."""
    size = os.fstat(fd).st_size
    if size < SFX_TRAILER.size:
        return None
    raw = os.pread(fd, SFX_TRAILER.size, size - SFX_TRAILER.size)
    magic, offset, length, _, crc = SFX_TRAILER.unpack(raw)
    if magic != SFX_MAGIC or zlib.crc32(raw[:-4]) != crc or \
            offset + length > size - SFX_TRAILER.size:
        return None
    return offset, length


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


def make_sfx(image_path, out, toolkit, force=False):
    """Write the self-restoring binary `out` for `image_path` on the frozen
    toolkit binary `toolkit`: through ``OUT.partial`` (diskimage.host.partial:
    exclusive, locked, never through a symlink), over an existing `out`
    only with `force`, while the image is held with the shared image lock
    (no edit replaces it meanwhile).  Returns sizes and the warnings to
    show."""
    # Here, not at the top: volumes.py imports the trailer from this module,
    # and these import volumes.py.
    from diskimage.host.partial import output_path, partial_file
    from diskimage.image.lock import image_lock
    from diskimage.image.reader import ImageReader
    from diskimage.image.rewrite import refuse_over_input

    if not os.path.isfile(toolkit):
        raise InputError(f"{toolkit}: no frozen toolkit binary to build on "
                         f"(run `make freeze`, or give --toolkit)")
    refuse_over_input(image_path, out)      # exit 5, --force or not
    out = output_path(out, force)           # a link: its file, or refused
    if not force and os.path.lexists(out):
        raise InputError(f"{out}: exists; not replaced without --force")
    warnings = []
    with image_lock(image_path, shared=True), \
            ImageReader(image_path) as reader:      # whole and checked
        source = reader.source
        stream_length = source.size
        with open(toolkit, "rb") as b:
            if sfx_window(b.fileno()):
                raise InputError(f"{toolkit}: carries an image already; "
                                 f"give the plain frozen toolkit binary")
        cookie = _grown_cookie(toolkit, stream_length)
        with partial_file(out, replace=force, warnings=warnings,
                          mode=0o755) as f, open(toolkit, "rb") as b:
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
