"""ImageView: random access to the disk an image holds, reading only the
chunks asked for."""

import hashlib
import os
import subprocess

import pytest

import demodisk
from diskimage.errors import InputError
from diskimage.image.view import ImageView
from diskimage.image.reader import ImageReader
from diskimage.fs.read import Filesystem

from tests.imgx_helpers import capture_disk

GiB = 1 << 30


def test_view_reads_the_disk_bytes_with_holes_and_gaps_as_zeros(tmp_path):
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
        f.seek(5 << 20)
        f.write(os.urandom(3 << 20))      # data across a chunk boundary
        f.seek(40 << 20)
        f.write(b"tail" * 1000)
    image = tmp_path / "disk.rdi"
    capture_disk(disk, image)
    raw = disk.read_bytes()
    with ImageReader(str(image)) as reader:
        view = ImageView(reader, 0, len(raw), cache_chunks=2)
        for offset, size in ((0, 100), ((5 << 20) - 7, 1 << 20),
                             ((8 << 20) - 3, 10), (40 << 20, 5000),
                             (len(raw) - 10, 100), (123, 0)):
            view.seek(offset)
            assert view.read(size) == raw[offset:offset + size]
        sub = ImageView(reader, 5 << 20, 1 << 20)
        assert sub.read() == raw[5 << 20:6 << 20]
        with pytest.raises(InputError):
            ImageView(reader, len(raw) - 10, 100)


def test_one_small_file_of_a_4_gib_disk_reads_a_small_fraction(tmp_path):
    """A 4 GiB disk with one ext4 filesystem holding ~300 MiB of files:
    reading one small file reads a small part of the image."""
    tree = tmp_path / "tree"
    digests = demodisk.make_tree(tree, 400, seed=5, max_size=1 << 20)
    disk = tmp_path / "big.img"
    with open(disk, "wb") as f:
        f.truncate(4 * GiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", tree, disk], check=True)
    image = tmp_path / "big.rdi"
    capture_disk(disk, image)
    image_size = image.stat().st_size
    assert image_size > 100 << 20
    small = next(rel for rel in sorted(digests)
                 if 0 < (tree / rel).stat().st_size < 64 << 10)
    with ImageReader(str(image)) as reader:
        before = reader.source.bytes_read      # header, metadata, index
        area = reader.metadata["areas"][0]
        fs = Filesystem(ImageView(reader, area["start"], area["size"]),
                        area["filesystem"], "big")
        data = fs.read(fs.lookup(small))
        read = reader.source.bytes_read - before
    assert hashlib.sha256(data).hexdigest() == digests[small]
    print(f"read {read} of {image_size} image bytes")
    assert read < image_size * 0.05, (read, image_size)
