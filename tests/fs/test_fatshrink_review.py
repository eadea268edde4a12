"""The FAT shrink (diskimage.fs.fat.shrink) under an adversary's review:
volumes made by mkfs.fat and mtools with a directory tree placed high
(fillers written, the tree written, the fillers deleted), then edited by
hand where mtools cannot make the case (bad clusters, FAT32's reserved high
bits, FSInfo without counts or absent, a deleted entry naming a moved
cluster), shrunk, and checked by fsck.fat -n, every file's sha256 and the
recursive listing `mdir -/ -a` (names, sizes, timestamps) unchanged.
Hostile volumes: test_fatshrink_hostile.py."""

import os
import re
import struct

import pytest

from diskimage.fs.fat import chains as fatchains
from diskimage.fs.fat import shrink as fatshrink
from diskimage.fs.fat.used import Volume
from tests.fs.fat_tools import (BAD, chain_of, deleted, directory_entry,
                                fewer_free, first_cluster, fsck_clean,
                                geo_root, get_entry, layout, listing,
                                set_entry)
from tests.fsbuild import mtools, write_file
from tests.fsmaps import KiB, MiB, check_fs, run

pytestmark = pytest.mark.needs("mkfs.fat", "fsck.fat", "mcopy", "mdir",
                               "mshowfat", "mdel", "mmd")


def high_tree(tmp_path, bits, size_kib, spc, *options, fill=64 * KiB):
    """A volume whose tree sits past its middle: fillers first, then
    /hi (70 long names: a directory of several clusters), /hi/sub/deep,
    an empty file (cluster 0), a deleted file (0xE5 and LFN entries left
    behind), then the fillers deleted.  Returns (image, digests)."""
    image = tmp_path / "fs.img"
    run("mkfs.fat", "-C", "-F", bits, "-s", spc, "-n", "REVIEW", *options,
        image, size_kib)
    src, digests = tmp_path / "src", {}
    free = int(re.search(r"([\d ]+) bytes free", mtools(
        "mdir", "-i", image, "::/")).group(1).replace(" ", ""))
    count = (free * 6 // 10) // fill
    for i in range(count):
        write_file(src, f"fill/f{i:04d}.bin", os.urandom(fill), {})
    mtools("mcopy", "-s", "-Q", "-i", image, src / "fill", "::/")
    for i in range(70):
        write_file(src, f"hi/a rather long file name number {i:02d}.txt",
                   os.urandom(i * 97 % 3000 + 1), digests)
    for i in range(5):
        write_file(src, f"hi/sub/deep/deeper file {i}.bin",
                   os.urandom(5000 + i), digests)
    write_file(src, "hi/sub/The Gone File.txt", b"gone", {})
    write_file(src, "hi/empty.txt", b"", digests)
    mtools("mcopy", "-s", "-Q", "-m", "-i", image, src / "hi", "::/")
    mtools("mdel", "-i", image, "::/hi/sub/The Gone File.txt")
    mtools("mdel", "-i", image, *[f"::/fill/f{i:04d}.bin"
                                  for i in range(count)])
    return image, digests


# (bits, KiB, sectors per cluster, mkfs options, target bytes)
CASES = {
    "fat12": (12, 4000, 2, ["-h", "63"], 2 * MiB),
    "fat12-one-sector-cluster": (12, 2000, 1, ["-h", "2048"], 1200 * KiB),
    "fat16": (16, 24 * 1024, 4, ["-h", "2048"], 12 * MiB),
    "fat32": (32, 72 * 1024, 1, ["-h", "2048"], 40 * MiB),
}


@pytest.mark.parametrize("name", CASES)
def test_moved_tree_with_bad_clusters_keeps_every_name_size_and_time(
        tmp_path, name):
    """Directories of several clusters move (and their subdirectories'
    "." and ".." follow), deleted and LFN entries and the volume label are
    left alone, the empty file keeps cluster 0, bad clusters below the new
    end stay bad, those past it go; hidden sectors unchanged."""
    bits, size_kib, spc, options, target = CASES[name]
    image, digests = high_tree(tmp_path, bits, size_kib, spc, *options)
    geo = layout(image)
    assert geo["bits"] == bits
    new_end = (target - geo["data"]) // geo["cluster"] + 2
    hi = chain_of(image, "::/hi")
    assert len(hi) >= 3 and max(hi) >= new_end, hi   # it has to move
    free = [c for c in range(2, geo["count"] + 2)
            if get_entry(image, geo, c) == 0]
    low_bad = next(c for c in free if c > 40)
    high_bad = [c for c in free if c > new_end][-1]
    for c in (low_bad, high_bad):
        set_entry(image, geo, c, BAD[bits])
    if bits == 32:
        fewer_free(image, 2)
    # the deleted file's entry names a cluster that moves (its space
    # reused since): it must not be rewritten, nor its long-name entries
    sub = chain_of(image, "::/hi/sub")
    gone = [e for e in deleted(image, geo, sub) if e[11] != 0x0F]
    assert len(gone) == 1 and len(deleted(image, geo, sub)) >= 2
    at = directory_entry(image, geo, sub, gone[0][:11])
    with open(image, "r+b") as f:
        f.seek(at + 20)
        f.write(struct.pack("<H", max(hi) >> 16))
        f.seek(at + 26)
        f.write(struct.pack("<H", max(hi) & 0xFFFF))
    gone = deleted(image, geo, sub)
    before, used_before = listing(image), fsck_clean(image)
    reached = fatshrink.shrink(str(image), target)
    os.truncate(image, reached)
    out = fsck_clean(image)
    assert re.search(r"(\d+)/", out).group(1) == \
        re.search(r"(\d+)/", used_before).group(1)
    assert "REVIEW" in before and listing(image) == before
    check_fs(image, 0, reached, f"fat{bits}", digests)
    after = layout(image)
    assert after["hidden"] == geo["hidden"]
    assert after["fat"] < geo["fat"]
    assert max(chain_of(image, "::/hi")) < after["count"] + 2
    assert get_entry(image, after, low_bad) == BAD[bits]
    # "." and ".." of the moved subdirectories name the moved clusters
    sub = chain_of(image, "::/hi/sub")
    assert deleted(image, after, sub) == gone
    hi_now = chain_of(image, "::/hi")
    dot = directory_entry(image, after, sub, b".          ")
    dotdot = directory_entry(image, after, sub, b"..         ")
    assert first_cluster(image, dot) == sub[0]
    assert first_cluster(image, dotdot) == hi_now[0]
    # the root's child names 0 in "..", on FAT32 too
    assert first_cluster(image, directory_entry(
        image, after, hi_now, b"..         ")) == 0
    empty = directory_entry(image, after, hi_now, b"EMPTY   TXT")
    assert first_cluster(image, empty) == 0


def test_fat12_entries_round_trip_at_odd_clusters_and_sector_edges(tmp_path):
    """The 12-bit packing: a filled FAT12's FAT decodes and encodes back
    byte for byte (entries 341 and 682 straddle sectors 0/1 and 1/2)."""
    image, _ = high_tree(tmp_path, 12, 2000, 1, fill=16 * KiB)
    geo = layout(image)
    assert geo["count"] > 700
    with open(image, "rb") as f:
        f.seek(geo["rsvd"] * geo["bps"])
        raw = f.read(geo["fat"] * geo["bps"])
    table = fatchains._decode(raw, 12, geo["count"] + 2)
    assert fatchains.encode(table, 12, len(raw)) == raw
    for c in (341, 682):
        pos = c + (c >> 1)
        assert pos % 512 in (510, 511)
        assert table[c] == (raw[pos] | raw[pos + 1] << 8) >> (4 * (c & 1)) \
            & 0xFFF


def fat32_high(tmp_path):
    return high_tree(tmp_path, 32, 72 * 1024, 1, "-h", "2048")


def test_fat32_reserved_high_bits_are_kept(tmp_path):
    """The top 4 bits of FAT32 entries are not the chain's: an entry the
    shrink leaves (the root's), one it rewrites (/hi's first cluster, which
    stays but links to a moved one: the new end is cut inside /hi's chain)
    and one it moves (/hi's last) keep them."""
    image, digests = fat32_high(tmp_path)
    geo = layout(image)
    hi = chain_of(image, "::/hi")
    assert len(hi) >= 3 and hi[0] < hi[1]
    with open(image, "rb") as f:
        volume = Volume(lambda o, n: os.pread(f.fileno(), n, o),
                        os.path.getsize(image), f.read(512))
        # the largest target whose new end falls after hi[0], before hi[1]
        target = next(s for s in range(geo["data"] + hi[1] * 512, 0, -512)
                      if fatshrink.geometry(volume, s)[2] + 2 <= hi[1])
    assert fatshrink.geometry(volume, target)[2] + 2 > hi[0]
    marks = [geo_root(image), hi[0], hi[-1]]
    for c in marks:
        set_entry(image, geo, c, get_entry(image, geo, c) | 0xA0000000)
    fsck_clean(image)
    reached = fatshrink.shrink(str(image), target)
    os.truncate(image, reached)
    check_fs(image, 0, reached, "fat32", digests)
    after = layout(image)
    now = chain_of(image, "::/hi")
    assert now[0] == hi[0] and now[1] < hi[0]
    for c in (marks[0], now[0], now[-1]):
        assert get_entry(image, after, c) >> 28 == 0xA, c


@pytest.mark.parametrize("how", ["unknown counts", "no FSInfo"])
def test_fat32_fsinfo_unknown_or_absent(tmp_path, how):
    """FSInfo with 0xFFFFFFFF counts stays 'unknown'; BPB_FSInfo 0
    (none): nothing is written there."""
    image, digests = fat32_high(tmp_path)
    with open(image, "r+b") as f:
        f.seek(48)
        fsinfo, = struct.unpack("<H", f.read(2))
        for sector in (0, 6):
            if how == "no FSInfo":
                f.seek(sector * 512 + 48)
                f.write(b"\0\0")
            else:
                f.seek((sector + fsinfo) * 512 + 488)
                f.write(b"\xff" * 8)
        f.seek(fsinfo * 512)
        info = f.read(512)
    fsck_clean(image)
    reached = fatshrink.shrink(str(image), 40 * MiB)
    os.truncate(image, reached)
    check_fs(image, 0, reached, "fat32", digests)
    with open(image, "rb") as f:
        f.seek(fsinfo * 512)
        now = f.read(512)
    if how == "no FSInfo":
        assert now == info
    else:
        assert now[488:496] == b"\xff" * 8


def test_fats_one_sector_shorter(tmp_path):
    """A target where each FAT12 FAT loses exactly one sector (step 1:
    one-sector clusters): the root and data move down 2 sectors."""
    image, digests = high_tree(tmp_path, 12, 2000, 1, fill=16 * KiB)
    geo = layout(image)
    with open(image, "rb") as f:
        head = f.read(512)
        volume = Volume(lambda o, n: os.pread(f.fileno(), n, o),
                        os.path.getsize(image), head)
        size = next(s for s in range(geo["count"] * 512, 0, -512)
                    if fatshrink.geometry(volume, s)[1] == geo["fat"] - 1)
    before = listing(image)
    reached = fatshrink.shrink(str(image), size)
    os.truncate(image, reached)
    fsck_clean(image)
    assert layout(image)["fat"] == geo["fat"] - 1
    assert listing(image) == before
    check_fs(image, 0, reached, "fat12", digests)
