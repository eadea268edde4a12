"""Chunk codecs: lz4 (default), zstd (optional extra), none.

Every function here releases the GIL inside the C library for large buffers,
so a thread pool compresses on all cores.  A chunk whose compressed form is
not smaller than the original is stored raw (codec none).

A large chunk is first tried on a sample (SAMPLE_PIECES pieces of
SAMPLE_PIECE bytes spread evenly over it): when the sample does not shrink
and the chunk holds no run of SHORT_ZEROS zero bytes, the chunk is stored
raw without compressing it whole.  On random data (disk (c) of the
benchmark) the whole trial cost more than the copy of the bytes: lz4 and
zstd pass over all of it, and python-lz4 copies its output into a new
bytes object holding the GIL.  The decision depends on the chunk's bytes
alone, so an image does not depend on the thread count.
"""

import threading

import lz4.block

from ..errors import CorruptImageError, UnsupportedError, UsageError
from .format import (CODEC_LZ4, CODEC_NAMES, CODEC_NONE, CODEC_ZSTD,
                     content_digest)

try:
    import zstandard
except ImportError:  # the optional extra is not installed
    zstandard = None

CODECS = {name: codec for codec, name in CODEC_NAMES.items()}
LEVELS = {"lz4": (1, 12), "zstd": (1, 19), "none": (0, 0)}
DEFAULT_LEVEL = {"lz4": 1, "zstd": 3, "none": 0}
SAMPLE_PIECE = 1024
SAMPLE_PIECES = 64
SAMPLED = 1 << 20       # chunks of at least this many bytes are sampled
# A run of zeros this long may make a barely compressible chunk worth
# cutting (image.holes.cheaper_pieces): such a chunk is tried whole.
SHORT_ZEROS = bytes(1024)


class Compressor:
    """Turns a chunk into (codec id, stored bytes, digest): the digest is
    format 1.1's BLAKE3-256 of the chunk, or `digest(data)` when given (an
    encrypted image's keyed one; settable as the attribute `digest`).

    Safe to share between threads: zstd contexts are kept per thread.
    """

    def __init__(self, name="lz4", level=None, digest=None):
        if name not in CODECS:
            raise UsageError(f"unknown compression {name!r}; "
                             f"choose lz4, zstd or none")
        if name == "zstd" and zstandard is None:
            raise UnsupportedError("zstd compression needs the 'zstandard' "
                                   "package (pip install zstandard)")
        low, high = LEVELS[name]
        level = DEFAULT_LEVEL[name] if level is None else level
        if not low <= level <= high:
            raise UsageError(f"--level for {name} must be {low} to {high}")
        self.name = name
        self.codec = CODECS[name]
        self.level = level
        self._zstd = {}
        self.digest = digest or content_digest

    def _compress(self, data):
        if self.codec == CODEC_LZ4:
            if self.level >= 3:
                return lz4.block.compress(data, mode="high_compression",
                                          compression=self.level,
                                          store_size=False)
            return lz4.block.compress(data, store_size=False)
        ident = threading.get_ident()
        ctx = self._zstd.get(ident)
        if ctx is None:
            ctx = self._zstd[ident] = zstandard.ZstdCompressor(
                level=self.level, write_content_size=False)
        return ctx.compress(data)

    def __call__(self, data):
        digest = self.digest(data)
        if self.codec != CODEC_NONE and not self._incompressible(data):
            packed = self._compress(data)
            if len(packed) < len(data):
                return self.codec, packed, digest
        return CODEC_NONE, bytes(data), digest

    def _incompressible(self, data):
        """Whether a sample of a large chunk says it would not shrink (and
        it has no zero run that cheaper_pieces could cut out)."""
        size = len(data)
        if size < SAMPLED:
            return False
        view = memoryview(data)
        step = size // SAMPLE_PIECES
        sample = b"".join(view[i:i + SAMPLE_PIECE]
                          for i in range(0, step * SAMPLE_PIECES, step))
        if len(self._compress(sample)) < len(sample):
            return False
        find = getattr(data, "find", None) or bytes(view).find
        return find(SHORT_ZEROS) < 0


def decompress(codec, stored, length, *, offset=None, chunk=None):
    """Return the chunk's bytes; a codec failure is image corruption."""
    try:
        if codec == CODEC_NONE:
            data = stored
        elif codec == CODEC_LZ4:
            data = lz4.block.decompress(stored, uncompressed_size=length)
        elif codec == CODEC_ZSTD:
            if zstandard is None:
                raise UnsupportedError("this image uses zstd; install the "
                                       "'zstandard' package to read it")
            data = zstandard.ZstdDecompressor().decompress(
                stored, max_output_size=length)
        else:
            raise CorruptImageError(f"unknown codec id {codec}",
                                    offset=offset, chunk=chunk)
    except (lz4.block.LZ4BlockError, ValueError) as exc:
        raise CorruptImageError(f"chunk does not decompress ({exc})",
                                offset=offset, chunk=chunk) from None
    except Exception as exc:
        if zstandard is not None and isinstance(exc, zstandard.ZstdError):
            raise CorruptImageError(f"chunk does not decompress ({exc})",
                                    offset=offset, chunk=chunk) from None
        raise
    if len(data) != length:
        raise CorruptImageError(
            f"chunk decompressed to {len(data)} bytes, expected {length}",
            offset=offset, chunk=chunk)
    return data
