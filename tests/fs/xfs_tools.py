"""What the XFS tests share: XFS volumes made by mkfs.xfs and filled
through a loop mount, and xfsprogs' own numbers (xfs_db freesp, agf, agfl,
xfs_info, xfs_logprint) to check the map against."""

import contextlib
import hashlib
import os
import random
import re

import demodisk
from tests.fsbuild import fragmented_file, sparse_file, unmount, write_file
from tests.fsmaps import KiB, MiB, run


@contextlib.contextmanager
def mounted(image, mountpoint, *options):
    """An XFS image (or a device) mounted by the kernel's driver."""
    os.makedirs(mountpoint, exist_ok=True)
    opts = ",".join(("loop",) * (not str(image).startswith("/dev/")) +
                    options)
    run("mount", "-t", "xfs", *(("-o", opts) if opts else ()), image,
        mountpoint)
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)


def make_xfs(tmp_path, size_mib=300, *options, fragmented=True,
             piece=64 * KiB, mount_options=()):
    """An XFS volume of `size_mib` made with mkfs.xfs `options`: a tree of
    small files, a sparse file, files deleted, a symlink, a hard link, a
    file with 1024 holes
    punched (as many free extents: a free space btree of two levels), and
    with `fragmented` a large file written into the holes of a full
    volume; mounted with `mount_options`.  Returns (image, {path:
    sha256})."""
    image = tmp_path / "xfs.img"
    with open(image, "wb") as f:
        f.truncate(size_mib * MiB)
    run("mkfs.xfs", "-q", "-f", "-L", "rt-xfs", *options, image)
    digests = {}
    rng = random.Random(size_mib)
    with mounted(image, tmp_path / "mnt", *mount_options) as mnt:
        digests.update({f"tree/{k}": v for k, v in demodisk.make_tree(
            os.path.join(mnt, "tree"), 60, 3, max_size=16 * KiB).items()})
        sparse_file(mnt, "sparse.bin", 100 * MiB, rng, digests)
        for k in range(20):
            write_file(mnt, f"gone/{k}.bin", rng.randbytes(50 * KiB),
                       digests)
        punched(mnt, rng, digests)
        os.symlink("tree", os.path.join(mnt, "link-to-tree"))
        os.link(os.path.join(mnt, "punched.bin"),
                os.path.join(mnt, "hardlink.bin"))
        digests["hardlink.bin"] = digests["punched.bin"]
        for k in range(0, 20, 2):
            os.unlink(os.path.join(mnt, f"gone/{k}.bin"))
            del digests[f"gone/{k}.bin"]
        if fragmented:
            big = fragmented_file(mnt, rng, digests, piece=piece)
            assert extents(big) > 10
    return image, digests


def punched(mnt, rng, digests, holes=1024, step=8 * KiB):
    """A file of holes * step bytes with the second half of every step
    punched out (xfs_io fpunch): `holes` free extents."""
    data = bytearray(rng.randbytes(holes * step))
    path = os.path.join(mnt, "punched.bin")
    with open(path, "wb") as f:
        f.write(data)
        os.fsync(f.fileno())
    half = step // 2
    run("xfs_io", *[arg for k in range(holes) for arg in (
        "-c", f"fpunch {k * step + half} {half}")], path)
    for k in range(holes):
        data[k * step + half:(k + 1) * step] = bytes(half)
    digests["punched.bin"] = hashlib.sha256(data).hexdigest()


def extents(path):
    """The extents of a file, by xfs_io's fiemap."""
    out = run("xfs_io", "-r", "-c", "fiemap", path).stdout
    return len([line for line in out.splitlines()[1:]
                if "hole" not in line])


def files(image, tmp_path):
    """{path: sha256} of every file, read through a read-only mount that
    replays nothing (norecovery)."""
    with mounted(image, tmp_path / "ro", "ro", "norecovery") as mnt:
        return demodisk.digest_tree(mnt)


def db(image, *commands):
    args = []
    for command in commands:
        args += ["-c", command]
    return run("xfs_db", "-r", *args, image).stdout


def number(name, text):
    return int(re.search(rf"^{name} = (\d+)", text, re.M).group(1))


def geometry(image):
    """(block size, data blocks, AG count) from xfs_info."""
    out = run("xfs_info", image).stdout
    bs, blocks = map(int, re.search(r"^data\s+=\s+bsize=(\d+)\s+"
                                    r"blocks=(\d+)", out, re.M).groups())
    return bs, blocks, int(re.search(r"agcount=(\d+)", out).group(1))


def free_extents(image, agno):
    """xfs_db's free extents of AG `agno` ({(agbno, length)}): `freesp -d`
    lists the btree's extents and the free list's blocks together; those
    on the AGFL (`agfl N`, its bno array) are taken out."""
    out = db(image, f"freesp -d -a {agno}")
    found = {(int(b), int(n)) for a, b, n in re.findall(
        r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", out, re.M) if int(a) == agno}
    first, last = agf(image, agno, "flfirst", "fllast")
    bno = dict((int(i), int(b)) for i, b in re.findall(r"(\d+):(\d+)", db(
        image, f"agfl {agno}", "p bno")))
    size = len(re.findall(r"\d+:", db(image, f"agfl {agno}", "p bno")))
    count = (last - first) % size + 1 if bno else 0
    agfl = {bno[(first + k) % size] for k in range(count)}
    return found - {(b, 1) for b in agfl}, agfl


def agf(image, agno, *fields):
    out = db(image, f"agf {agno}", "p " + " ".join(fields))
    return [number(name, out) for name in fields]


def log_state(image):
    """"CLEAN" or "DIRTY", as xfs_logprint reads the log."""
    out = run("xfs_logprint", "-t", image, check=False).stdout
    return re.search(r"state: <(\w+)>", out).group(1)


def make_xfs_proto(tmp_path, size_mib, *options):
    """An XFS volume filled by mkfs.xfs itself from a protofile (for a v4
    volume, which this kernel does not mount): a tree of files and a
    20 MiB file.  Returns (image, {path: sha256})."""
    src = tmp_path / "src"
    digests = demodisk.make_tree(src, 80, 7, names=False)
    rng = random.Random(7)
    write_file(src, "large.bin", rng.randbytes(20 * MiB), digests)
    lines = ["/dev/null", "0 0", "d--755 0 0"]

    def add(directory, depth):
        for entry in sorted(os.listdir(directory)):
            path = os.path.join(directory, entry)
            pad = " " * depth
            if os.path.isdir(path):
                lines.append(f"{pad}{entry} d--755 0 0")
                add(path, depth + 1)
                lines.append(f"{pad}$")
            else:
                lines.append(f"{pad}{entry} ---644 0 0 {path}")
    add(src, 1)
    lines.append("$")
    proto = tmp_path / "proto.txt"
    proto.write_text("\n".join(lines) + "\n")
    image = tmp_path / "xfs.img"
    with open(image, "wb") as f:
        f.truncate(size_mib * MiB)
    run("mkfs.xfs", "-q", "-f", "-L", "rt-xfs", *options, "-p", proto, image)
    return image, digests


def read_files(image):
    """{path: sha256} of every file, read by dissect.xfs (diskimage.fs.read),
    for a volume the kernel does not mount."""
    from diskimage.fs.read import Filesystem
    with open(image, "rb") as fh:
        fs = Filesystem(fh, "xfs", "test:")
        return {path: hashlib.sha256(fs.read(node)).hexdigest()
                for path, node in walk(fs, fs.root, "")}


def walk(fs, node, prefix):
    for child in fs.children(node):
        path = f"{prefix}{child.name}"
        if child.is_dir:
            yield from walk(fs, child, path + "/")
        elif child.kind == "file":
            yield path, child
