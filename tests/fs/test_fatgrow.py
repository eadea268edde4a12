"""diskimage.fs.fat.grow on FAT volumes made by mkfs.fat and filled by mtools
(a tree, every other filler deleted, a fragmented file in the holes): after
a grow fsck.fat -n is clean (it also checks FSInfo's free count and that the
FAT copies agree), every file's digest matches, and the sizes are read back
with mtools' minfo and fsck.fat, not with our own parser."""

import os
import re

import pytest

from diskimage.fs.fat import grow as fatgrow
from diskimage.fs.usedmap import MapError
from tests.fsbuild import fat_bytes, make_fat
from tests.fsmaps import MiB, check_fs, run

pytestmark = pytest.mark.needs("mkfs.fat", "fsck.fat", "mcopy", "minfo",
                               "losetup")
KiB = 1024


def clusters(image):
    """(used, total) clusters as fsck.fat counts them."""
    out = run("fsck.fat", "-n", image).stdout
    used, total = re.search(r"(\d+)/(\d+) clusters", out).groups()
    return int(used), int(total)


@pytest.mark.parametrize("bits, size_kib, options, piece, grown", [
    (32, 40 * KiB, ["-s", "1"], 16 * KiB, 160 * MiB),
    # mtools needs 65525 clusters or more on FAT32: 4 KiB clusters make
    # these two larger, and their fillers (every other one deleted) larger
    (32, 272 * KiB, ["-S", "4096", "-s", "1"], 256 * KiB, 400 * MiB),
    (32, 272 * KiB, ["-s", "8"], 256 * KiB, 320 * MiB + 123 * 512),
    (16, 20 * KiB, ["-s", "4"], 16 * KiB, 60 * MiB)],
    ids=["fat32-512", "fat32-4k-sectors", "fat32-4k-clusters", "fat16"])
def test_grown_volume_is_clean_and_holds_every_file(tmp_path, bits,
                                                    size_kib, options, piece,
                                                    grown):
    image, digests = make_fat(tmp_path, bits, size_kib, *options,
                              piece=piece)
    used_before, total_before = clusters(image)
    with open(image, "r+b") as f:
        f.truncate(grown)
    reached = fatgrow.grow(str(image), grown)
    assert reached == fat_bytes(image)
    sector = 4096 if "4096" in options else 512
    assert grown - 8 * sector < reached <= grown
    used, total = clusters(image)
    assert used == used_before and total > total_before
    check_fs(image, 0, grown, f"fat{bits}", digests)
    # grown once more into the same space: nothing to do
    assert fatgrow.grow(str(image), grown) == reached
    assert clusters(image) == (used, total)


@pytest.mark.parametrize("bits, size_kib, options, limit", [
    (12, 1440, [], 4084),
    (16, 16 * KiB, ["-s", "1"], 65524)],
    ids=["fat12-floppy", "fat16-512b-clusters"])
def test_fat12_and_fat16_stop_at_their_cluster_limit(tmp_path, bits,
                                                     size_kib, options,
                                                     limit):
    image, digests = make_fat(tmp_path, bits, size_kib, *options)
    big = 512 * MiB
    with open(image, "r+b") as f:
        f.truncate(big)
    reached = fatgrow.grow(str(image), big)
    assert reached < big
    _, total = clusters(image)
    assert total == limit
    assert reached == fat_bytes(image)
    os.truncate(image, reached)
    check_fs(image, 0, reached, f"fat{bits}", digests)


def test_a_damaged_boot_sector_is_refused_untouched(tmp_path):
    image, _ = make_fat(tmp_path, 32, 40 * KiB, "-s", "1")
    with open(image, "r+b") as f:
        f.seek(13)
        f.write(b"\x03")            # sectors per cluster: not a power of two
        f.truncate(80 * MiB)
    before = run("sha256sum", image).stdout
    with pytest.raises(MapError, match="sectors per cluster 3"):
        fatgrow.grow(str(image), 80 * MiB)
    assert run("sha256sum", image).stdout == before
