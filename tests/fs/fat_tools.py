"""Reading and editing FAT volumes by hand for the shrink's tests
(test_fatshrink_review.py, test_fatshrink_hostile.py): the boot sector's
geometry (fatgen103 offsets), FAT entries in every copy, directory entries,
mshowfat's chains, mdir's listing, fsck.fat -n."""

import hashlib
import re
import struct

from diskimage.fs.fat import chains as fatchains
from tests.fsbuild import mtools
from tests.fsmaps import run

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


def geo_root(image):
    """FAT32: BPB_RootClus (byte 44, 4 bytes)."""
    with open(image, "rb") as f:
        f.seek(44)
        return struct.unpack("<I", f.read(4))[0]
