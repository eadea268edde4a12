"""Reading images: front to back from any stream (restore, verify), or at
random through the index at the end (info, browsing).

Every byte read is checked: record headers and the trailer by their CRC,
chunk payloads by the checksum of their uncompressed bytes, the sequence of
records against the index, and the index and metadata by the whole-image
digest.  Failures raise CorruptImageError naming the chunk and the offset.
"""

import contextlib
import hashlib

from . import format as fmt
from .compression import decompress
from ..errors import CorruptImageError, InputError
from .metacheck import check_chunk
from .volumecheck import check_record_starts, check_sizes, located
from .volumes import VolumeInput


def _max_stored(chunk_size):
    """The largest payload a chunk may have: lz4's and zstd's worst case
    bound, with room to spare; raw chunks are never larger than the data."""
    return chunk_size + chunk_size // 255 + 1024


def decode_record(record):
    """(number, fields, payload, offset) -> (number, fields, data, offset):
    the chunk's bytes checked against its checksum, None for a hole."""
    number, fields, payload, offset = record
    if fields["tag"] == fmt.TAG_ZERO:
        return number, fields, None, offset
    data = decompress(fields["codec"], payload, fields["length"],
                      offset=offset, chunk=number)
    if fmt.checksum(data) != fields["checksum"]:
        raise CorruptImageError("chunk checksum mismatch", offset=offset,
                                chunk=number)
    return number, fields, data, offset


def _check_payload(fields, payload, offset, what):
    if fmt.checksum(payload) != fields["checksum"]:
        raise CorruptImageError(f"{what} checksum mismatch", offset=offset)


@contextlib.contextmanager
def _locating(source, size=None):
    """Faults found while reading a split image name the volume file and
    the byte in it, besides the stream offset (`size`: of the record)."""
    try:
        yield
    except CorruptImageError as exc:
        new = located(source, exc, size)
        if new is exc:
            raise
        raise new from None


def _check_sizes(source):
    """A split image's volumes checked by their sizes before any read."""
    if getattr(source, "seekable", False) and len(source.paths) > 1:
        check_sizes(source.paths, source.sizes)


def _missing_volume(source):
    """Raise InputError naming the missing volume of a split image whose
    stream ended early, when that is why."""
    why = getattr(source, "missing_volume", lambda: None)()
    if why:
        raise InputError(why)


class RecordStream:
    """An image read once, front to back, from `source` (VolumeInput or
    PipeInput).  The header and metadata are read on construction; then
    :meth:`records` yields the chunks and checks index and trailer last."""

    def __init__(self, source):
        self.source = source
        self.name = source.name
        self.position = 0
        _check_sizes(source)
        with _locating(source):
            self._read_front()
        self.summary = None

    def _read_front(self):
        source = self.source
        raw = source.read(fmt.FILE_HEADER.size)
        self.position = len(raw)
        if not raw:
            raise InputError(f"{self.name}: is empty, not an image")
        self.header = fmt.unpack_file_header(raw, self.name)
        self.header_raw = raw
        self.chunk_size = self.header["chunk_size"]
        meta_offset = self.position
        fields, payload = self._read_record(None)
        if fields["tag"] != fmt.TAG_META:
            raise CorruptImageError("metadata record missing",
                                    offset=meta_offset)
        _check_payload(fields, payload, meta_offset, "metadata")
        self.metadata = fmt.decode_metadata(payload, meta_offset)
        self.meta_raw = fmt.RECORD_HEADER.pack(**fields) + payload

    def decode(self, record):
        """decode_record, with a fault in a split image located in its
        volume."""
        with _locating(self.source, fmt.RECORD_HEADER.size +
                       record[1]["stored_size"]):
            return decode_record(record)

    def _read_exact(self, size, what, chunk=None):
        data = self.source.read(size)
        if len(data) < size:
            _missing_volume(self.source)
            raise CorruptImageError(
                f"image ends early: truncated in {what} "
                f"(got {len(data)} of {size} bytes)",
                offset=self.position + len(data), chunk=chunk)
        self.position += size
        return data

    def _read_record(self, number):
        offset = self.position
        raw = self._read_exact(fmt.RECORD_HEADER.size, "a record header",
                               number)
        fields = fmt.unpack_record(raw, offset, chunk=number)
        if fields["tag"] == fmt.TAG_DATA and (
                fields["length"] > self.chunk_size or fields["stored_size"]
                > _max_stored(self.chunk_size)):
            raise CorruptImageError("chunk larger than the image's chunk "
                                    "size", offset=offset, chunk=number)
        payload = self._read_exact(fields["stored_size"], "a record payload",
                                   number)
        return fields, payload

    def records(self):
        """Yield (number, fields, payload, offset) for every DATA and ZERO
        record, payloads unchecked (see decode); after the last one, check
        the index, trailer and digest, and that nothing follows."""
        with _locating(self.source):
            yield from self._records()

    def _records(self):
        index_hash = hashlib.sha256()
        number = 0
        totals = {"chunks": 0, "data_bytes": 0, "zero_bytes": 0,
                  "stored_bytes": 0}
        while True:
            offset = self.position
            fields, payload = self._read_record(number)
            if fields["tag"] == fmt.TAG_INDEX:
                break
            if fields["tag"] == fmt.TAG_META:
                raise CorruptImageError("unexpected second metadata record",
                                        offset=offset, chunk=number)
            zero = fields["tag"] == fmt.TAG_ZERO
            check_chunk(self.metadata, fields["area"], fields["disk_offset"],
                        fields["length"], offset, number)
            index_hash.update(fmt.Entry(
                offset, fields["disk_offset"], fields["length"],
                fields["stored_size"], fields["codec"],
                fmt.KIND_ZERO if zero else fmt.KIND_DATA, fields["area"],
                fields["checksum"]).pack())
            totals["chunks"] += 1
            totals["zero_bytes" if zero else "data_bytes"] += fields["length"]
            totals["stored_bytes"] += fields["stored_size"]
            yield number, fields, payload, offset
            number += 1
        _check_payload(fields, payload, offset, "index")
        if hashlib.sha256(payload).digest() != index_hash.digest():
            raise CorruptImageError("index does not match the chunks read",
                                    offset=offset)
        index_raw = fmt.RECORD_HEADER.pack(**fields) + payload
        trailer_offset = self.position
        trailer = fmt.unpack_trailer(
            self._read_exact(fmt.TRAILER.size, "the trailer"), trailer_offset)
        if trailer["index_offset"] != offset or \
                trailer["stream_length"] != self.position:
            raise CorruptImageError("trailer does not match the stream",
                                    offset=trailer_offset)
        digest = fmt.image_digest(self.header_raw, self.meta_raw, index_raw)
        if digest != trailer["digest"]:
            raise CorruptImageError("whole-image digest mismatch",
                                    offset=trailer_offset)
        if self.source.read(1):
            raise CorruptImageError("unexpected data after the trailer",
                                    offset=self.position)
        self.summary = dict(totals, image_bytes=self.position,
                            digest=digest.hex())


class ImageReader:
    """Random access to an image file (or split volumes) through its index."""

    def __init__(self, path):
        self.source = VolumeInput(path)
        try:
            with _locating(self.source):
                self._open()
        except BaseException:
            self.source.close()
            raise

    def _open(self):
        src = self.source
        if not src.seekable:
            raise InputError(f"{src.name}: needs a regular file, not a pipe")
        _check_sizes(src)
        header_raw = src.read_at(0, fmt.FILE_HEADER.size)
        if not header_raw:
            raise InputError(f"{src.name}: is empty, not an image")
        self.header = fmt.unpack_file_header(header_raw, src.name)
        minimum = fmt.FILE_HEADER.size + 2 * fmt.RECORD_HEADER.size + \
            fmt.TRAILER.size
        if src.size < minimum:
            raise CorruptImageError("image ends early: too short to hold an "
                                    "index and trailer", offset=src.size)
        trailer_offset = src.size - fmt.TRAILER.size
        try:
            trailer = fmt.unpack_trailer(
                src.read_at(trailer_offset, fmt.TRAILER.size), trailer_offset)
        except CorruptImageError:
            _missing_volume(src)
            raise
        if trailer["stream_length"] != src.size:
            raise CorruptImageError(
                f"image is {src.size} bytes but its trailer says "
                f"{trailer['stream_length']}: a volume is missing or damaged",
                offset=trailer_offset)
        meta_fields, meta_raw = self._payload_record(fmt.FILE_HEADER.size,
                                                     fmt.TAG_META, "metadata")
        self.metadata = fmt.decode_metadata(
            meta_raw[fmt.RECORD_HEADER.size:], fmt.FILE_HEADER.size)
        index_offset = trailer["index_offset"]
        _, index_raw = self._payload_record(index_offset, fmt.TAG_INDEX,
                                            "index")
        if fmt.image_digest(header_raw, meta_raw, index_raw) != \
                trailer["digest"]:
            raise CorruptImageError("whole-image digest mismatch",
                                    offset=trailer_offset)
        self.entries = fmt.unpack_index(index_raw[fmt.RECORD_HEADER.size:],
                                        index_offset)
        for number, entry in enumerate(self.entries):
            check_chunk(self.metadata, entry.area, entry.disk_offset,
                        entry.length, entry.record_offset, number)
        check_record_starts(src, self.entries)
        self.chunk_size = self.header["chunk_size"]
        self.image_bytes = src.size

    def _payload_record(self, offset, tag, what):
        raw = self.source.read_at(offset, fmt.RECORD_HEADER.size)
        fields = fmt.unpack_record(raw, offset)
        if fields["tag"] != tag:
            raise CorruptImageError(f"{what} record missing", offset=offset)
        payload = self.source.read_at(offset + fmt.RECORD_HEADER.size,
                                      fields["stored_size"])
        if len(payload) != fields["stored_size"]:
            raise CorruptImageError(f"image ends early in the {what}",
                                    offset=offset)
        _check_payload(fields, payload, offset, what)
        return fields, raw + payload

    def read_entry(self, number):
        """The checked bytes of chunk `number` (zeros for a hole)."""
        with _locating(self.source, fmt.RECORD_HEADER.size +
                       self.entries[number].stored_size):
            return self._read_entry(number)

    def _read_entry(self, number):
        entry = self.entries[number]
        if entry.is_zero:
            return bytes(entry.length)
        size = fmt.RECORD_HEADER.size + entry.stored_size
        raw = self.source.read_at(entry.record_offset, size)
        if len(raw) != size:
            raise CorruptImageError("image ends early", chunk=number,
                                    offset=entry.record_offset)
        fields = fmt.unpack_record(raw, entry.record_offset, chunk=number)
        if (fields["disk_offset"], fields["length"], fields["checksum"]) != \
                (entry.disk_offset, entry.length, entry.checksum):
            raise CorruptImageError("chunk does not match the index",
                                    offset=entry.record_offset, chunk=number)
        return decode_record((number, fields, raw[fmt.RECORD_HEADER.size:],
                              entry.record_offset))[2]

    def close(self):
        self.source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
