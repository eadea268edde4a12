"""The trailer that marks a self-restoring image (imgx sfx): the frozen
binary with the image stream appended, and this trailer last."""

import os
import struct
import zlib


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
