"""The image format on in-memory bytes: build, read back, refuse bad data."""

import io
import os

import pytest

from diskimage.image import format as fmt
from diskimage.image.compression import Compressor, decompress
from diskimage.errors import CorruptImageError, InputError, UnsupportedError
from diskimage.image.reader import RecordStream, decode_record
from diskimage.image.volumes import PipeInput
from diskimage.image.volumeout import StreamOutput
from diskimage.image.writer import ImageWriter

META = {"areas": [{"kind": "disk", "start": 0, "size": 3 << 16}],
        "source": {"size": 3 << 16}, "table": {"kind": "none"}}


def build_with_summary(chunks, codec="lz4", meta=META):
    """(image stream, writer summary) of (offset, bytes-or-None) chunks
    of 64 KiB; None is a hole."""
    out = io.BytesIO()
    writer = ImageWriter(StreamOutput(out), meta, 1 << 16)
    compressor = Compressor(codec)
    for offset, data in chunks:
        if data is None:
            writer.add_zero(0, offset, 1 << 16)
        else:
            writer.add_data(0, offset, len(data), *compressor(data))
    summary = writer.finish()
    return out.getvalue(), summary


def build(chunks, codec="lz4"):
    """An image stream of (offset, bytes-or-None) chunks; None is a hole."""
    return build_with_summary(chunks, codec)[0]


def read_all(raw):
    stream = RecordStream(PipeInput(io.BytesIO(raw)))
    return stream, [decode_record(r) for r in stream.records()]


def test_structures_have_their_documented_sizes():
    assert fmt.FILE_HEADER.size == 64
    assert fmt.RECORD_HEADER.size == 68          # format 1.1, written
    assert fmt.INDEX_ENTRY.size == 68
    assert fmt.RECORD_HEADER_10.size == 48       # format 1.0, still read
    assert fmt.INDEX_ENTRY_10.size == 48
    assert fmt.TRAILER.size == 64


def test_round_trip_of_data_and_holes():
    text = b"hello disk " * 5000
    rand = os.urandom(1 << 16)
    raw = build([(0, text), (1 << 16, None), (2 << 16, rand)])
    assert raw.startswith(fmt.MAGIC)
    stream, records = read_all(raw)
    assert stream.metadata == META
    assert [r[2] for r in records] == [text, None, rand]
    assert [r[1]["codec"] for r in records] == [fmt.CODEC_LZ4, fmt.CODEC_NONE,
                                                 fmt.CODEC_NONE]
    assert stream.summary["chunks"] == 3
    assert stream.summary["image_bytes"] == len(raw)


def test_incompressible_chunk_is_stored_raw():
    data = os.urandom(4096)
    codec, stored, _ = Compressor("lz4")(data)
    assert codec == fmt.CODEC_NONE and stored == data


def test_zstd_round_trip():
    pytest.importorskip("zstandard")
    data = b"abc" * 10000
    codec, stored, digest = Compressor("zstd", 5)(data)
    assert codec == fmt.CODEC_ZSTD and len(stored) < len(data)
    assert decompress(codec, stored, len(data)) == data


def test_every_flipped_byte_is_caught():
    raw = build([(0, b"x" * 3000 + bytes(1000)), (1 << 16, None),
                 (2 << 16, os.urandom(500))])
    for position in range(len(raw)):
        damaged = bytearray(raw)
        damaged[position] ^= 0xFF
        with pytest.raises((CorruptImageError, InputError,
                            UnsupportedError)):
            read_all(bytes(damaged))


def test_truncation_anywhere_is_caught():
    raw = build([(0, b"y" * 5000)])
    for cut in range(0, len(raw), 7):
        with pytest.raises((CorruptImageError, InputError)):
            read_all(raw[:cut])


def test_trailing_garbage_is_caught():
    with pytest.raises(CorruptImageError, match="after the trailer"):
        read_all(build([(0, b"z" * 100)]) + b"\0")


def test_unknown_major_version_is_refused_by_name():
    raw = bytearray(build([(0, b"z" * 100)]))
    header = fmt.FILE_HEADER.unpack(bytes(raw[:64]))
    header.update(version_major=2, version_minor=0)
    raw[:64] = fmt._sealed(fmt.FILE_HEADER, "header_crc32", **header)
    with pytest.raises(UnsupportedError, match="version 2.0"):
        read_all(bytes(raw))


def test_not_an_image():
    with pytest.raises(InputError, match="not an rdeploy image"):
        read_all(b"PK\x03\x04 a zip file, say" * 10)
