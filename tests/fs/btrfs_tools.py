"""btrfs volumes for the map and round-trip tests, made and filled by
btrfs-progs and the kernel's driver, and what btrfs-progs says of them:
the used extents as device runs (dump-tree), the raw used bytes
(`btrfs filesystem usage -b`), the checker's verdict, every file's sha256
through a read-only mount (subvolumes and snapshots are directories of the
top-level subvolume, so one walk reads them all)."""

import contextlib
import hashlib
import os
import random
import re

from tests.fsbuild import fragmented_file, unmount, write_file
from tests.fsmaps import KiB, MiB, run

SIZE = 160 * MiB            # mkfs.btrfs here wants at least 114 MiB


@contextlib.contextmanager
def mounted(path, mountpoint, offset=0, size=None, options="ro"):
    """The btrfs at bytes [offset, offset+size) of `path` mounted through a
    loop device of its own (`losetup -o --sizelimit`)."""
    size = os.path.getsize(path) - offset if size is None else size
    os.makedirs(mountpoint, exist_ok=True)
    dev = run("losetup", "-f", "--show", "-o", offset, "--sizelimit", size,
              path).stdout.strip()
    try:
        run("mount", "-t", "btrfs", "-o", options, dev, mountpoint)
        try:
            yield mountpoint
        finally:
            unmount(mountpoint)
    finally:
        run("losetup", "-d", dev, check=False)


def digests(root):
    """{relative path: sha256} of every regular file under `root`."""
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(MiB), b""):
                    digest.update(block)
            found[os.path.relpath(path, root)] = digest.hexdigest()
    return found


def read_files(path, scratch, offset=0, size=None):
    with mounted(path, os.path.join(scratch, "ro"), offset, size) as mnt:
        return digests(mnt)


def check(path, offset=0, size=None):
    """(clean, output) of `btrfs check --readonly` on the volume."""
    size = os.path.getsize(path) - offset if size is None else size
    dev = run("losetup", "-f", "--show", "-r", "-o", offset, "--sizelimit",
              size, path).stdout.strip()
    try:
        done = run("btrfs", "check", "--readonly", dev, check=False)
    finally:
        run("losetup", "-d", dev, check=False)
    return done.returncode == 0, done.stdout + done.stderr


def make_btrfs(tmp_path, name="btrfs.img", size=SIZE, seed=3):
    """A btrfs volume (DUP metadata, single data: mkfs's defaults) holding a
    tree of plain files, a fragmented file written into the holes of
    deleted ones, a sparse file, zstd-compressed files, two subvolumes and
    a snapshot of one of them that then diverges, a symlink and a hard
    link.  Returns (image,
    {path: sha256}) as a read-only mount sees it."""
    image = tmp_path / name
    with open(image, "wb") as f:
        f.truncate(size)
    run("mkfs.btrfs", "-q", "-f", "-L", "golden", image)
    rng, files = random.Random(seed), {}
    mnt = tmp_path / "mnt"
    with mounted(image, mnt, options="rw") as root:
        for i in range(40):
            write_file(root, f"plain/f{i:02d}.bin",
                       rng.randbytes(rng.randrange(1, 90 * KiB)), files)
        fragmented_file(root, rng, files, piece=256 * KiB, share=0.5)
        for rel in [r for r in files if r.startswith("fill/")][::3]:
            os.unlink(os.path.join(root, rel))      # deleted after, too
            del files[rel]
        with open(os.path.join(root, "sparse.bin"), "wb") as f:
            f.truncate(8 * MiB)
            f.seek(5 * MiB)
            f.write(rng.randbytes(5000))
        run("mount", "-o", "remount,compress=zstd", root)
        run("btrfs", "subvolume", "create", os.path.join(root, "home"))
        run("btrfs", "subvolume", "create", os.path.join(root, "var"))
        log = b"".join(b"line %d of a compressible log\n" % i
                       for i in range(60000))
        write_file(root, "home/log.txt", log, files)
        write_file(root, "home/random.bin", rng.randbytes(300 * KiB), files)
        write_file(root, "var/cache.txt", log[:100000] * 3, files)
        run("btrfs", "subvolume", "snapshot", os.path.join(root, "home"),
            os.path.join(root, "snap"))
        write_file(root, "home/after.bin", rng.randbytes(70 * KiB), files)
        os.symlink("log.txt", os.path.join(root, "home/latest"))
        os.link(os.path.join(root, "home/after.bin"),
                os.path.join(root, "home/again.bin"))
        files["home/again.bin"] = files["home/after.bin"]
        os.unlink(os.path.join(root, "home/random.bin"))    # snap keeps it
        run("sync")
    return image, read_files(image, tmp_path)


# --- what btrfs-progs says ----------------------------------------------------
_CHUNK = re.compile(r"key \(FIRST_CHUNK_TREE CHUNK_ITEM (\d+)\).*?\n\s+length "
                    r"(\d+) .*?type (\S+)\n(.*?)(?=\titem |\Z)", re.S)
_STRIPE = re.compile(r"stripe \d+ devid \d+ offset (\d+)")
_EXTENT = re.compile(r"item \d+ key \((\d+) (EXTENT_ITEM|METADATA_ITEM) (\d+)\)")


def dump_tree_runs(image):
    """The device runs of every extent `btrfs inspect-internal dump-tree`
    lists in the extent tree, each mapped through the stripes its chunk
    tree dump gives: sorted [(offset, length)]."""
    chunks = []
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "chunk",
              image).stdout
    for logical, length, _type, rest in _CHUNK.findall(out):
        chunks.append((int(logical), int(length),
                       [int(s) for s in _STRIPE.findall(rest)]))
    nodesize = int(re.search(r"^nodesize\s+(\d+)", run(
        "btrfs", "inspect-internal", "dump-super", image).stdout,
        re.M).group(1))
    runs = []
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "extent",
              image).stdout
    for start, kind, extra in _EXTENT.findall(out):
        start = int(start)
        length = nodesize if kind == "METADATA_ITEM" else int(extra)
        logical, size, stripes = next(c for c in chunks
                                      if c[0] <= start < c[0] + c[1])
        runs += [(s + start - logical, length) for s in stripes]
    return sorted(runs)


def usage_used(image, scratch):
    """The raw bytes used (both copies of DUP) as `btrfs filesystem usage
    -b` reports them on a read-only mount."""
    with mounted(image, os.path.join(scratch, "ro")) as mnt:
        out = run("btrfs", "filesystem", "usage", "-b", mnt).stdout
    return int(re.search(r"^\s+Used:\s+(\d+)", out, re.M).group(1))


def make_small(tmp_path, options, size=120 * MiB, seed=5):
    """A btrfs made with mkfs options `options` holding 60 small files (a
    third of them deleted again) and a zstd-compressed log.  Returns
    (image, {path: sha256})."""
    image = tmp_path / "small.img"
    with open(image, "wb") as f:
        f.truncate(size)
    run("mkfs.btrfs", "-q", "-f", *options, image)
    rng, files = random.Random(seed), {}
    with mounted(image, tmp_path / "mnt", options="rw,compress=zstd") as root:
        for i in range(60):
            write_file(root, f"d{i % 4}/f{i:02d}.bin",
                       rng.randbytes(rng.randrange(1, 200 * KiB)), files)
        for rel in sorted(files)[::3]:
            os.unlink(os.path.join(root, rel))
            del files[rel]
        write_file(root, "log.txt", b"".join(
            b"entry %d\n" % i for i in range(50000)), files)
        run("sync")
    return image, files
