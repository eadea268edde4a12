"""Format 1.1 on in-memory bytes and on a committed 1.0 image: the BLAKE3
content digest and the stored bytes' CRC-32 in every record, the root
digest, the version a reader names, a signed index (`expected`), and 1.0
images still read, verified, restored and converted."""

import gzip
import io
import zlib
from pathlib import Path

import blake3
import pytest

from diskimage.errors import (CorruptImageError, PassphraseError,
                              UnsupportedError)
from diskimage.image import format as fmt
from diskimage.image.compression import decompress
from diskimage.image.reader import ImageReader, RecordStream, decode_record
from diskimage.image.rewrite import rewrite
from diskimage.image.verify import verify
from diskimage.image.volumes import PipeInput
from tests.image.test_format import build_with_summary
from tests.smalldisk import sha256

DATA = Path(__file__).parent / "data"
META = {"areas": [{"kind": "disk", "start": 0, "size": 4 << 16}],
        "source": {"size": 4 << 16}, "table": {"kind": "none"}}


def build(chunks, codec="lz4"):
    return build_with_summary(chunks, codec, META)


def stream_of(raw, **kw):
    return RecordStream(PipeInput(io.BytesIO(raw)), **kw)


def drain(stream):
    return [stream.decode(r) for r in stream.records()]


def reseal_header(raw, **changes):
    header = fmt.FILE_HEADER.unpack(raw[:64])
    header.update(changes)
    return fmt._sealed(fmt.FILE_HEADER, "header_crc32", **header) + raw[64:]


@pytest.fixture
def v10(tmp_path):
    path = tmp_path / "v10.rdi"
    path.write_bytes(gzip.decompress((DATA / "v10-ext4.rdi.gz").read_bytes()))
    return path


CHUNKS = [(0, b"hello disk " * 5000), (1 << 16, None),
          (2 << 16, bytes(range(256)) * 200)]


def test_records_carry_blake3_and_the_stored_crc():
    raw, summary = build(CHUNKS)
    header = fmt.unpack_file_header(raw[:64])
    assert (header["version_minor"], header["checksum_algorithm"]) == (1, 2)
    stream = stream_of(raw)
    assert stream.version == "1.1" and stream.layout.strong
    records = drain(stream)
    for (_, fields, data, offset), (_, chunk) in zip(records, CHUNKS):
        if chunk is None:
            assert fields["digest"] == bytes(32) and not fields["stored_crc32"]
            continue
        assert data == chunk
        assert fields["digest"] == blake3.blake3(chunk).digest()
        payload = raw[offset + 68:offset + 68 + fields["stored_size"]]
        assert fields["stored_crc32"] == zlib.crc32(payload)
    # the root digest: SHA-256 of header, META record, INDX record
    assert stream.root.hex() == summary["digest"] == stream.summary["digest"]
    assert stream.summary["format_version"] == "1.1"


def test_content_digest_is_blake3_256():
    # BLAKE3's published test vector for the empty input
    assert fmt.content_digest(b"").hex() == \
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    key = bytes(range(32))
    assert fmt.content_digest(b"x", key) == \
        blake3.blake3(b"x", key=key).digest() != fmt.content_digest(b"x")


def test_image_reader_root_version_and_digest_of(tmp_path):
    raw, summary = build(CHUNKS)
    path = tmp_path / "a.rdi"
    path.write_bytes(raw)
    with ImageReader(str(path)) as image:
        assert image.version == "1.1"
        assert image.root.hex() == summary["digest"]
        assert image.entries[0].digest == image.digest_of(CHUNKS[0][1])
        assert image.entries[2].stored_crc32 != 0
        assert image.read_entry(2) == CHUNKS[2][1]


def test_a_newer_minor_version_is_refused():
    raw, _ = build(CHUNKS)
    with pytest.raises(UnsupportedError, match=r"format 1\.2 is newer than "
                       r"this tool reads \(1\.0 and 1\.1\)"):
        stream_of(reseal_header(raw, version_minor=2))


def test_unknown_header_flags_and_a_1_0_algorithm_in_1_1_are_refused():
    raw, _ = build(CHUNKS)
    with pytest.raises(CorruptImageError, match="unknown flags"):
        stream_of(reseal_header(raw, flags=2))
    with pytest.raises(UnsupportedError, match="checksum algorithm"):
        stream_of(reseal_header(raw, checksum_algorithm=1))


def test_an_encrypted_image_without_a_passphrase_is_refused():
    raw, _ = build(CHUNKS)
    with pytest.raises(PassphraseError, match="encrypted") as caught:
        stream_of(reseal_header(raw, flags=fmt.FLAG_ENCRYPTED))
    assert caught.value.exit_code == 12


def test_a_payload_that_decodes_the_same_is_caught_by_its_crc():
    """The case 1.0 cannot see: a flipped lz4 byte whose block still decodes
    to the very same bytes (found by trying every byte of the payload)."""
    data = bytes(3000) + bytes(range(200)) + bytes(3000) + b"ab" * 900
    raw, _ = build([(0, data)])
    (_, fields, payload, offset), = list(stream_of(raw).records())
    assert fields["codec"] == fmt.CODEC_LZ4
    same = []
    for at in range(len(payload)):
        bad = bytearray(payload)
        bad[at] ^= 0xFF
        try:
            if decompress(fmt.CODEC_LZ4, bytes(bad), len(data)) == data:
                same.append(bytes(bad))
        except CorruptImageError:
            pass
    assert same, "no flip decodes the same: pick other data"
    for bad in same:
        with pytest.raises(CorruptImageError, match="stored bytes"):
            decode_record((0, fields, bad, offset))


def test_expected_index_refuses_a_differing_record_before_it_is_yielded():
    raw, _ = build(CHUNKS)
    # the signed index: the same image's entries, read through its index
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".rdi") as f:
        f.write(raw)
        f.flush()
        with ImageReader(f.name) as image:
            path_entries = image.entries
    assert len(drain(stream_of(raw, expected=path_entries))) == 3
    changed = list(path_entries)
    changed[2] = fmt.Entry(**dict(changed[2].__dict__,
                                  checksum=bytes(32)))
    seen = []
    with pytest.raises(CorruptImageError,
                       match="chunk 2 differs from the signed index"):
        for record in stream_of(raw, expected=changed).records():
            seen.append(record[0])
    assert seen == [0, 1]
    with pytest.raises(CorruptImageError, match="signed index"):
        drain(stream_of(raw, expected=path_entries[:2]))
    with pytest.raises(CorruptImageError, match="signed index"):
        drain(stream_of(raw, expected=path_entries + path_entries[:1]))


# --- a format 1.0 image, made by the last rdeploy that wrote 1.0 ----------
def test_a_1_0_image_reads_and_verifies(v10):
    with ImageReader(str(v10)) as image:
        assert image.version == "1.0" and not image.layout.strong
        assert image.layout.record.size == 48
        data = [image.read_entry(n) for n, e in enumerate(image.entries)
                if not e.is_zero]
        assert image.digest_of(data[0]) == fmt.checksum(data[0])
        root = image.root
    with open(v10, "rb") as f:
        summary = verify(PipeInput(f))
    assert summary["format_version"] == "1.0"
    assert summary["digest"] == root.hex()


def test_a_1_0_image_restores_and_converts_to_1_1(v10, tmp_path):
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[2]
    disk = tmp_path / "disk.img"
    expected = (DATA / "v10-ext4.disk.sha256").read_text().strip()
    run = subprocess.run([sys.executable, "-m", "rdeploy", "restore", v10,
                          disk, "--yes", "--verify", "-q"], cwd=root,
                         capture_output=True)
    assert run.returncode == 0, run.stderr
    assert sha256(disk) == expected
    out = tmp_path / "v11.rdi"
    rewrite(str(v10), str(out))
    with ImageReader(str(out)) as image:
        assert image.version == "1.1"
        for n, entry in enumerate(image.entries):
            if not entry.is_zero:
                assert entry.digest == fmt.content_digest(image.read_entry(n))
    disk.unlink()
    run = subprocess.run([sys.executable, "-m", "rdeploy", "restore", out,
                          disk, "--yes", "--verify", "-q"], cwd=root,
                         capture_output=True)
    assert run.returncode == 0, run.stderr
    assert sha256(disk) == expected


def test_info_and_verify_name_the_version_and_the_root(v10, tmp_path):
    import json
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[2]

    def rdeploy(*args):
        run = subprocess.run([sys.executable, "-m", "rdeploy", *map(str, args)],
                             cwd=root, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout

    out = tmp_path / "v11.rdi"
    rewrite(str(v10), str(out))
    with ImageReader(str(out)) as image:
        digest = image.root.hex()
    with ImageReader(str(v10)) as image:
        old = image.root.hex()
    text = rdeploy("info", out)
    assert "format 1.1)" in text and f"root digest:  sha256:{digest}" in text
    info = json.loads(rdeploy("info", "--json", out))
    assert (info["format_version"], info["root"], info["root_strong"]) == \
        ("1.1", digest, True)
    assert rdeploy("verify", out).strip().endswith(
        f"root digest sha256:{digest}")
    assert "format 1.1," in rdeploy("verify", out)
    text = rdeploy("info", v10)
    assert "format 1.0)" in text and "cannot be signed" in text
    assert f"sha256:{old}" in text
    line = rdeploy("verify", v10)
    assert "format 1.0," in line and \
        f"digest (1.0: over CRC-32 chunk checks) sha256:{old}" in line


def test_an_index_longer_than_its_records_is_refused_before_reading_it():
    raw, _ = build(CHUNKS)
    at = fmt.unpack_trailer(raw[-64:], len(raw) - 64)["index_offset"]
    fields = fmt.unpack_record(raw[at:at + 68], at)
    fields.update(stored_size=0xFFFFFFF0, header_crc32=0)
    head = fmt._sealed(fmt.RECORD_HEADER, "header_crc32", **fields)
    # only the header: a reader that believed the size would wait for
    # 4 GiB from the pipe (or report a truncated stream instead)
    with pytest.raises(CorruptImageError, match="index of 4294967280 bytes "
                       "after 3 records"):
        drain(stream_of(raw[:at] + head))
