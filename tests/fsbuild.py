"""Filesystems made and filled for the filesystem-map tests, with the
field's tools (mke2fs and a loop mount, mkfs.fat and mtools, mkfs.exfat
and exfat-fuse, mkntfs and ntfs-3g): a tree of small files, a large file
written into the holes of a full volume whose every other file was deleted
(checked fragmented with filefrag, mshowfat or ntfsinfo), a large sparse
file, compressed NTFS files.  Each builder returns (image, {path: sha256}).
"""

import contextlib
import errno
import hashlib
import os
import random
import re
import struct
import time

import demodisk
from diskimage.host import fuse
from tests.fsmaps import KiB, MiB, MTOOLS_ENV, run

COMPRESSED = 0x800                       # FILE_ATTRIBUTE_COMPRESSED


# --- contents ----------------------------------------------------------------
def write_file(root, rel, data, digests):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    digests[rel] = hashlib.sha256(data).hexdigest()


def sparse_file(root, rel, size, rng, digests, pieces=4):
    """A file of apparent `size` holding only `pieces` small runs of data:
    written by seeking, so the filesystem keeps holes between them."""
    content = bytearray(size)
    with open(os.path.join(root, rel), "wb") as f:
        f.truncate(size)
        for k in range(pieces):
            offset = (size // pieces) * k + rng.randrange(4096) * 7
            data = rng.randbytes(9000)
            os.pwrite(f.fileno(), data, offset)
            content[offset:offset + len(data)] = data
    digests[rel] = hashlib.sha256(content).hexdigest()


def fragmented_file(root, rng, digests, piece=64 * KiB, share=0.6):
    """Fill the mounted filesystem at `root` with files of `piece` bytes
    until it is full, delete every other one, then write one large file of
    `share` of the freed space: it can only go into the holes.  Keeps the
    remaining fillers in `digests`; returns the large file's path."""
    os.makedirs(os.path.join(root, "fill"))
    names = []
    while True:
        rel = f"fill/f{len(names):05d}.bin"
        data = rng.randbytes(piece)
        try:
            with open(os.path.join(root, rel), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EFBIG):
                raise
            if os.path.exists(os.path.join(root, rel)):    # XFS can refuse
                os.unlink(os.path.join(root, rel))         # the inode too
            break
        names.append(rel)
        digests[rel] = hashlib.sha256(data).hexdigest()
    for rel in names[::2]:
        os.unlink(os.path.join(root, rel))
        del digests[rel]
    os.sync()
    size = int(len(names[::2]) * piece * share) // 4096 * 4096
    write_file(root, "fragmented.bin", rng.randbytes(size), digests)
    os.sync()
    return os.path.join(root, "fragmented.bin")


def compressed_files(mnt, rng, digests):
    """A directory whose new files ntfs-3g compresses (the compressed
    attribute set on it through ntfs-3g's system.ntfs_attrib_be), with a
    compressible log, random bytes and a tiny file.  Returns the log."""
    folder = os.path.join(mnt, "packed")
    os.mkdir(folder)
    os.setxattr(folder, "system.ntfs_attrib_be",
                struct.pack(">I", COMPRESSED))
    text = b"".join(b"line %d of a compressible log\n" % i
                    for i in range(20000))
    write_file(mnt, "packed/log.txt", text, digests)
    write_file(mnt, "packed/random.bin", rng.randbytes(200 * KiB), digests)
    write_file(mnt, "packed/small.txt", b"tiny\n", digests)
    return os.path.join(folder, "log.txt")


# --- filesystems made and filled ---------------------------------------------
@contextlib.contextmanager
def ext_mounted(image, mountpoint):
    """An ext2/3/4 image mounted through a loop device (the ext4 driver)."""
    os.makedirs(mountpoint, exist_ok=True)
    run("mount", "-t", "ext4", "-o", "loop", image, mountpoint)
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)


def unmount(mountpoint):
    """umount; while a loop device that just detached keeps it busy, try
    again for 5 s, then lazily.  A lazily unmounted filesystem writes its
    last blocks (an XFS log's unmount record) after umount returns, so
    then wait until its device is free (an O_EXCL open succeeds once the
    filesystem is gone): a capture that came first would read a
    filesystem that needs recovery, or a disk file's holes where those
    blocks land a moment later."""
    device = _mounted_device(mountpoint)
    for _ in range(20):
        if run("umount", mountpoint, check=False).returncode == 0:
            return
        time.sleep(0.25)
    run("umount", "-l", mountpoint)
    if device is None:
        return
    for _ in range(240):
        try:
            os.close(os.open(device, os.O_RDONLY | os.O_EXCL))
            break
        except FileNotFoundError:
            break
        except OSError as e:
            if e.errno != errno.EBUSY:
                break
            time.sleep(0.25)
    os.sync()


def _mounted_device(mountpoint):
    """The block device mounted at `mountpoint` (/proc/self/mountinfo),
    or None (a FUSE mount, or not mounted)."""
    where = os.path.realpath(mountpoint)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            source = fields[fields.index("-") + 2]
            if fields[4] == where and source.startswith("/dev/"):
                return source
    return None


def ntfs_mounted(image, mountpoint):
    """An NTFS image mounted read-write by ntfs-3g."""
    return fuse.ntfs_mount(image, mountpoint, "rw")


@contextlib.contextmanager
def exfat_mounted(image, mountpoint):
    os.makedirs(mountpoint, exist_ok=True)
    with demodisk.loop_device(image, 0, os.path.getsize(image),
                              read_only=False) as dev:
        run("mount.exfat-fuse", dev, mountpoint)
        try:
            yield mountpoint
        finally:                # and wait for the driver's last writes
            fuse.unmount_fuse(os.fspath(mountpoint))


def extents(path):
    """filefrag's count of a file's extents."""
    out = run("filefrag", path).stdout
    return int(re.search(r"(\d+) extents? found", out).group(1))


def make_ext(tmp_path, command, size_mib):
    """An ext filesystem filled through a loop mount: a tree, a 200 MiB
    sparse file with 4 runs of data, a fragmented large file."""
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(size_mib * MiB)
    run(*command, "-q", "-F", "-L", "rt-ext", image)
    rng = random.Random(size_mib)
    with ext_mounted(image, tmp_path / "mnt") as mnt:
        digests = {f"tree/{k}": v for k, v in demodisk.make_tree(
            os.path.join(mnt, "tree"), 80, 3, max_size=16 * KiB).items()}
        sparse_file(mnt, "sparse.bin", 200 * MiB, rng, digests)
        big = fragmented_file(mnt, rng, digests, piece=32 * KiB)
        assert extents(big) > 20
        assert os.stat(os.path.join(mnt, "sparse.bin")).st_blocks * 512 \
            < 1 * MiB
    return image, digests


def mtools(*args):
    return run(*args, env=MTOOLS_ENV).stdout


def fat_bytes(image):
    """A FAT volume's size in bytes as mtools' minfo reads its boot sector
    (total sectors times sector size); `image` a file or device."""
    out = mtools("minfo", "-i", image, "::")
    sector = int(re.search(r"sector size: (\d+) bytes", out).group(1))
    small = int(re.search(r"small size: (\d+) sectors", out).group(1))
    big = re.search(r"big size: (\d+) sectors", out)
    return (small or int(big.group(1))) * sector


def make_fat(tmp_path, bits, size_kib, *options, piece=16 * KiB):
    """A FAT filled with mtools: a tree (no MiB-sized files on a floppy),
    then fillers of `piece` bytes in 90% of the free space, every other one
    deleted, and a large file in the holes."""
    files = 40 if size_kib < 4096 else 80
    image = tmp_path / "fs.img"
    run("mkfs.fat", "-C", "-F", bits, "-n", f"RT-FAT{bits}", *options, image,
        size_kib)
    source = tmp_path / "src"
    digests = demodisk.make_tree(source / "tree", files, bits,
                                 max_size=8 * KiB)
    digests = {f"tree/{k}": v for k, v in digests.items()}
    mtools("mcopy", "-s", "-Q", "-i", image, source / "tree", "::/")
    free = int(re.search(r"([\d ]+) bytes free", mtools(
        "mdir", "-i", image, "::/")).group(1).replace(" ", ""))
    rng = random.Random(bits)
    fill = source / "fill"
    count = int(free * 0.9) // piece
    for i in range(count):
        write_file(source, f"fill/f{i:04d}.bin", rng.randbytes(piece),
                   digests)
    mtools("mcopy", "-s", "-Q", "-i", image, fill, "::/")
    gone = [f"::/fill/f{i:04d}.bin" for i in range(0, count, 2)]
    mtools("mdel", "-i", image, *gone)
    for i in range(0, count, 2):
        del digests[f"fill/f{i:04d}.bin"]
    write_file(source, "fragmented.bin",
               rng.randbytes(len(gone) * piece // 2), digests)
    mtools("mcopy", "-Q", "-i", image, source / "fragmented.bin", "::/")
    chains = mtools("mshowfat", "-i", image, "::/fragmented.bin")
    assert chains.count("<") > 10, chains
    return image, digests


def make_exfat(tmp_path, size_mib):
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(size_mib * MiB)
    run("mkfs.exfat", "-L", "rt-exfat", image)
    rng = random.Random(size_mib)
    with exfat_mounted(image, tmp_path / "mnt") as mnt:
        digests = {f"tree/{k}": v for k, v in demodisk.make_tree(
            os.path.join(mnt, "tree"), 80, 4, max_size=16 * KiB).items()}
        fragmented_file(mnt, rng, digests)
    return image, digests


def ntfs_runs(image, inode):
    """The number of data runs `ntfsinfo -v` lists for an inode."""
    out = run("ntfsinfo", "-i", inode, "-v", image).stdout
    return len(re.findall(r"^\t\t\t0x\w+\s+0x\w+\s+0x\w+$", out, re.M))


def make_ntfs(tmp_path, size_mib):
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(size_mib * MiB)
    run("mkntfs", "-F", "-Q", "-L", "rt-ntfs", "-p", 2048, "-H", 255, "-S",
        63, image)
    rng = random.Random(size_mib)
    with ntfs_mounted(image, tmp_path / "mnt") as mnt:
        digests = {f"tree/{k}": v for k, v in demodisk.make_tree(
            os.path.join(mnt, "tree"), 400, 5, max_size=8 * KiB).items()}
        log = compressed_files(mnt, rng, digests)
        attributes, = struct.unpack(">I", os.getxattr(
            log, "system.ntfs_attrib_be"))
        assert attributes & COMPRESSED
        big = fragmented_file(mnt, rng, digests)
        inode = os.stat(big).st_ino
    assert ntfs_runs(image, inode) > 10
    return image, digests
