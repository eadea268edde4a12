"""The restore marker's 512 bytes, as docs/FORMAT.md ("The restore marker")
lays them out: read back from the bytes by their documented offsets, not
through the code's own declaration."""

import struct
import zlib

import pytest

from diskimage import restoremark
from diskimage.errors import IncompleteTargetError


def _marker(**kw):
    values = dict(offset=1 << 20, front=bytes(range(32)),
                  plan=bytes(range(32, 64)), name="/srv/lab.rdi",
                  root=bytes(range(64, 96)), chunks=2301, checkpoint=812,
                  prefix=bytes(range(96, 128)), done_bytes=3 << 30,
                  total_bytes=9 << 30, stream_offset=123456, started=1000,
                  updated=2000)
    values.update(kw)
    return restoremark.Marker(**values)


def test_bytes_at_their_documented_offsets():
    raw = _marker().pack()
    assert len(raw) == 512
    assert raw[0:14] == b"RDI-RESTORING\n"
    assert raw[14] == 1 and raw[15] == 1            # version, phase
    assert struct.unpack_from("<I", raw, 16)[0] == 3  # ROOT_KNOWN|IN_PLACE
    assert struct.unpack_from("<Q", raw, 24)[0] == 1 << 20
    assert raw[32:64] == bytes(range(64, 96))        # root
    assert raw[64:96] == bytes(range(32))            # front
    assert raw[96:128] == bytes(range(32, 64))       # plan
    assert raw[128:160] == bytes(range(96, 128))     # prefix
    assert struct.unpack_from("<7Q", raw, 160) == (
        2301, 812, 3 << 30, 9 << 30, 1000, 2000, 123456)
    length = struct.unpack_from("<H", raw, 216)[0]
    assert raw[218:218 + length] == b"/srv/lab.rdi"
    assert raw[218 + length:504] == bytes(504 - 218 - length)
    assert struct.unpack_from("<I", raw, 504)[0] == zlib.crc32(raw[:504])
    assert raw[508:512] == bytes(4)


def test_round_trip_and_a_pipe_marker():
    back = restoremark.unpack(_marker().pack(), 1 << 20)
    assert (back.name, back.root, back.chunks, back.checkpoint) == \
        ("/srv/lab.rdi", bytes(range(64, 96)), 2301, 812)
    piped = restoremark.unpack(_marker(root=None, chunks=0, name="-")
                               .pack(), 1 << 20)
    assert piped.root is None and piped.chunks == 0
    assert struct.unpack_from("<I", _marker(root=None).pack(), 16)[0] == 2
    assert "812 chunks done" == piped.progress_text()


def test_not_a_marker_and_damaged_ones():
    assert restoremark.unpack(bytes(512), 0) is None
    raw = bytearray(_marker().pack())
    raw[300] ^= 1
    with pytest.raises(IncompleteTargetError, match="damaged restore marker"):
        restoremark.unpack(bytes(raw), 1 << 20)
    # a marker found where it does not say it was written
    with pytest.raises(IncompleteTargetError, match="damaged"):
        restoremark.unpack(_marker().pack(), 0)
