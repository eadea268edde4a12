"""Writing an image stream front to back: header, metadata, chunks, index,
trailer.  The output (a file, split volumes or a pipe) is only committed by
:meth:`ImageWriter.finish`; :meth:`ImageWriter.abort` leaves nothing that
looks like an image.  It writes format 1.1: every DATA record carries the
BLAKE3-256 digest of its bytes and the CRC-32 of its stored bytes, and the
trailer the root digest over header, metadata and index."""

from . import format as fmt


class ImageWriter:
    """Appends records to `output` (see :mod:`diskimage.image.volumes`)."""

    def __init__(self, output, metadata, chunk_size, sealer=None):
        """`sealer` (part C's diskimage.image.seal.Sealer): an encrypted
        image; the chunks given to add_data are then sealed already."""
        self.output = output
        self.sealer = sealer
        self.header_raw = fmt.pack_file_header(
            chunk_size, fmt.FLAG_ENCRYPTED if sealer else 0)
        meta = fmt.encode_metadata(metadata)
        if sealer:      # part C: the envelope around the sealed metadata
            meta = sealer.envelope(meta, self.header_raw)
        self.meta_raw = fmt.pack_payload_record(fmt.TAG_META, meta)
        self.index = bytearray()
        self.chunks = 0
        self.data_bytes = 0      # bytes of disk held in DATA records
        self.zero_bytes = 0      # bytes of disk held as holes
        self.stored_bytes = 0    # payload bytes of DATA records
        try:
            output.write(self.header_raw)
            output.write(self.meta_raw)
        except BaseException:
            # the caller has no writer to abort yet: nothing may be left
            output.abort()
            raise

    def _append(self, entry, *parts):
        entry.record_offset = self.output.position
        for part in parts:
            self.output.write(part)
        self.index += entry.pack(fmt.CURRENT)
        self.chunks += 1

    def add_data(self, area, disk_offset, length, codec, stored, checksum,
                 stored_crc32=None):
        """`checksum`: the chunk's 32-byte digest (fmt.content_digest, or
        the sealer's keyed one); `stored_crc32`: fmt.stored_crc(stored),
        computed here when not given."""
        if len(checksum) != 32:
            raise ValueError("a format 1.1 chunk digest is 32 bytes")
        if stored_crc32 is None:
            stored_crc32 = fmt.stored_crc(stored)
        header = fmt.pack_record(
            fmt.TAG_DATA, codec=codec, area=area, disk_offset=disk_offset,
            length=length, stored_size=len(stored), checksum_bytes=checksum,
            stored_crc32=stored_crc32,
            flags=fmt.RECORD_SEALED if self.sealer else 0)
        entry = fmt.Entry(0, disk_offset, length, len(stored), codec,
                          fmt.KIND_DATA, area, checksum, stored_crc32)
        self._append(entry, header, stored)
        self.data_bytes += length
        self.stored_bytes += len(stored)

    def add_zero(self, area, disk_offset, length):
        checksum = bytes(32)
        header = fmt.pack_record(fmt.TAG_ZERO, area=area,
                                 disk_offset=disk_offset, length=length,
                                 stored_size=0, checksum_bytes=checksum)
        entry = fmt.Entry(0, disk_offset, length, 0, fmt.CODEC_NONE,
                          fmt.KIND_ZERO, area, checksum)
        self._append(entry, header)
        self.zero_bytes += length

    def finish(self):
        """Write the index and trailer and commit the output."""
        index_offset = self.output.position
        index = bytes(self.index)
        if self.sealer:     # part C: the index sealed to header and META
            index = self.sealer.seal_index(index, self.header_raw,
                                           self.meta_raw)
        index_raw = fmt.pack_payload_record(fmt.TAG_INDEX, index)
        self.output.write(index_raw)
        digest = fmt.image_digest(self.header_raw, self.meta_raw, index_raw)
        stream_length = self.output.position + fmt.TRAILER.size
        self.output.write(fmt.pack_trailer(index_offset, stream_length,
                                           digest))
        self.output.commit()
        return {"chunks": self.chunks, "data_bytes": self.data_bytes,
                "zero_bytes": self.zero_bytes,
                "stored_bytes": self.stored_bytes,
                "image_bytes": stream_length, "digest": digest.hex(),
                "format_version": fmt.CURRENT.version}

    def abort(self):
        self.output.abort()
