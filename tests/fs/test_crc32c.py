"""diskimage.fs.crc32c: the C code (google-crc32c, the `fast` extra that
`make deps` installs) and the table in Python give the same values, the
standard check value among them, and the raw update is the kernel's."""

import random

from diskimage.fs import crc32c


def test_check_value_and_both_ways_agree():
    assert crc32c.value(b"123456789") == 0xE3069283     # CRC-32C's check
    rng = random.Random(4)
    for size in (0, 1, 7, 512, 4096, 16384 + 3):
        data = rng.randbytes(size)
        for seed in (0, 0xFFFFFFFF, rng.getrandbits(32)):
            assert crc32c.update(seed, data) == \
                crc32c._update_python(seed, data)
        assert crc32c.value(data) == \
            crc32c._update_python(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    assert crc32c.update(1, memoryview(b"abc")) == \
        crc32c._update_python(1, b"abc")


def test_the_c_code_is_the_one_in_use():
    # make deps installs the fast extra: the 1 TiB ext4 case (bench
    # --scale) would spend 0.4 s of Python on its block bitmaps otherwise
    assert crc32c.update is not crc32c._update_python
