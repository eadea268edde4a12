"""Reading images: front to back from any stream (restore, verify), or at
random through the index at the end (info, browsing).

Every byte read is checked: record headers and the trailer by their CRC,
chunk payloads by the CRC-32 of their stored bytes (format 1.1) and the
digest of their uncompressed bytes (BLAKE3-256 in 1.1, CRC-32 in 1.0), the
sequence of records against the index, and the index and metadata by the
whole-image (root) digest.  Failures raise CorruptImageError naming the
chunk and the offset.  Both readers read 1.0 and 1.1 and say which
(`version`, `layout`).
"""

import hashlib

from . import format as fmt
from .compression import decompress
from ..errors import CorruptImageError, InputError, PassphraseError
from .metacheck import check_chunk, check_metadata
from .volumecheck import (check_record_starts, read_trailer,
                          check_volume_sizes as _check_sizes,
                          locating as _locating,
                          missing_volume as _missing_volume)
from .volumes import opened


def _max_stored(chunk_size):
    """The largest payload a chunk may have: lz4's and zstd's worst case
    bound, with room to spare (and a sealed chunk's nonce and tag); raw
    chunks are never larger than the data."""
    return chunk_size + chunk_size // 255 + 1024


SEAL_ROOM = 64      # what sealing may add to an index (nonce 12, tag 16)


def decode_record(record, layout=fmt.CURRENT, sealer=None):
    """(number, fields, payload, offset) -> (number, fields, data, offset):
    the chunk's bytes checked against its digest, None for a hole.  In 1.1
    the stored bytes are checked by their CRC-32 first (before they reach
    a decoder), so a damaged payload that decodes to the same bytes is
    still reported."""
    number, fields, payload, offset = record
    if fields["tag"] == fmt.TAG_ZERO:
        return number, fields, None, offset
    if layout.strong:
        if fmt.stored_crc(payload) != fields["stored_crc32"]:
            raise CorruptImageError("chunk's stored bytes fail their check "
                                    "(CRC-32)", offset=offset, chunk=number)
        sealed = bool(fields["flags"] & fmt.RECORD_SEALED)
        if sealed != (sealer is not None):
            raise CorruptImageError(
                "sealed chunk in an image that is not encrypted" if sealed
                else "plain chunk in an encrypted image", offset=offset,
                chunk=number)
        if sealer:      # part C: the AES-GCM open of the stored bytes
            payload = sealer.open_chunk(fields, payload, offset, number)
    data = decompress(fields["codec"], payload, fields["length"],
                      offset=offset, chunk=number)
    if _digest_of(layout, sealer, data) != fields["checksum"]:
        raise CorruptImageError("chunk checksum mismatch", offset=offset,
                                chunk=number)
    return number, fields, data, offset


def _digest_of(layout, sealer, data):
    if not layout.strong:
        return fmt.checksum(data)
    if sealer:          # part C: keyed BLAKE3
        return sealer.digest(data)
    return fmt.content_digest(data)


def _check_payload(fields, payload, offset, what, layout):
    if not fmt.payload_ok(fields, payload, layout):
        raise CorruptImageError(f"{what} checksum mismatch", offset=offset)


def _open_sealer(name, header, header_raw, envelope_payload, offset,
                 passphrase):
    """The Sealer of an encrypted image (None for a plain one); part C's
    diskimage.image.seal does the work."""
    if not header["flags"] & fmt.FLAG_ENCRYPTED:
        return None
    if passphrase is None:
        raise PassphraseError(f"{name}: is encrypted; give its passphrase "
                              f"(--passphrase-file or --passphrase-env)")
    from .seal import Sealer
    return Sealer.open(envelope_payload, header_raw, passphrase, name=name)


def _metadata(sealer, payload, header_raw, offset):
    """The metadata, its shape checked (metacheck.py) before any use."""
    if sealer:          # part C: the sealed metadata inside the envelope
        return check_metadata(sealer.metadata(payload, header_raw), offset)
    return check_metadata(fmt.decode_metadata(payload, offset), offset)


class RecordStream:
    """An image read once, front to back, from `source` (VolumeInput or
    PipeInput).  The header and metadata are read on construction; then
    :meth:`records` yields the chunks and checks index and trailer last
    (then `root` and `summary` are set).

    `passphrase`: a callable giving the passphrase of an encrypted image
    (called only for one).  `expected`: the fmt.Entry list of an index
    checked beforehand (a signed image): a record that differs from its
    entry in any field is refused before it is yielded."""

    def __init__(self, source, *, passphrase=None, expected=None):
        self.source = source
        self.name = source.name
        self.position = 0
        self.expected = expected
        self.root = None
        self.sealer = None
        _check_sizes(source)
        with _locating(source):
            self._read_front(passphrase)
        self.summary = None

    @property
    def version(self):
        return self.layout.version

    def digest_of(self, data):
        """The digest this image's records carry for chunk bytes `data`."""
        return _digest_of(self.layout, self.sealer, data)

    def _read_front(self, passphrase):
        source = self.source
        raw = source.read(fmt.FILE_HEADER.size)
        self.position = len(raw)
        if not raw:
            raise InputError(f"{self.name}: is empty, not an image")
        self.header = fmt.unpack_file_header(raw, self.name)
        self.layout = fmt.layout(self.header)
        self.header_raw = raw
        self.chunk_size = self.header["chunk_size"]
        meta_offset = self.position
        fields, payload = self._read_record(None)
        if fields["tag"] != fmt.TAG_META:
            raise CorruptImageError("metadata record missing",
                                    offset=meta_offset)
        _check_payload(fields, payload, meta_offset, "metadata", self.layout)
        self.meta_raw = fmt.pack_fields(fields, self.layout) + payload
        self.sealer = _open_sealer(self.name, self.header, raw, payload,
                                   meta_offset, passphrase)
        self.metadata = _metadata(self.sealer, payload, raw, meta_offset)

    def decode(self, record):
        """decode_record, with a fault in a split image located in its
        volume."""
        with _locating(self.source, self.layout.record.size +
                       record[1]["stored_size"]):
            return decode_record(record, self.layout, self.sealer)

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
        raw = self._read_exact(self.layout.record.size, "a record header",
                               number)
        fields = fmt.unpack_record(raw, offset, chunk=number,
                                   layout=self.layout)
        if fields["tag"] == fmt.TAG_DATA and (
                fields["length"] > self.chunk_size or fields["stored_size"]
                > _max_stored(self.chunk_size)):
            raise CorruptImageError("chunk larger than the image's chunk "
                                    "size", offset=offset, chunk=number)
        if fields["tag"] == fmt.TAG_INDEX and number is not None:
            # one entry per record read (a sealed index: plus its nonce
            # and tag), checked before that many bytes are read
            entries = number * self.layout.entry.size
            if not entries <= fields["stored_size"] <= entries + SEAL_ROOM:
                raise CorruptImageError(
                    f"index of {fields['stored_size']} bytes after {number} "
                    f"records", offset=offset)
        payload = self._read_exact(fields["stored_size"], "a record payload",
                                   number)
        return fields, payload

    def records(self):
        """Yield (number, fields, payload, offset) for every DATA and ZERO
        record, payloads unchecked (see decode); after the last one, check
        the index, trailer and digest, and that nothing follows."""
        with _locating(self.source):
            yield from self._records()

    def _expect(self, number, entry, offset):
        expected = self.expected
        if number >= len(expected) or expected[number] != entry:
            raise CorruptImageError(f"chunk {number} differs from the "
                                    f"signed index", offset=offset,
                                    chunk=number)

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
            check_chunk(self.metadata, fields["area"], fields["disk_offset"],
                        fields["length"], offset, number)
            entry = fmt.Entry.from_fields(offset, fields)
            if self.expected is not None:
                self._expect(number, entry, offset)
            index_hash.update(entry.pack(self.layout))
            zero = entry.is_zero
            totals["chunks"] += 1
            totals["zero_bytes" if zero else "data_bytes"] += fields["length"]
            totals["stored_bytes"] += fields["stored_size"]
            yield number, fields, payload, offset
            number += 1
        if self.expected is not None and number != len(self.expected):
            raise CorruptImageError("the records end before the signed "
                                    "index does", offset=offset)
        _check_payload(fields, payload, offset, "index", self.layout)
        index_raw = fmt.pack_fields(fields, self.layout) + payload
        if self.sealer:     # part C: the sealed index opened
            payload = self.sealer.open_index(payload, self.header_raw,
                                             self.meta_raw)
        if hashlib.sha256(payload).digest() != index_hash.digest():
            raise CorruptImageError("index does not match the chunks read",
                                    offset=offset)
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
        self.root = digest
        self.summary = dict(totals, image_bytes=self.position,
                            digest=digest.hex(), format_version=self.version)


class ImageReader:
    """Random access to an image file (or split volumes) through its index.
    `root` is the checked root digest, `version` the format read.  `path`
    may also be a seekable source already open (an HttpInput): then the
    caller closes it."""

    def __init__(self, path, *, passphrase=None):
        self.source, self._owned = opened(path)
        self.sealer = None
        try:
            with _locating(self.source):
                self._open(passphrase)
        except BaseException:
            self.close()
            raise

    @property
    def version(self):
        return self.layout.version

    def digest_of(self, data):
        """The digest this image's records carry for chunk bytes `data`."""
        return _digest_of(self.layout, self.sealer, data)

    def _open(self, passphrase):
        src = self.source
        if not src.seekable:
            raise InputError(f"{src.name}: " + getattr(
                src, "unseekable", "needs a regular file, not a pipe"))
        _check_sizes(src)
        header_raw = src.read_at(0, fmt.FILE_HEADER.size)
        if not header_raw:
            raise InputError(f"{src.name}: is empty, not an image")
        self.header = fmt.unpack_file_header(header_raw, src.name)
        self.layout = fmt.layout(self.header)
        record_size = self.layout.record.size
        minimum = fmt.FILE_HEADER.size + 2 * record_size + fmt.TRAILER.size
        if src.size < minimum:
            raise CorruptImageError("image ends early: too short to hold an "
                                    "index and trailer", offset=src.size)
        trailer_offset = src.size - fmt.TRAILER.size
        trailer = read_trailer(src)
        meta_fields, meta_raw = self._payload_record(fmt.FILE_HEADER.size,
                                                     fmt.TAG_META, "metadata")
        index_offset = trailer["index_offset"]
        _, index_raw = self._payload_record(index_offset, fmt.TAG_INDEX,
                                            "index")
        if fmt.image_digest(header_raw, meta_raw, index_raw) != \
                trailer["digest"]:
            raise CorruptImageError("whole-image digest mismatch",
                                    offset=trailer_offset)
        self.root = trailer["digest"]
        meta_payload = meta_raw[record_size:]
        self.sealer = _open_sealer(src.name, self.header, header_raw,
                                   meta_payload, fmt.FILE_HEADER.size,
                                   passphrase)
        self.metadata = _metadata(self.sealer, meta_payload, header_raw,
                                  fmt.FILE_HEADER.size)
        index = index_raw[record_size:]
        if self.sealer:     # part C: the sealed index opened
            index = self.sealer.open_index(index, header_raw, meta_raw)
        self.entries = fmt.unpack_index(index, index_offset, self.layout)
        chunk_size = self.header["chunk_size"]
        for number, entry in enumerate(self.entries):
            check_chunk(self.metadata, entry.area, entry.disk_offset,
                        entry.length, entry.record_offset, number)
            if not entry.is_zero and (
                    entry.length > chunk_size or
                    entry.stored_size > _max_stored(chunk_size)):
                raise CorruptImageError(
                    "chunk larger than the image's chunk size",
                    offset=entry.record_offset, chunk=number)
        check_record_starts(src, self.entries, self.layout)
        self.chunk_size = self.header["chunk_size"]
        self.image_bytes = src.size

    def _payload_record(self, offset, tag, what):
        size = self.layout.record.size
        raw = self.source.read_at(offset, size)
        fields = fmt.unpack_record(raw, offset, layout=self.layout)
        if fields["tag"] != tag:
            raise CorruptImageError(f"{what} record missing", offset=offset)
        payload = self.source.read_at(offset + size, fields["stored_size"])
        if len(payload) != fields["stored_size"]:
            raise CorruptImageError(f"image ends early in the {what}",
                                    offset=offset)
        _check_payload(fields, payload, offset, what, self.layout)
        return fields, raw + payload

    def read_entry(self, number):
        """The checked bytes of chunk `number` (zeros for a hole)."""
        with _locating(self.source, self.layout.record.size +
                       self.entries[number].stored_size):
            return self._read_entry(number)

    def read_stored(self, number):
        """Chunk `number`'s record fields and payload as stored, checked
        against the index (not decoded)."""
        entry = self.entries[number]
        size = self.layout.record.size + entry.stored_size
        raw = self.source.read_at(entry.record_offset, size)
        if len(raw) != size:
            raise CorruptImageError("image ends early", chunk=number,
                                    offset=entry.record_offset)
        fields = fmt.unpack_record(raw, entry.record_offset, chunk=number,
                                   layout=self.layout)
        if fmt.Entry.from_fields(entry.record_offset, fields) != entry:
            raise CorruptImageError("chunk does not match the index",
                                    offset=entry.record_offset, chunk=number)
        return fields, raw[self.layout.record.size:]

    def _read_entry(self, number):
        entry = self.entries[number]
        if entry.is_zero:
            return bytes(entry.length)
        fields, payload = self.read_stored(number)
        return decode_record((number, fields, payload, entry.record_offset),
                             self.layout, self.sealer)[2]

    def close(self):
        if self._owned:
            self.source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
