"""The FAT shrink (diskimage.fs.fat.shrink) under an adversary's review:
volumes made by mkfs.fat and mtools with a directory tree placed high
(fillers written, the tree written, the fillers deleted), then edited by
hand where mtools cannot make the case (bad clusters, FAT32's reserved high
bits, FSInfo without counts or absent), shrunk, and checked by fsck.fat -n,
every file's sha256 and the recursive listing `mdir -/ -a` (names, sizes,
timestamps) unchanged.  Hostile FAT12, FAT16 and FAT32 volumes (chains that loop, cross-link or
leave the volume, entries naming clusters out of range, a directory chain
that loops) are refused with FatShrinkError and stay byte for byte as they
were."""

import hashlib
import os
import re
import struct

import pytest

from diskimage.fs.fat import chains as fatchains
from diskimage.fs.fat import shrink as fatshrink
from diskimage.fs.fat.used import Volume
from tests.fsbuild import mtools, write_file
from tests.fsmaps import KiB, MiB, check_fs, run

pytestmark = pytest.mark.needs("mkfs.fat", "fsck.fat", "mcopy", "mdir",
                               "mshowfat", "mdel", "mmd")

BAD = {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}


def layout(image):
    """The boot sector's geometry as a dict (fatgen103 offsets)."""
    with open(image, "rb") as f:
        boot = f.read(512)
    bps, spc, rsvd, nfats, roots, tot16 = struct.unpack_from("<HBHBHH",
                                                             boot, 11)
    fat16, = struct.unpack_from("<H", boot, 22)
    hidden, tot32 = struct.unpack_from("<II", boot, 28)
    fat = fat16 or struct.unpack_from("<I", boot, 36)[0]
    root_bytes = roots * 32
    data = (rsvd + nfats * fat) * bps + root_bytes
    count = ((tot16 or tot32) * bps - data) // (bps * spc)
    bits = 12 if count <= 4084 else 16 if count <= 65524 else 32
    return dict(bps=bps, spc=spc, rsvd=rsvd, nfats=nfats, fat=fat,
                root=data - root_bytes, data=data, count=count, bits=bits,
                hidden=hidden, cluster=bps * spc)


def get_entry(image, geo, cluster, copy=0):
    with open(image, "rb") as f:
        f.seek((geo["rsvd"] + copy * geo["fat"]) * geo["bps"])
        fat = f.read(geo["fat"] * geo["bps"])
    return fatchains._decode(fat, geo["bits"], geo["count"] + 2)[cluster]


def set_entry(image, geo, cluster, value):
    """FAT entry `cluster` set to `value` in every FAT copy."""
    with open(image, "r+b") as f:
        for copy in range(geo["nfats"]):
            at = (geo["rsvd"] + copy * geo["fat"]) * geo["bps"]
            f.seek(at)
            fat = bytearray(f.read(geo["fat"] * geo["bps"]))
            table = fatchains._decode(bytes(fat), geo["bits"],
                                      geo["count"] + 2)
            table[cluster] = value
            f.seek(at)
            f.write(fatchains.encode(table, geo["bits"], len(fat)))


def fewer_free(image, n):
    """FAT32: FSInfo's free count (byte 488 of sector BPB_FSInfo and of
    its backup) lowered by `n`, for clusters marked bad by hand."""
    with open(image, "r+b") as f:
        f.seek(48)
        fsinfo, backup = struct.unpack("<HH", f.read(4))
        for sector in (fsinfo, backup + fsinfo):
            f.seek(sector * 512 + 488)
            free, = struct.unpack("<I", f.read(4))
            f.seek(sector * 512 + 488)
            f.write(struct.pack("<I", free - n))


def chain_of(image, path):
    out = mtools("mshowfat", "-i", image, path)
    numbers = []
    for lo, hi in re.findall(r"<(\d+)(?:-(\d+))?>", out):
        numbers += range(int(lo), int(hi or lo) + 1)
    return numbers


def listing(image):
    """Names, sizes and times of the whole tree (the free bytes left out:
    a shrink changes them)."""
    out = mtools("mdir", "-/", "-a", "-i", image, "::/")
    return re.sub(r".*bytes free\n", "", out)


def sha(image):
    with open(image, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fsck_clean(image):
    done = run("fsck.fat", "-n", image, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


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


def directory_entry(image, geo, directory, name):
    """Byte offset of the 8.3 `name` (11 bytes) in the directory whose
    clusters are `directory` (None: the FAT12/16 root region)."""
    with open(image, "rb") as f:
        places = [(geo["root"], geo["data"] - geo["root"])] if \
            directory is None else \
            [(geo["data"] + (c - 2) * geo["cluster"], geo["cluster"])
             for c in directory]
        for at, length in places:
            f.seek(at)
            data = f.read(length)
            for off in range(0, length, 32):
                if data[off:off + 11] == name:
                    return at + off
    raise AssertionError(f"{name} not found")


def entries(image, geo, directory):
    """The 32-byte entries of the directory on clusters `directory`."""
    out = []
    with open(image, "rb") as f:
        for c in directory:
            f.seek(geo["data"] + (c - 2) * geo["cluster"])
            data = f.read(geo["cluster"])
            out += [data[i:i + 32] for i in range(0, len(data), 32)]
    return out


def deleted(image, geo, directory):
    return [e for e in entries(image, geo, directory) if e[0] == 0xE5]


def first_cluster(image, at):
    with open(image, "rb") as f:
        f.seek(at)
        entry = f.read(32)
    return struct.unpack_from("<H", entry, 26)[0] | \
        struct.unpack_from("<H", entry, 20)[0] << 16


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


def geo_root(image):
    with open(image, "rb") as f:
        f.seek(44)
        return struct.unpack("<I", f.read(4))[0]


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


# --- hostile volumes ----------------------------------------------------------
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
