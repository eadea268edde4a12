"""Seeds of the filesystem fuzz targets (ext, fat, exfat, ntfs, xfs, btrfs,
lvm, imgx): real volumes made by the field's tools with a few files, cut
down to what the readers read.

    .venv/bin/python -m tests.fuzz.seeds_fs [CORPUS_DIR]   (root: loop
                                                          mounts, FUSE)

Each volume is made at a real size (XFS's least, 300 MiB, too), then read
once by the target through a tracing reader; the seed keeps only the
512-byte sectors that were read and are not all zero, as a sparse volume
(tests/fuzz/fsvolume.py) of the volume's real size whose kind hint is the
volume's kind.  So a seed is a few KiB to a few hundred KiB, the corpus a
few MiB, and atheris mutates superblocks, bitmaps, FATs, MFT records,
btree nodes and directory blocks rather than file data or free space.
Rerunnable: the seeds are rewritten (their names are the volume's), the
entries atheris added are kept.
"""

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from diskimage.fs import read
from tests.fuzz import fsvolume
from tests.fuzz.targets import imgx

KiB, MiB = 1 << 10, 1 << 20
SECTOR = 512
CORPUS = Path(__file__).resolve().parent / "corpus"


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True,
                          capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, **kw)


def tree(root):
    """A few files, directories, a symlink and a hard link: what imgx
    walks and reads."""
    root = Path(root)
    (root / "etc" / "conf.d").mkdir(parents=True)
    (root / "home" / "user").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("seed\n")
    (root / "etc" / "conf.d" / "a.conf").write_text("x = 1\n" * 40)
    (root / "home" / "user" / "notes.txt").write_bytes(b"n" * 5000)
    (root / "home" / "user" / "blob.bin").write_bytes(
        random.Random(16).randbytes(20 * KiB))
    (root / "README").write_text("seed volume\n")
    return root


def links(root):
    root = Path(root)
    os.symlink("etc/hostname", root / "hostname.link")
    os.symlink("/home/user", root / "user.link")
    os.link(root / "README", root / "README.hard")


def blank(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


# --- the volumes: name -> (kind, maker(tmp) -> image path) -----------------
def ext(version, size, *options):
    def make(tmp):
        src = tree(tmp / "src")
        links(src)
        image = blank(tmp / "ext.img", size)
        run("mke2fs", "-q", "-F", "-t", version, *options, "-L", "seed",
            "-d", src, image)
        return image
    return make


def fat(bits, size_kib, *options):
    def make(tmp):
        image = tmp / "fat.img"
        run("mkfs.fat", "-C", "-F", bits, "-n", "SEED", *options, image,
            size_kib)
        src = tree(tmp / "src")
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        for item in sorted(src.iterdir()):
            run("mcopy", "-s", "-Q", "-i", image, item, "::/", env=env)
        return image
    return make


def exfat(tmp):
    from tests.fsbuild import exfat_mounted
    image = blank(tmp / "exfat.img", 8 * MiB)
    run("mkfs.exfat", "-L", "seed", image)
    with exfat_mounted(image, tmp / "mnt") as mnt:
        tree(Path(mnt) / "data")
    return image


def ntfs(tmp):
    from tests.fsbuild import ntfs_mounted
    image = blank(tmp / "ntfs.img", 16 * MiB)
    run("mkntfs", "-q", "-F", "-Q", "-L", "seed", image)
    with ntfs_mounted(image, tmp / "mnt") as mnt:
        links(tree(mnt))
    run("sync")
    return image


def protofile(root, depth=0):
    """mkfs.xfs -p's description of the tree at `root` (no hard links):
    an XFS filled without a mount keeps an empty log, and a seed of a few
    KiB (a mount leaves 2 MiB of log records the log check reads)."""
    lines = ["/dev/null", "0 0", "d--755 0 0"] if not depth else []
    for item in sorted(Path(root).iterdir()):
        if item.is_symlink():
            lines.append(f"{item.name} l--777 0 0 {os.readlink(item)}")
        elif item.is_dir():
            lines.append(f"{item.name} d--755 0 0")
            lines.extend(protofile(item, depth + 1))
        elif item.name != "README.hard":
            lines.append(f"{item.name} ---644 0 0 {item}")
    lines.append("$")
    return lines


def xfs(tmp):
    src = tree(tmp / "src")
    links(src)
    proto = tmp / "proto"
    proto.write_text("\n".join(protofile(src)) + "\n")
    image = blank(tmp / "xfs.img", 300 * MiB)
    run("mkfs.xfs", "-q", "-f", "-L", "seed", "-p", proto, image)
    return image


def btrfs(tmp):
    src = tree(tmp / "src")
    links(src)
    image = blank(tmp / "btrfs.img", 128 * MiB)
    run("mkfs.btrfs", "-q", "-f", "-L", "seed", "--rootdir", src, image)
    return image


def lvm(tmp):
    """A PV with an ext4 LV (the seed tree, by mke2fs -d: a few files, so
    the imgx seed stays small) and a swap LV."""
    from tests.lvmbuild import make_pv
    pv = make_pv(tmp, 24, [("root", 12, None), ("swap", 4, None)])
    image = Path(pv.image)
    src = tree(tmp / "src")
    for name, make in (("root", ("mke2fs", "-q", "-F", "-t", "ext4", "-d",
                                 src)),
                       ("swap", ("mkswap", "-L", "seedswap"))):
        (offset, size), = pv.lvs[name].places
        part = blank(tmp / f"{name}.img", size)
        run(*make, part)
        with open(image, "r+b") as f:
            f.seek(offset)
            f.write(part.read_bytes())
    return image


def swap(tmp):
    image = blank(tmp / "swap.img", 1 * MiB)
    run("mkswap", "-L", "seed", image)
    return image


VOLUMES = {
    "ext": {"ext2": ext("ext2", 4 * MiB, "-b", "1024"),
            "ext3": ext("ext3", 8 * MiB),
            "ext4": ext("ext4", 16 * MiB, "-O", "metadata_csum"),
            "ext4+inline": ext("ext4", 16 * MiB, "-O", "inline_data")},
    "fat": {"fat12": fat("12", 1440), "fat16": fat("16", 16 * 1024),
            "fat32": fat("32", 40 * 1024, "-s", "1")},
    "exfat": {"exfat": exfat},
    "ntfs": {"ntfs": ntfs},
    "xfs": {"xfs": xfs},
    "btrfs": {"btrfs": btrfs},
    "lvm": {"LVM2_member": lvm, "swap": swap},
}


# --- tracing ---------------------------------------------------------------
class Traced:
    """A volume file read through read(offset, length) or as a file
    object, every range read remembered."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.size = os.path.getsize(path)
        self.ranges = []
        self.at = 0

    def read(self, offset, length):
        length = max(0, min(length, self.size - offset))
        self.ranges.append((offset, length))
        return os.pread(self.f.fileno(), length, offset)

    def file(self):
        return fsvolume.VolumeFile(self)


def sparse(path, ranges, kind):
    """The seed: the non-zero sectors of `ranges` of the volume at
    `path`."""
    sectors = set()
    for offset, length in ranges:
        sectors.update(range(offset // SECTOR,
                             (offset + length + SECTOR - 1) // SECTOR))
    pieces = []
    with open(path, "rb") as f:
        for sector in sorted(sectors):
            data = os.pread(f.fileno(), SECTOR, sector * SECTOR)
            if not data.strip(b"\0"):
                continue
            if pieces and pieces[-1][0] + len(pieces[-1][1]) == \
                    sector * SECTOR:
                pieces[-1] = (pieces[-1][0], pieces[-1][1] + data)
            else:
                pieces.append((sector * SECTOR, data))
    return fsvolume.pack(os.path.getsize(path), pieces, kind)


def summary(read, size, kind):
    from diskimage.fs import registry
    used = registry.used_map(read, 0, size, kind)
    return used.describe(), list(used.runs)


def same(real, seed, kind):
    """The seed maps as the real volume does (nothing it needs was left
    out): else the seed would fuzz another path than the real one."""
    if summary(real.read, real.size, kind) != \
            summary(seed.read, seed.size, kind):
        raise AssertionError(f"the {kind} seed maps otherwise than its "
                             f"volume")


def write(corpus, target, name, data):
    folder = corpus / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{name}").write_bytes(data)
    print(f"{target}/seed-{name}: {len(data)} bytes", file=sys.stderr)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    corpus = Path(argv[0]) if argv else CORPUS
    for target, volumes in VOLUMES.items():
        for name, make in volumes.items():
            kind = name.split("+")[0]      # "ext4+inline": a variant
            with tempfile.TemporaryDirectory() as tmp:
                image = make(Path(tmp))
                traced = Traced(image)
                fsvolume.map_volume(traced.read, traced.size, kind)
                seed = sparse(image, traced.ranges, kind)
                same(traced, fsvolume.Volume(seed), kind)
                write(corpus, target, name, seed)
                traced.f.close()
                if not read.browsable(kind):
                    continue                # swap: imgx does not read it
                traced = Traced(image)
                imgx.browse(traced.file(), kind)
                write(corpus, "imgx", name, sparse(image, traced.ranges,
                                                   kind))
                traced.f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
