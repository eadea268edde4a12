"""Capture's cheap paths give the image the slow paths gave: a disk file's
holes (SEEK_DATA / SEEK_HOLE) are not read, yet the records are those of
the same bytes read from a copy without holes; a large chunk whose sample
does not shrink is stored raw unless it has a zero run worth a trial."""

import os
import random
import subprocess

from diskimage.capture import capture
from diskimage.host.device import FileHoles, data_extents
from diskimage.image.compression import SAMPLE_PIECE, Compressor
from diskimage.image.format import CODEC_LZ4, CODEC_NONE
from diskimage.image.reader import ImageReader
from diskimage.image.volumeout import VolumeOutput

from tests.smalldisk import SECTOR, build_disk

KiB, MiB = 1 << 10, 1 << 20


def _sparse_disk(tmp_path):
    """The small GPT disk (ext4, then random bytes), with data written in
    the middle of chunk windows of its second partition, zeros written
    (data, not a hole) in one, and holes everywhere else."""
    path = build_disk(tmp_path / "sparse.img", seed=7)
    rng = random.Random(7)
    with open(path, "r+b") as f:
        data2 = 67584 * SECTOR
        for at, length in ((9 * MiB + 12 * KiB, 100 * KiB),
                           (13 * MiB - 8 * KiB, 24 * KiB)):
            f.seek(data2 + at)
            f.write(rng.randbytes(length))
        f.seek(data2 + 20 * MiB)
        f.write(bytes(MiB))
    return path


def _records(image):
    with ImageReader(str(image)) as reader:
        return [(e.area, e.disk_offset, e.length, e.codec, e.stored_size,
                 e.checksum) for e in reader.entries]


def _capture(source, image):
    return capture(str(source), VolumeOutput(str(image)),
                   compressor=Compressor("lz4"), threads=2)


def test_holes_of_a_disk_file_are_not_read_and_change_nothing(tmp_path):
    sparse = _sparse_disk(tmp_path)
    dense = tmp_path / "dense.img"
    subprocess.run(["cp", "--sparse=never", str(sparse), str(dense)],
                   check=True)
    size = os.path.getsize(sparse)
    with open(sparse, "rb") as f:
        held = sum(b - a for a, b in data_extents(f.fileno(), size))
    with open(dense, "rb") as f:
        dense_held = sum(b - a for a, b in data_extents(f.fileno(), size))
    assert held < size // 2 and dense_held == size   # the two cases
    one, two = _capture(sparse, tmp_path / "a.rdi"), \
        _capture(dense, tmp_path / "b.rdi")
    assert _records(tmp_path / "a.rdi") == _records(tmp_path / "b.rdi")
    for key in ("chunks", "data_bytes", "zero_bytes", "stored_bytes"):
        assert one[key] == two[key], key


def test_data_in_agrees_with_the_extents(tmp_path):
    sparse = _sparse_disk(tmp_path)
    size = os.path.getsize(sparse)
    with open(sparse, "rb") as f:
        extents = list(data_extents(f.fileno(), size))
        holes = FileHoles(f.fileno(), size)
        rng = random.Random(3)
        starts = sorted(rng.randrange(size) for _ in range(300))
        # mostly increasing, as capture asks, with steps back (prefetch)
        for k, start in enumerate(starts):
            if k % 5 == 4:
                start = starts[max(0, k - 3)]
            end = min(size, start + rng.choice([512, 64 * KiB, 4 * MiB]))
            want = [(max(a, start), min(b, end)) for a, b in extents
                    if a < end and b > start]
            assert holes.data_in(start, end) == want, (start, end)


def test_a_sample_decides_only_where_it_can():
    rng = random.Random(5)
    compressor = Compressor("lz4")
    chunk = rng.randbytes(4 * MiB)
    assert compressor(chunk)[0] == CODEC_NONE
    # text where the sample looks: compressed, as the whole trial says
    mixed = bytearray(chunk)
    mixed[:MiB] = (b"the quick brown fox " * (MiB // 20 + 1))[:MiB]
    assert compressor(bytes(mixed))[0] == CODEC_LZ4
    # 32 KiB of zeros between two sample pieces: the sample is random,
    # the zero run sends the chunk to the whole trial, which shrinks it
    zeros = bytearray(chunk)
    at = 10 * (len(chunk) // 64) + 2 * SAMPLE_PIECE
    zeros[at:at + 32 * KiB] = bytes(32 * KiB)
    codec, stored, _ = compressor(bytes(zeros))
    assert codec == CODEC_LZ4 and len(stored) < len(zeros)
