"""Hostile FAT12, FAT16 and FAT32 volumes for the shrink
(diskimage.fs.fat.shrink): chains that loop, cross-link, leave the volume
or run into a free cluster, an entry naming a cluster out of range, a
directory chain that loops, a directory naming its parent: each refused
with FatShrinkError before any byte is written (the volume's sha256
unchanged), never a hang or another exception."""

import os
import struct

import pytest

from diskimage.fs.fat import shrink as fatshrink
from tests.fs.fat_tools import (chain_of, directory_entry, geo_root, layout,
                                set_entry, sha)
from tests.fsbuild import mtools, write_file
from tests.fsmaps import MiB, run

pytestmark = pytest.mark.needs("mkfs.fat", "mcopy", "mshowfat")


SMALL = {12: (4000, 2, 2 * MiB), 16: (24 * 1024, 4, 12 * MiB),
         32: (72 * 1024, 1, 40 * MiB)}


def small_fat(tmp_path, bits):
    """A FAT of each type: /A.BIN and /B.BIN of 5 clusters, /D/E.BIN."""
    size_kib, spc, _ = SMALL[bits]
    image = tmp_path / "fs.img"
    run("mkfs.fat", "-C", "-F", bits, "-s", spc, image, size_kib)
    src = tmp_path / "src"
    for name in ("A.BIN", "B.BIN", "D/E.BIN"):
        write_file(src, name, os.urandom(5 * 512 * spc), {})
    mtools("mcopy", "-s", "-Q", "-i", image, src / "A.BIN", src / "B.BIN",
           src / "D", "::/")
    return image, layout(image)


def _loop(image, geo):
    a = chain_of(image, "::/A.BIN")
    set_entry(image, geo, a[-1], a[1])


def _cross(image, geo):
    a, b = chain_of(image, "::/A.BIN"), chain_of(image, "::/B.BIN")
    set_entry(image, geo, b[-1], a[2])


def _past_end(image, geo):
    set_entry(image, geo, chain_of(image, "::/A.BIN")[2], geo["count"] + 9)


def _into_free(image, geo):
    set_entry(image, geo, chain_of(image, "::/A.BIN")[2], geo["count"])


def _start_out_of_range(image, geo):
    root = [geo_root(image)] if geo["bits"] == 32 else None
    at = directory_entry(image, geo, root, b"B       BIN")
    past = geo["count"] + 40
    with open(image, "r+b") as f:
        if geo["bits"] == 32:
            f.seek(at + 20)
            f.write(struct.pack("<H", past >> 16))
        f.seek(at + 26)
        f.write(struct.pack("<H", past & 0xFFFF))


def _directory_loop(image, geo):
    d = chain_of(image, "::/D")
    set_entry(image, geo, d[-1], d[0])


def _directory_names_its_parent(image, geo):
    """/D/E.BIN turned into a directory entry naming /D itself."""
    d = chain_of(image, "::/D")
    at = directory_entry(image, geo, d, b"E       BIN")
    with open(image, "r+b") as f:
        f.seek(at + 11)
        f.write(b"\x10")
        f.seek(at + 26)
        f.write(struct.pack("<H", d[0]))


HOSTILE = {"chain loops": (_loop, "loop"),
           "cross-linked": (_cross, "cross-linked"),
           "points past the end": (_past_end, "not a cluster"),
           "runs into a free cluster": (_into_free, "not a cluster"),
           "start cluster out of range": (_start_out_of_range, "outside"),
           "directory chain loops": (_directory_loop, "loop"),
           "directory names its parent": (_directory_names_its_parent,
                                          "twice on one")}


@pytest.mark.parametrize("bits", SMALL)
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_volume_is_refused_untouched(tmp_path, case, bits):
    damage, reason = HOSTILE[case]
    image, geo = small_fat(tmp_path, bits)
    assert geo["bits"] == bits
    damage(image, geo)
    before = sha(image)
    with pytest.raises(fatshrink.FatShrinkError, match=reason):
        fatshrink.shrink(str(image), SMALL[bits][2])
    assert sha(image) == before
