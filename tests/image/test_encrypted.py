"""Encrypted images in memory: written by ImageWriter with a Sealer, read
by both readers; every kind of tampering refused with its own message.

The attacks are made as an attacker would: CRCs (which anyone can
recompute) fixed up after each change, so that what refuses the image is
the authentication, not an accidental checksum."""

import io
import os
import struct
import zlib

import pytest

from diskimage.errors import CorruptImageError, PassphraseError
from diskimage.image import format as fmt
from diskimage.image.compression import Compressor
from diskimage.image.reader import ImageReader, RecordStream
from diskimage.image.seal import Sealer
from diskimage.image.volumes import PipeInput
from diskimage.image.volumeout import StreamOutput
from diskimage.image.writer import ImageWriter

FAST = {"name": "scrypt", "n": 2 ** 10, "r": 8, "p": 1}
PW = b"pass phrase"
CHUNK = 1 << 16
META = {"areas": [{"kind": "disk", "start": 0, "size": 4 * CHUNK}],
        "source": {"size": 4 * CHUNK}, "table": {"kind": "none"},
        "description": "secret words"}
DATA = [b"text of chunk zero " * 3000, os.urandom(CHUNK), None,
        b"third data chunk " * 3600]


def build(sealer=None, pw=PW):
    sealer = sealer or Sealer.create(pw, kdf=FAST)
    out = io.BytesIO()
    writer = ImageWriter(StreamOutput(out), META, CHUNK, sealer=sealer)
    compressor = Compressor("lz4", digest=sealer.digest)
    for n, data in enumerate(DATA):
        if data is None:
            writer.add_zero(0, n * CHUNK, CHUNK)
            continue
        data = data[:CHUNK]
        codec, stored, digest = compressor(data)
        writer.add_data(0, n * CHUNK, len(data), codec,
                        sealer.seal_chunk(0, n * CHUNK, len(data), codec,
                                          stored), digest)
    writer.finish()
    return out.getvalue()


@pytest.fixture(scope="module")
def image():
    return build()


def stream_all(raw, pw=PW):
    stream = RecordStream(PipeInput(io.BytesIO(raw)),
                          passphrase=(lambda: pw) if pw else None)
    return stream, [stream.decode(r)[2] for r in stream.records()]


def write(tmp_path, raw):
    path = tmp_path / "e.rdi"
    path.write_bytes(raw)
    return str(path)


def test_round_trip_through_a_stream_and_the_index(image, tmp_path):
    stream, chunks = stream_all(image)
    assert stream.metadata == META
    assert chunks == [d and d[:CHUNK] for d in DATA]
    assert stream.version == "1.1" and stream.root
    with ImageReader(write(tmp_path, image), passphrase=lambda: PW) as r:
        assert r.metadata == META and r.root == stream.root
        assert [r.read_entry(n) for n in range(4)] == \
            [d[:CHUNK] if d else bytes(CHUNK) for d in DATA]
        assert r.digest_of(DATA[0][:CHUNK]) == r.entries[0].checksum


def test_nothing_readable_without_the_passphrase(image):
    assert b"secret words" not in image
    assert b"text of chunk zero" not in image
    assert b"third data chunk" not in image
    assert fmt.content_digest(DATA[0][:CHUNK]) not in image


def test_no_passphrase_and_a_wrong_one(image, tmp_path):
    with pytest.raises(PassphraseError, match="is encrypted; give its "
                       "passphrase"):
        stream_all(image, pw=None)
    with pytest.raises(PassphraseError, match=r"^<stdin>: wrong passphrase$"):
        stream_all(image, pw=b"pass phrasE")
    with pytest.raises(PassphraseError, match=r"e\.rdi: wrong passphrase$"):
        ImageReader(write(tmp_path, image), passphrase=lambda: b"x")


def records(raw):
    """(offset, header fields) of every record, from the index."""
    size = fmt.RECORD_HEADER.size
    out, at = [], fmt.FILE_HEADER.size
    while at < len(raw) - fmt.TRAILER.size:
        fields = fmt.unpack_record(raw[at:at + size], at)
        out.append((at, fields))
        at += size + fields["stored_size"]
    return out


def refix(raw, at, **changes):
    """Record header at `at` with `changes`, its header CRC made good."""
    fields = fmt.unpack_record(raw[at:at + fmt.RECORD_HEADER.size], at)
    fields.update(changes)
    fields.pop("checksum")
    fields["header_crc32"] = 0
    head = fmt.RECORD_HEADER_11.pack(**fields)
    head = head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))
    return raw[:at] + head + raw[at + len(head):]


def test_swapped_payloads_fail_authentication(image):
    """Chunk 0's and chunk 3's payloads exchanged, each header given the
    other's stored size and stored CRC so that only the seal can tell."""
    recs = records(image)
    (a, fa), (b, fb) = recs[1], recs[4]
    size = fmt.RECORD_HEADER.size
    pa = image[a + size:a + size + fa["stored_size"]]
    pb = image[b + size:b + size + fb["stored_size"]]
    raw = image[:a + size] + pb + image[a + size + len(pa):b + size] + pa + \
        image[b + size + len(pb):]
    raw = refix(raw, a, stored_size=len(pb),
                stored_crc32=fmt.stored_crc(pb))
    raw = refix(raw, a + size + len(pb) + (b - a - size - len(pa)),
                stored_size=len(pa), stored_crc32=fmt.stored_crc(pa))
    stream = RecordStream(PipeInput(io.BytesIO(raw)), passphrase=lambda: PW)
    with pytest.raises(CorruptImageError, match=r"^chunk fails "
                       r"authentication \(altered, moved or from another "
                       r"image\) \(chunk 0, "):
        for record in stream.records():
            stream.decode(record)


def test_swapped_whole_records_do_not_match_the_index(image):
    recs = records(image)
    (a, _), (b, fb) = recs[1], recs[2]
    size = fmt.RECORD_HEADER.size
    one = image[a:b]
    two = image[b:b + size + fb["stored_size"]]
    raw = image[:a] + two + one + image[b + len(two):]
    stream = RecordStream(PipeInput(io.BytesIO(raw)), passphrase=lambda: PW)
    with pytest.raises(CorruptImageError, match="index does not match the "
                       "chunks read"):
        for record in stream.records():
            stream.decode(record)      # each record is whole and sealed


def test_a_truncated_stream(image):
    for cut in (len(image) - 1, len(image) - fmt.TRAILER.size - 10,
                len(image) // 2):
        with pytest.raises(CorruptImageError, match="image ends early"):
            stream_all(image[:cut])


def test_a_flipped_ciphertext_byte_fails_authentication(image):
    at, fields = records(image)[1]
    where = at + fmt.RECORD_HEADER.size + 100
    raw = bytearray(image)
    raw[where] ^= 0x01
    # plain flip: the stored CRC-32 finds it
    with pytest.raises(CorruptImageError, match=r"stored bytes fail"):
        stream_all(bytes(raw))
    payload = bytes(raw[at + fmt.RECORD_HEADER.size:at + fmt.RECORD_HEADER
                        .size + fields["stored_size"]])
    raw = refix(bytes(raw), at, stored_crc32=fmt.stored_crc(payload))
    with pytest.raises(CorruptImageError, match=r"chunk fails authentic"):
        stream_all(raw)


def test_a_chunk_from_another_image_with_the_same_passphrase(image):
    other = build()
    at, fields = records(image)[1]
    end = at + fmt.RECORD_HEADER.size + fields["stored_size"]
    oat, ofields = records(other)[1]
    oend = oat + fmt.RECORD_HEADER.size + ofields["stored_size"]
    raw = image[:at] + other[oat:oend] + image[end:]
    with pytest.raises(CorruptImageError, match="from another image"):
        stream_all(raw)


def test_the_metadata_of_another_image_opens_none_of_its_chunks(image):
    """Same passphrase, same header bytes, another salt: the other META
    record authenticates (it is whole) but its keys open no chunk."""
    other = build()
    assert other[:fmt.FILE_HEADER.size] == image[:fmt.FILE_HEADER.size]
    recs, orecs = records(image), records(other)
    raw = image[:fmt.FILE_HEADER.size] + \
        other[fmt.FILE_HEADER.size:orecs[1][0]] + image[recs[1][0]:]
    with pytest.raises(CorruptImageError, match="chunk fails authentication"
                       r".* \(chunk 0, "):
        stream_all(raw)


@pytest.mark.parametrize("change", ["dropped", "repeated"])
def test_a_record_dropped_or_repeated_does_not_match_the_index(image,
                                                               change):
    recs = records(image)
    a, b = recs[2][0], recs[3][0]           # chunk 1, whole
    raw = image[:a] + image[b:] if change == "dropped" else \
        image[:b] + image[a:b] + image[b:]
    # the index's size says how many records it lists (checked before it
    # is read), its contents which ones
    with pytest.raises(CorruptImageError, match=r"index of \d+ bytes after "
                       r"\d+ records"):
        stream_all(raw)
