"""The .rdi image format, version 1: every fixed structure, declared once.

An image is one byte stream, written front to back in a single pass::

    file header | META record | DATA/ZERO records ... | INDX record | trailer

Each structure below is a table of (struct code, field name) read in order;
its packed size is asserted.  docs/FORMAT.md describes the same bytes in
prose.  Integers are little-endian.  Split volumes are plain byte slices of
this stream, so any reader sees one logical stream.
"""

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass

from ..errors import CorruptImageError, InputError, UnsupportedError
from ..structs import Struct

MAGIC = b"\x89RDI\r\n\x1a\n"
TRAILER_MAGIC = b"RDI-END\n"
VERSION_MAJOR = 1
VERSION_MINOR = 0

CHECKSUM_CRC32 = 1

CODEC_NONE = 0
CODEC_LZ4 = 1
CODEC_ZSTD = 2
CODEC_NAMES = {CODEC_NONE: "none", CODEC_LZ4: "lz4", CODEC_ZSTD: "zstd"}

TAG_META = b"META"
TAG_DATA = b"DATA"
TAG_ZERO = b"ZERO"
TAG_INDEX = b"INDX"
TAGS = (TAG_META, TAG_DATA, TAG_ZERO, TAG_INDEX)

KIND_DATA = 1
KIND_ZERO = 2


def _truncated(name, where, got, size):
    return CorruptImageError(f"truncated {name}: {got} of {size} bytes",
                             offset=where)


def _image_struct(name, fields, size):
    """A structure of the image format (diskimage.structs.Struct): parsed
    into a dict, packed only with every field given, a short buffer is a
    CorruptImageError at its image offset."""
    return Struct(name, fields, size=size, as_dict=True, defaults=False,
                  short_read=_truncated)


FILE_HEADER = _image_struct("file header", [
    ("8s", "magic"),
    ("H", "version_major"),
    ("H", "version_minor"),
    ("I", "header_size"),
    ("I", "flags"),
    ("I", "chunk_size"),
    ("B", "checksum_algorithm"),
    ("35s", "reserved"),
    ("I", "header_crc32"),
], 64)

RECORD_HEADER = _image_struct("record header", [
    ("4s", "tag"),
    ("B", "codec"),
    ("B", "flags"),
    ("H", "area"),
    ("Q", "disk_offset"),
    ("Q", "length"),
    ("I", "stored_size"),
    ("16s", "checksum"),
    ("I", "header_crc32"),
], 48)

INDEX_ENTRY = _image_struct("index entry", [
    ("Q", "record_offset"),
    ("Q", "disk_offset"),
    ("Q", "length"),
    ("I", "stored_size"),
    ("B", "codec"),
    ("B", "kind"),
    ("H", "area"),
    ("16s", "checksum"),
], 48)

TRAILER = _image_struct("trailer", [
    ("8s", "magic"),
    ("Q", "index_offset"),
    ("Q", "stream_length"),
    ("32s", "digest"),
    ("I", "reserved"),
    ("I", "trailer_crc32"),
], 64)


try:    # the same CRC-32, 4-5x faster (PCLMUL); the `fast` extra
    from zlib_ng.zlib_ng import crc32 as _chunk_crc32
except ImportError:
    _chunk_crc32 = zlib.crc32


def checksum(data):
    """The per-chunk checksum (algorithm 1): CRC-32 of the uncompressed
    bytes, little-endian in the first 4 of 16 bytes.  zlib-ng's crc32 when
    installed: it was the second largest cost of a capture after lz4
    (docs/BENCHMARKS.md), and gives the very same value."""
    return struct.pack("<I12x", _chunk_crc32(data))


def _sealed(structure, crc_field, **values):
    values[crc_field] = 0
    raw = structure.pack(**values)
    crc = zlib.crc32(raw[:-4])
    return raw[:-4] + struct.pack("<I", crc)


def _check_crc(structure, raw, fields, crc_field, offset):
    if zlib.crc32(raw[:structure.size - 4]) != fields[crc_field]:
        raise CorruptImageError(f"{structure.name} checksum mismatch",
                                offset=offset)


def pack_file_header(chunk_size):
    return _sealed(FILE_HEADER, "header_crc32", magic=MAGIC,
                   version_major=VERSION_MAJOR, version_minor=VERSION_MINOR,
                   header_size=FILE_HEADER.size, flags=0,
                   chunk_size=chunk_size,
                   checksum_algorithm=CHECKSUM_CRC32, reserved=b"")


def unpack_file_header(raw, name="image"):
    """Validate the first 64 bytes of a stream; return the header fields."""
    if len(raw) < len(MAGIC) or raw[:len(MAGIC)] != MAGIC:
        raise InputError(f"{name}: not an rdeploy image (no .rdi magic)")
    fields = FILE_HEADER.unpack(raw, at=0)
    if fields["version_major"] != VERSION_MAJOR:
        raise UnsupportedError(
            f"{name}: image format version {fields['version_major']}."
            f"{fields['version_minor']} is not supported by this tool "
            f"(it reads version {VERSION_MAJOR}.x); use a newer rdeploy")
    _check_crc(FILE_HEADER, raw, fields, "header_crc32", 0)
    if fields["checksum_algorithm"] != CHECKSUM_CRC32:
        raise UnsupportedError(
            f"{name}: unknown checksum algorithm {fields['checksum_algorithm']}")
    if fields["header_size"] != FILE_HEADER.size or not fields["chunk_size"]:
        raise CorruptImageError("file header has impossible sizes", offset=0)
    return fields


def pack_record(tag, *, codec=CODEC_NONE, area=0, disk_offset=0, length,
                stored_size, checksum_bytes):
    return _sealed(RECORD_HEADER, "header_crc32", tag=tag, codec=codec,
                   flags=0, area=area, disk_offset=disk_offset, length=length,
                   stored_size=stored_size, checksum=checksum_bytes)


def unpack_record(raw, offset, chunk=None):
    fields = RECORD_HEADER.unpack(raw, at=offset)
    if fields["tag"] not in TAGS:
        raise CorruptImageError(f"bad record tag {fields['tag']!r}",
                                offset=offset, chunk=chunk)
    _check_crc(RECORD_HEADER, raw, fields, "header_crc32", offset)
    if fields["tag"] == TAG_ZERO and fields["stored_size"]:
        raise CorruptImageError("hole record with a payload", offset=offset,
                                chunk=chunk)
    return fields


def pack_trailer(index_offset, stream_length, digest):
    return _sealed(TRAILER, "trailer_crc32", magic=TRAILER_MAGIC,
                   index_offset=index_offset, stream_length=stream_length,
                   digest=digest, reserved=0)


def unpack_trailer(raw, offset):
    fields = TRAILER.unpack(raw, at=offset)
    if fields["magic"] != TRAILER_MAGIC:
        raise CorruptImageError(
            "image is incomplete or damaged: no trailer at its end",
            offset=offset)
    _check_crc(TRAILER, raw, fields, "trailer_crc32", offset)
    return fields


def pack_payload_record(tag, payload):
    """A META or INDX record: header plus uncompressed payload."""
    return pack_record(tag, length=len(payload), stored_size=len(payload),
                       checksum_bytes=checksum(payload)) + payload


def encode_metadata(metadata):
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def decode_metadata(payload, offset):
    try:
        meta = json.loads(payload.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptImageError(f"metadata is not valid JSON: {exc}",
                                offset=offset) from None
    from .metacheck import check_metadata       # it imports this module
    return check_metadata(meta, offset)


@dataclass
class Entry:
    """One DATA or ZERO record as the index lists it."""

    record_offset: int
    disk_offset: int
    length: int
    stored_size: int
    codec: int
    kind: int
    area: int
    checksum: bytes

    @property
    def is_zero(self):
        return self.kind == KIND_ZERO

    def pack(self):
        return INDEX_ENTRY.pack(**self.__dict__)


def unpack_index(payload, offset):
    if len(payload) % INDEX_ENTRY.size:
        raise CorruptImageError("index length is not a whole number of "
                                "entries", offset=offset)
    return [Entry(**INDEX_ENTRY.unpack(payload, i, at=offset))
            for i in range(0, len(payload), INDEX_ENTRY.size)]


def image_digest(header_raw, meta_raw, index_raw):
    """SHA-256 over the file header, the META record and the INDX record
    (headers and payloads).  The index holds every chunk's checksum, so the
    digest answers for the whole image."""
    h = hashlib.sha256()
    for part in (header_raw, meta_raw, index_raw):
        h.update(part)
    return h.digest()
