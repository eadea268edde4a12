"""The .rdi image format, versions 1.0 and 1.1: every fixed structure,
declared once.

An image is one byte stream, written front to back in a single pass::

    file header | META record | DATA/ZERO records ... | INDX record | trailer

Each structure below is a table of (struct code, field name) read in order;
its packed size is asserted.  docs/FORMAT.md describes the same bytes in
prose.  Integers are little-endian.  Split volumes are plain byte slices of
this stream, so any reader sees one logical stream.

Writers write 1.1; readers read 1.0 and 1.1.  The two differ only in the
record header and the index entry (a :class:`Layout` each): 1.0 carries a
CRC-32 of the uncompressed bytes, 1.1 a BLAKE3-256 content digest of them
and a CRC-32 of the stored bytes, so the trailer's digest of a 1.1 image is
a root digest that names its content exactly (docs/FORMAT.md).
"""

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass

import blake3

from ..errors import CorruptImageError, InputError, UnsupportedError
from ..structs import Struct

MAGIC = b"\x89RDI\r\n\x1a\n"
TRAILER_MAGIC = b"RDI-END\n"
VERSION_MAJOR = 1
VERSION_MINOR = 1          # what the writer writes; 0 and 1 are read

CHECKSUM_CRC32 = 1         # 1.0: CRC-32 of the uncompressed bytes
CHECKSUM_BLAKE3 = 2        # 1.1: BLAKE3-256 of them, CRC-32 of the stored

FLAG_ENCRYPTED = 1         # file header flags (1.1)
RECORD_SEALED = 1          # record header flags (1.1): payload AES-GCM sealed

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

#: The largest chunk a reader accepts (capture writes 4 MiB ones): every
#: chunk's length is checked against the header's chunk size, and a chunk
#: is decompressed into a buffer of its length, so a hostile header must
#: not name gigabytes (lz4 raised OverflowError past 2 GiB, and below that
#: the buffer was allocated before the payload was found wanting).
MAX_CHUNK_SIZE = 64 << 20


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

RECORD_HEADER_10 = _image_struct("record header", [
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

INDEX_ENTRY_10 = _image_struct("index entry", [
    ("Q", "record_offset"),
    ("Q", "disk_offset"),
    ("Q", "length"),
    ("I", "stored_size"),
    ("B", "codec"),
    ("B", "kind"),
    ("H", "area"),
    ("16s", "checksum"),
], 48)

RECORD_HEADER_11 = _image_struct("record header", [
    ("4s", "tag"),
    ("B", "codec"),
    ("B", "flags"),
    ("H", "area"),
    ("Q", "disk_offset"),
    ("Q", "length"),
    ("I", "stored_size"),
    ("32s", "digest"),
    ("I", "stored_crc32"),
    ("I", "header_crc32"),
], 68)

INDEX_ENTRY_11 = _image_struct("index entry", [
    ("Q", "record_offset"),
    ("Q", "disk_offset"),
    ("Q", "length"),
    ("I", "stored_size"),
    ("B", "codec"),
    ("B", "kind"),
    ("H", "area"),
    ("32s", "digest"),
    ("I", "stored_crc32"),
], 68)

# What this tool writes.
RECORD_HEADER = RECORD_HEADER_11
INDEX_ENTRY = INDEX_ENTRY_11

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


@dataclass(frozen=True)
class Layout:
    """What differs between the format versions a reader reads: the record
    header and index entry structures.  `strong`: the chunk digests are
    BLAKE3-256 (1.1), not 1.0's CRC-32, so the root digest can be signed."""

    version: str
    minor: int
    checksum_algorithm: int
    record: Struct
    entry: Struct
    strong: bool


LAYOUT_10 = Layout("1.0", 0, CHECKSUM_CRC32, RECORD_HEADER_10,
                   INDEX_ENTRY_10, False)
LAYOUT_11 = Layout("1.1", 1, CHECKSUM_BLAKE3, RECORD_HEADER_11,
                   INDEX_ENTRY_11, True)
CURRENT = LAYOUT_11
_LAYOUTS = {0: LAYOUT_10, 1: LAYOUT_11}


def layout(header_fields):
    """The Layout of an image, from its (checked) file header fields."""
    return _LAYOUTS[header_fields["version_minor"]]


def checksum(data):
    """The per-chunk checksum of format 1.0 (algorithm 1): CRC-32 of the
    uncompressed bytes, little-endian in the first 4 of 16 bytes.  zlib-ng's
    crc32 when installed: it gives the very same value, 4-5x faster."""
    return struct.pack("<I12x", _chunk_crc32(data))


def content_digest(data, key=None):
    """The per-chunk digest of format 1.1: BLAKE3-256 of the uncompressed
    bytes, keyed (32-byte `key`) in an encrypted image.  One thread: the
    capture's workers already run on every core."""
    if key is None:
        return blake3.blake3(data, max_threads=1).digest()
    return blake3.blake3(data, key=key, max_threads=1).digest()


def stored_crc(stored):
    """The check of a 1.1 payload as stored (compressed, or sealed)."""
    return _chunk_crc32(stored)


def _sealed(structure, crc_field, **values):
    values[crc_field] = 0
    raw = structure.pack(**values)
    crc = zlib.crc32(raw[:-4])
    return raw[:-4] + struct.pack("<I", crc)


def _check_crc(structure, raw, fields, crc_field, offset):
    if zlib.crc32(raw[:structure.size - 4]) != fields[crc_field]:
        raise CorruptImageError(f"{structure.name} checksum mismatch",
                                offset=offset)


def pack_file_header(chunk_size, flags=0):
    return _sealed(FILE_HEADER, "header_crc32", magic=MAGIC,
                   version_major=VERSION_MAJOR, version_minor=VERSION_MINOR,
                   header_size=FILE_HEADER.size, flags=flags,
                   chunk_size=chunk_size,
                   checksum_algorithm=CHECKSUM_BLAKE3, reserved=b"")


def unpack_file_header(raw, name="image"):
    """Validate the first 64 bytes of a stream; return the header fields.
    A newer major version is refused before anything else is believed; a
    newer minor one once the header's CRC shows it was written so."""
    if len(raw) < len(MAGIC) or raw[:len(MAGIC)] != MAGIC:
        raise InputError(f"{name}: not an rdeploy image (no .rdi magic)")
    fields = FILE_HEADER.unpack(raw, at=0)
    if fields["version_major"] != VERSION_MAJOR:
        raise UnsupportedError(
            f"{name}: image format version {fields['version_major']}."
            f"{fields['version_minor']} is not supported by this tool "
            f"(it reads version {VERSION_MAJOR}.x); use a newer rdeploy")
    _check_crc(FILE_HEADER, raw, fields, "header_crc32", 0)
    minor = fields["version_minor"]
    if minor not in _LAYOUTS:
        raise UnsupportedError(
            f"{name}: format {VERSION_MAJOR}.{minor} is newer than this tool "
            f"reads (1.0 and 1.1); use a newer rdeploy")
    if fields["checksum_algorithm"] != _LAYOUTS[minor].checksum_algorithm:
        raise UnsupportedError(
            f"{name}: unknown checksum algorithm "
            f"{fields['checksum_algorithm']} for format 1.{minor}")
    allowed = FLAG_ENCRYPTED if minor >= 1 else 0
    if fields["flags"] & ~allowed:
        raise CorruptImageError(f"file header has unknown flags "
                                f"0x{fields['flags']:x}", offset=0)
    if fields["header_size"] != FILE_HEADER.size or \
            not 0 < fields["chunk_size"] <= MAX_CHUNK_SIZE:
        raise CorruptImageError("file header has impossible sizes", offset=0)
    return fields


def pack_record(tag, *, codec=CODEC_NONE, area=0, disk_offset=0, length,
                stored_size, checksum_bytes, stored_crc32=0, flags=0):
    """A 1.1 record header; `checksum_bytes` is the 32-byte digest."""
    return _sealed(RECORD_HEADER_11, "header_crc32", tag=tag, codec=codec,
                   flags=flags, area=area, disk_offset=disk_offset,
                   length=length, stored_size=stored_size,
                   digest=checksum_bytes, stored_crc32=stored_crc32)


def unpack_record(raw, offset, chunk=None, layout=CURRENT):
    """A record header's fields, checked.  Both versions give the chunk
    digest as "checksum" (and "digest"); "stored_crc32" is None in 1.0."""
    structure = layout.record
    fields = structure.unpack(raw, at=offset)
    if fields["tag"] not in TAGS:
        raise CorruptImageError(f"bad record tag {fields['tag']!r}",
                                offset=offset, chunk=chunk)
    _check_crc(structure, raw, fields, "header_crc32", offset)
    if layout.strong:
        fields["checksum"] = fields["digest"]
    else:
        fields["digest"], fields["stored_crc32"] = fields["checksum"], None
    allowed = RECORD_SEALED if layout.strong and \
        fields["tag"] == TAG_DATA else 0
    if fields["flags"] & ~allowed:
        raise CorruptImageError(f"record has unknown flags "
                                f"0x{fields['flags']:x}", offset=offset,
                                chunk=chunk)
    if fields["tag"] == TAG_ZERO and (
            fields["stored_size"] or
            (layout.strong and (fields["stored_crc32"] or
                                fields["digest"] != bytes(32)))):
        raise CorruptImageError("hole record with a payload", offset=offset,
                                chunk=chunk)
    return fields


def pack_fields(fields, layout):
    """The record header bytes of parsed `fields` (as read)."""
    return layout.record.pack(**fields)


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
    """A 1.1 META or INDX record: header plus payload as stored; its digest
    is unkeyed BLAKE3 of the payload, its stored check CRC-32 of it."""
    return pack_record(tag, length=len(payload), stored_size=len(payload),
                       checksum_bytes=content_digest(payload),
                       stored_crc32=stored_crc(payload)) + payload


def payload_ok(fields, payload, layout):
    """Whether a META or INDX payload matches its record header."""
    if not layout.strong:
        return checksum(payload) == fields["checksum"]
    return stored_crc(payload) == fields["stored_crc32"] and \
        content_digest(payload) == fields["digest"]


def encode_metadata(metadata):
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def decode_metadata(payload, offset):
    try:
        return json.loads(payload.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptImageError(f"metadata is not valid JSON: {exc}",
                                offset=offset) from None


@dataclass
class Entry:
    """One DATA or ZERO record as the index lists it.  `checksum` is the
    chunk's digest (16 bytes of CRC-32 in 1.0, 32 of BLAKE3 in 1.1);
    `stored_crc32` the CRC-32 of its stored bytes (0 in 1.0)."""

    record_offset: int
    disk_offset: int
    length: int
    stored_size: int
    codec: int
    kind: int
    area: int
    checksum: bytes
    stored_crc32: int = 0

    @property
    def is_zero(self):
        return self.kind == KIND_ZERO

    @property
    def digest(self):
        return self.checksum

    def pack(self, layout):
        values = dict(self.__dict__, digest=self.checksum)
        return layout.entry.pack(**values)

    @classmethod
    def from_fields(cls, offset, fields):
        """The entry that the record at `offset` with header `fields` must
        have in the index."""
        zero = fields["tag"] == TAG_ZERO
        return cls(offset, fields["disk_offset"], fields["length"],
                   fields["stored_size"], fields["codec"],
                   KIND_ZERO if zero else KIND_DATA, fields["area"],
                   fields["checksum"], fields["stored_crc32"] or 0)


def unpack_index(payload, offset, layout=CURRENT):
    structure = layout.entry
    if len(payload) % structure.size:
        raise CorruptImageError("index length is not a whole number of "
                                "entries", offset=offset)
    entries = []
    for i in range(0, len(payload), structure.size):
        values = structure.unpack(payload, i, at=offset)
        if layout.strong:
            values["checksum"] = values.pop("digest")
        entries.append(Entry(**values))
    return entries


def image_digest(header_raw, meta_raw, index_raw):
    """SHA-256 over the file header, the META record and the INDX record
    (headers and payloads).  The index holds every chunk's digest, so this
    answers for the whole image: in 1.1 it is the root digest, a hash list
    over the BLAKE3 digests of every chunk, which is what a signature
    signs; in 1.0 it rests on CRC-32 chunk checks."""
    h = hashlib.sha256()
    for part in (header_raw, meta_raw, index_raw):
        h.update(part)
    return h.digest()
