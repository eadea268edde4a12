"""The service partition's tail: the record copy and the two state slots,
on a disk file, byte layout checked by hand (struct, zlib), torn writes
made by writing half a slot."""

import struct
import types
import zlib

import pytest

from diskimage.errors import InputError
from diskimage.service import tail
from tests.service.forged import minimal_record

MiB = 1 << 20
KiB = 1 << 10
TAIL_AT = 7 * MiB       # the tail of a partition ending at 8 MiB
PART = types.SimpleNamespace(table_kind="gpt", number=2, start=MiB,
                             size=7 * MiB,
                             part_id="0b2c4c55-7a1d-4c5e-9e1e-1d1f1f1f1f1f")


@pytest.fixture
def service(tmp_path):
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(8 * MiB + 512)
    return types.SimpleNamespace(disk=str(path), tail_offset=TAIL_AT)


def raw(service, offset, length):
    with open(service.disk, "rb") as f:
        f.seek(offset)
        return f.read(length)


def poke(service, offset, data):
    with open(service.disk, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_record_bytes_as_documented(service):
    rec = minimal_record(PART, name="é")
    tail.write_record(service, rec)
    head = raw(service, TAIL_AT, 32)
    magic, fmt, length, crc = struct.unpack("<8sIII", head[:20])
    assert magic == b"RDSVCREC" and fmt == 1
    assert head[20:32] == bytes(12)
    body = raw(service, TAIL_AT + 32, length)
    assert zlib.crc32(body) == crc
    assert tail.encode(rec) == body
    assert raw(service, TAIL_AT + 32 + length, 512 * KiB - 32 - length) == \
        bytes(512 * KiB - 32 - length)
    assert tail.read_record(service) == rec
    # nothing outside the record copy was written
    assert raw(service, TAIL_AT + 512 * KiB, 512 * KiB) == bytes(512 * KiB)
    assert raw(service, 0, TAIL_AT) == bytes(TAIL_AT)


def test_no_record(service):
    assert tail.read_record(service) is None
    assert tail.read_state(service) == {}


@pytest.mark.parametrize("where, data, said", [
    (32 + 3, b"X", "crc32 mismatch"),
    (12, struct.pack("<I", 600 * KiB), "length 614400 out of bounds"),
    (12, struct.pack("<I", 0), "length 0 out of bounds"),
    (8, struct.pack("<I", 2), "format 2"),
])
def test_damaged_record_named_with_offset(service, where, data, said):
    tail.write_record(service, minimal_record(PART))
    poke(service, TAIL_AT + where, data)
    with pytest.raises(InputError) as err:
        tail.read_record(service, fat_copy=False)
    assert f"service record (tail copy) at byte {TAIL_AT}" in str(err.value)
    assert said in str(err.value)


def test_state_slots_alternate_with_sequence(service):
    seen = [tail.write_state(service, {"n": n}) for n in range(1, 5)]
    assert seen == [("A", 1), ("B", 2), ("A", 3), ("B", 4)]
    assert tail.read_state(service) == {"n": 4}
    for name, at, seq in (("A", 512 * KiB, 3), ("B", 768 * KiB, 4)):
        head = raw(service, TAIL_AT + at, 32)
        magic, sequence, length, crc = struct.unpack("<8sQII", head[:24])
        assert (magic, sequence) == (b"RDSVCSTA", seq)
        assert head[24:32] == bytes(8)
        assert zlib.crc32(raw(service, TAIL_AT + at + 32, length)) == crc


def torn(service, state, sequence, slot_at, keep):
    """A write of *state* with *sequence* to the slot at *slot_at* cut
    after *keep* bytes: the slot's old bytes stay after that."""
    new = tail.pack_state(state, sequence)
    poke(service, TAIL_AT + slot_at, new[:keep])


def test_torn_write_leaves_the_state_before(service):
    tail.write_state(service, {"n": 1, "pad": "x" * 1000})      # A, seq 1
    tail.write_state(service, {"n": 2, "pad": "y" * 1000})      # B, seq 2
    # the third write goes to A; cut in the middle of its JSON
    torn(service, {"n": 3, "pad": "z" * 1000}, 3, 512 * KiB, 32 + 500)
    assert tail.read_state(service) == {"n": 2, "pad": "y" * 1000}
    # the next write goes to the damaged slot again, sequence 3
    assert tail.write_state(service, {"n": 3}) == ("A", 3)
    assert tail.read_state(service) == {"n": 3}


def test_torn_header_leaves_the_state_before(service):
    tail.write_state(service, {"n": 1})
    tail.write_state(service, {"n": 2})
    # cut inside the header: magic and half the sequence written
    torn(service, {"n": 3}, 3, 512 * KiB, 12)
    assert tail.read_state(service) == {"n": 2}


def test_first_write_torn_reads_as_never_written(service):
    torn(service, {"n": 1, "pad": "p" * 100}, 1, 512 * KiB, 40)
    assert tail.read_state(service) == {}
    assert tail.write_state(service, {"n": 1}) == ("A", 1)


def test_both_slots_damaged(service):
    tail.write_state(service, {"n": 1})
    tail.write_state(service, {"n": 2})
    poke(service, TAIL_AT + 512 * KiB + 33, b"\xff")
    poke(service, TAIL_AT + 768 * KiB, b"garbage!")
    with pytest.raises(InputError) as err:
        tail.read_state(service)
    text = str(err.value)
    assert f"slot A at byte {TAIL_AT + 512 * KiB}: crc32 mismatch" in text
    assert f"slot B at byte {TAIL_AT + 768 * KiB}: no RDSVCSTA magic" in text


def test_state_too_big(service):
    with pytest.raises(InputError, match="more than the 262112"):
        tail.write_state(service, {"text": "x" * (256 * KiB)})
    assert tail.read_state(service) == {}
