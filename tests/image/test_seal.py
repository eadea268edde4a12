"""The Sealer on in-memory bytes: keys, boxes, and what each refuses.

A small KDF (1 MiB of scrypt) keeps these fast; the default parameters are
used by the CLI tests (tests/rdeploy/test_encrypt.py)."""

import json
import os

import blake3
import pytest

from diskimage.errors import CorruptImageError, PassphraseError, \
    UnsupportedError
from diskimage.image import seal
from diskimage.image.seal import Sealer

FAST = {"name": "scrypt", "n": 2 ** 10, "r": 8, "p": 1}
HEADER = bytes(range(64))


@pytest.fixture(scope="module")
def sealer():
    return Sealer.create(b"correct horse", kdf=FAST)


def envelope(sealer, meta=None):
    meta = {"source": {"size": 1 << 20}} if meta is None else meta
    return sealer.envelope(json.dumps(meta).encode(), HEADER)


def test_metadata_round_trip_and_the_passphrase_check(sealer):
    payload = envelope(sealer)
    again = Sealer.open(payload, HEADER, lambda: b"correct horse")
    assert again.metadata(payload, HEADER) == {"source": {"size": 1 << 20}}
    assert again.digest_key == sealer.digest_key
    with pytest.raises(PassphraseError, match="^disk.rdi: wrong passphrase$"):
        Sealer.open(payload, HEADER, b"correct horsE", name="disk.rdi")
    assert PassphraseError.exit_code == 12


def test_the_envelope_holds_only_what_is_documented(sealer):
    payload = envelope(sealer, {"description": "secret-label"})
    assert b"secret-label" not in payload
    outer = json.loads(payload)
    assert sorted(outer) == ["encryption", "sealed"]
    assert sorted(outer["encryption"]) == ["check", "cipher", "kdf", "salt"]
    plain = seal.read_envelope(payload)
    assert plain["kdf"] == FAST and plain["cipher"] == "aes-256-gcm"
    assert seal.describe_kdf(plain["kdf"]) == "scrypt n=1024 r=8 p=1"


def test_metadata_is_bound_to_the_file_header(sealer):
    payload = envelope(sealer)
    other = bytearray(HEADER)
    other[20] ^= 1
    with pytest.raises(CorruptImageError,
                       match="metadata fails authentication"):
        sealer.metadata(payload, bytes(other))
    outer = json.loads(payload)
    box = bytearray(seal._unb64(outer["sealed"], "x"))
    box[-1] ^= 0x80
    outer["sealed"] = seal._b64(bytes(box))
    with pytest.raises(CorruptImageError,
                       match="metadata fails authentication"):
        sealer.metadata(json.dumps(outer).encode(), HEADER)


def test_a_new_image_gets_a_new_salt_and_keys():
    one = Sealer.create(b"pw", kdf=FAST)
    two = Sealer.create(b"pw", kdf=FAST)
    assert one.salt != two.salt and one.digest_key != two.digest_key
    data = b"x" * 1000
    assert one.digest(data) != two.digest(data)
    assert one.digest(data) != blake3.blake3(data).digest()
    assert one.digest(data) == blake3.blake3(
        data, key=one.digest_key).digest()


def fields(area=1, disk_offset=4096, length=1 << 16, codec=1):
    return {"area": area, "disk_offset": disk_offset, "length": length,
            "codec": codec}


def test_chunk_round_trip_and_overhead(sealer):
    stored = os.urandom(5000)
    box = sealer.seal_chunk(1, 4096, 1 << 16, 1, stored)
    assert len(box) == len(stored) + seal.OVERHEAD
    assert stored not in box
    assert sealer.open_chunk(fields(), box, 100, 3) == stored


@pytest.mark.parametrize("change", [
    {"disk_offset": 8192}, {"area": 2}, {"length": 1 << 15}, {"codec": 0}])
def test_a_chunk_moved_or_relabelled_fails(sealer, change):
    box = sealer.seal_chunk(1, 4096, 1 << 16, 1, b"payload" * 99)
    with pytest.raises(CorruptImageError, match=r"^chunk fails "
                       r"authentication \(altered, moved or from another "
                       r"image\) \(chunk 3, image offset 100\)$"):
        sealer.open_chunk(fields(**change), box, 100, 3)


def test_every_flipped_byte_of_a_chunk_fails(sealer):
    box = sealer.seal_chunk(1, 4096, 1 << 16, 1, b"abc" * 20)
    for at in range(len(box)):
        bad = bytearray(box)
        bad[at] ^= 0xFF
        with pytest.raises(CorruptImageError, match="fails authentication"):
            sealer.open_chunk(fields(), bytes(bad))
    for cut in (0, 5, seal.OVERHEAD - 1, len(box) - 1):
        with pytest.raises(CorruptImageError, match="fails authentication"):
            sealer.open_chunk(fields(), box[:cut])


def test_a_chunk_from_another_image_fails(sealer):
    other = Sealer.create(b"correct horse", kdf=FAST)
    box = other.seal_chunk(1, 4096, 1 << 16, 1, b"same place")
    with pytest.raises(CorruptImageError, match="from another image"):
        sealer.open_chunk(fields(), box)


def test_the_index_is_bound_to_header_and_metadata(sealer):
    meta_raw = b"META" + bytes(64) + envelope(sealer)
    box = sealer.seal_index(b"entries" * 10, HEADER, meta_raw)
    assert sealer.open_index(box, HEADER, meta_raw) == b"entries" * 10
    with pytest.raises(CorruptImageError, match="index fails authentication"):
        sealer.open_index(box, HEADER, meta_raw + b"x", offset=7)
    # a chunk's box is not an index, nor the other way round
    chunk = sealer.seal_chunk(0, 0, 70, 0, b"entries" * 10)
    with pytest.raises(CorruptImageError, match="index fails authentication"):
        sealer.open_index(chunk, HEADER, meta_raw)


@pytest.mark.parametrize("kdf, words", [
    ({"name": "scrypt", "n": 2 ** 24, "r": 8, "p": 1}, "bytes of memory"),
    ({"name": "scrypt", "n": 2 ** 40, "r": 8, "p": 1}, "KDF n"),
    ({"name": "scrypt", "n": 3 * 2 ** 10, "r": 8, "p": 1}, "power of two"),
    ({"name": "scrypt", "n": 2 ** 10, "r": 8, "p": 1000}, "KDF p"),
    ({"name": "scrypt", "n": 2 ** 4, "r": 1, "p": 1}, "bytes of memory"),
    ({"name": "scrypt", "n": "big", "r": 8, "p": 1}, "KDF n"),
    ({"name": "argon2id", "memory_kib": 1 << 24, "iterations": 3,
      "lanes": 4}, "KDF memory_kib"),
    ({"name": "argon2id", "memory_kib": 1 << 16, "iterations": 10 ** 6,
      "lanes": 4}, "KDF iterations"),
    ({"name": "pbkdf2"}, "reads scrypt and argon2id"),
])
def test_a_hostile_kdf_is_refused_before_any_work(sealer, kdf, words):
    outer = json.loads(envelope(sealer))
    outer["encryption"]["kdf"] = kdf
    with pytest.raises(UnsupportedError, match=words):
        Sealer.open(json.dumps(outer).encode(), HEADER, b"correct horse")


def test_argon2id_images_are_read():
    kdf = {"name": "argon2id", "memory_kib": 1024, "iterations": 1,
           "lanes": 1}
    one = Sealer.create(b"pw", kdf=kdf)
    payload = one.envelope(b"{}", HEADER)
    assert Sealer.open(payload, HEADER, b"pw").metadata(payload, HEADER) == {}


@pytest.mark.parametrize("payload", [
    b"not json", b"[]", b'{"sealed": "AAAA"}', b"[" * 100000,
    b'{"encryption": {"cipher": "aes-256-gcm"}, "sealed": 5}'])
def test_a_broken_envelope_is_corruption(payload):
    with pytest.raises(CorruptImageError):
        seal.read_envelope(payload)


def test_a_broken_salt_is_corruption(sealer):
    outer = json.loads(envelope(sealer))
    outer["encryption"]["salt"] = "!!"
    with pytest.raises(CorruptImageError, match="salt is not base64"):
        seal.read_envelope(json.dumps(outer).encode())
    outer["encryption"]["salt"] = seal._b64(b"short")
    with pytest.raises(CorruptImageError, match="salt is 5 bytes"):
        seal.read_envelope(json.dumps(outer).encode())
