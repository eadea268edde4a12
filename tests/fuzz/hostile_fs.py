"""Regression inputs of the filesystem fuzz targets that were made by hand
(a real volume, then the bytes a finding needs), rather than found by
atheris: each is written to tests/fuzz/crashes/<target>/ as the sparse
volume of the sectors the target reads (tests/fuzz/seeds_fs.py), and
replayed by test_replay.py with the others.

    .venv/bin/python -m tests.fuzz.hostile_fs [CRASHES_DIR]

Each entry: (target, name, kind, maker(tmp) -> image, patch(image)).
"""

import re
import struct
import sys
import tempfile
from pathlib import Path

from diskimage.errors import DiskImageError
from tests.fuzz import fsvolume
from tests.fuzz.seeds_fs import Traced, exfat, fat, run, sparse
from tests.fuzz.targets import imgx

CRASHES = Path(__file__).resolve().parent / "crashes"


def first_cluster(image, path):
    """The first cluster of a FAT file or directory, as mshowfat shows."""
    out = run("mshowfat", "-i", image, f"::{path}",
              env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}).stdout
    return int(re.search(r"<(\d+)", out).group(1))


def fat_entry(image, cluster, value, bits):
    """Set the FAT entry of `cluster` in every FAT."""
    with open(image, "r+b") as f:
        bps, spc, reserved, fats = struct.unpack("<HBHB", f.read(17)[11:17])
        f.seek(22)
        size16, = struct.unpack("<H", f.read(2))
        f.seek(36)
        size32, = struct.unpack("<I", f.read(4))
        for n in range(fats):
            base = (reserved + n * (size16 or size32)) * bps
            f.seek(base + cluster * bits // 8)
            f.write(struct.pack("<H" if bits == 16 else "<I", value))


def fat_many(bits, size_kib, *options):
    """seeds_fs.fat with a directory /many of 60 long names: its first
    cluster is full, so a loop in its chain never meets an end entry."""
    make = fat(bits, size_kib, *options)

    def make_many(tmp):
        image = make(tmp)
        src = tmp / "many"
        src.mkdir()
        for i in range(60):
            (src / f"a long file name {i:02d}.txt").write_text(f"{i}\n")
        run("mcopy", "-s", "-Q", "-i", image, src, "::/",
            env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
        return image
    return make_many


def dir_loop(bits, path):
    def patch(image):
        cluster = first_cluster(image, path)
        fat_entry(image, cluster, cluster, bits)
    return patch


def exfat_root_loop(image):
    """The exFAT root directory's FAT entry pointing at itself."""
    with open(image, "r+b") as f:
        head = f.read(512)
        fat_offset, = struct.unpack_from("<I", head, 80)
        root, = struct.unpack_from("<I", head, 96)
        f.seek((fat_offset << head[108]) + 4 * root)
        f.write(struct.pack("<I", root))


HOSTILE = [
    # dissect.fat followed a looping directory chain forever (imgx ls).
    ("imgx", "fat16-dir-chain-loop", "fat16", fat_many("16", 16 * 1024),
     dir_loop(16, "/many")),
    ("imgx", "fat32-dir-chain-loop", "fat32",
     fat_many("32", 40 * 1024, "-s", "1"), dir_loop(32, "/many")),
    # dissect.fat's exFAT reader: a root directory chain that loops took
    # all memory when the volume was opened.
    ("imgx", "exfat-root-chain-loop", "exfat", exfat, exfat_root_loop),
    # ... and a file's reads (imgx cat) over a looping chain.
    ("imgx", "fat16-file-chain-loop", "fat16", fat("16", 16 * 1024),
     dir_loop(16, "/home/user/blob.bin")),
]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    crashes = Path(argv[0]) if argv else CRASHES
    for target, name, kind, make, patch in HOSTILE:
        with tempfile.TemporaryDirectory() as tmp:
            image = make(Path(tmp))
            patch(image)
            traced = Traced(image)
            try:
                if target == "imgx":
                    imgx.browse(traced.file(), kind)
                else:
                    fsvolume.map_volume(traced.read, traced.size, kind)
            except DiskImageError:
                pass                        # what the fix now says
            traced.f.close()
            folder = crashes / target
            folder.mkdir(parents=True, exist_ok=True)
            data = sparse(image, traced.ranges, kind)
            (folder / f"hostile-{name}").write_bytes(data)
            print(f"{target}/hostile-{name}: {len(data)} bytes",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
