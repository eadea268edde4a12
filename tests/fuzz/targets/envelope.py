"""An encrypted image's sealed parts over hostile bytes (part C): the META
envelope (read_envelope: JSON, cipher, KDF parameters against their caps,
salt and check), the sealed metadata, a DATA box with its record fields,
and the sealed index, opened by a Sealer with fixed keys.  The first byte
of an input picks the reader; the rest is what it reads.

Sealer.open (key derivation) runs only for envelopes asking for the
smallest scrypt (n=1024, r=8, p=1): the caps allow up to 1 GiB per input,
which is what they are for, not what a fuzzer should spend.

`python -m tests.fuzz.targets.envelope` writes the seeds (a real envelope,
metadata, chunk and index of a small encrypted image) into
tests/fuzz/corpus/envelope/."""

import os
import struct
import sys

from diskimage.image import seal

MAX_LEN = 8192
HEADER = bytes(range(64))
SMALL = {"name": "scrypt", "n": 2 ** 10, "r": 8, "p": 1}
SEALER = seal.Sealer(bytes(32), bytes(16), SMALL)
FIELDS = struct.Struct("<HQQB")


def _fields(data):
    area, disk_offset, length, codec = FIELDS.unpack(data[:FIELDS.size])
    return {"area": area, "disk_offset": disk_offset, "length": length,
            "codec": codec}


def one_input(data):
    if len(data) < 1:
        return
    mode, rest = data[0] % 4, data[1:]
    if mode == 0:
        envelope = seal.read_envelope(rest)
        if envelope["kdf"] == SMALL:
            opened = seal.Sealer.open(envelope, HEADER, b"fuzz")
            opened.metadata(envelope, HEADER)
    elif mode == 1:
        SEALER.metadata(rest, HEADER)
    elif mode == 2:
        if len(rest) >= FIELDS.size:
            SEALER.open_chunk(_fields(rest), rest[FIELDS.size:], 0, 0)
    else:
        SEALER.open_index(rest, HEADER, b"META record")


def seeds():
    """(name, bytes) of the seed inputs."""
    meta = b'{"areas":[],"source":{"size":1048576}}'
    opened = seal.Sealer.create(b"fuzz", kdf=SMALL)
    real = SEALER.envelope(meta, HEADER)
    fields = FIELDS.pack(1, 4096, 65536, 1)
    return [("envelope-real", b"\0" + opened.envelope(meta, HEADER)),
            ("metadata", b"\1" + real),
            ("chunk", b"\2" + fields + SEALER.seal_chunk(
                1, 4096, 65536, 1, b"compressed bytes" * 8)),
            ("index", b"\3" + SEALER.seal_index(bytes(68) * 3, HEADER,
                                                b"META record"))]


if __name__ == "__main__":
    where = os.path.join(os.path.dirname(__file__), "..", "corpus",
                         "envelope")
    os.makedirs(where, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(where, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds())} seeds into {where}", file=sys.stderr)
