"""NTFS used-cluster maps (diskimage.fs.ntfs.used) against ntfs-3g's tools on real
volumes made by mkntfs and filled through an ntfs-3g FUSE mount.

Used clusters are checked against `ntfsinfo -m` ("Volume Size in
Clusters", "Free Clusters"), label and serial against `blkid -p`, the MFT's
runlist against `ntfsinfo -i 0 -v`.  The map is checked complete by a
map-only restore into random bytes followed by `ntfsfix -n` and a
comparison of every file's sha256.
"""

import hashlib
import os
import random
import struct

import pytest

import demodisk
from diskimage.fs.ntfs import used as ntfs
from tests.fsbuild import COMPRESSED, compressed_files
from tests.fsmaps import blkid, map_only_restore, python_lines, tool_used_bytes
from tests.fs.ntfs_tools import (check_restore, file_reader,
                                 interleave_until_full, map_image, mft_runlist,
                                 mkntfs, mounted, ntfsinfo, write)

KiB, MiB = 1 << 10, 1 << 20

pytestmark = pytest.mark.needs("mkntfs", "ntfs-3g", "ntfsinfo", "ntfsfix",
                               "losetup")


# --- real volumes ------------------------------------------------------------
def open_ntfs_volume(image):
    read = file_reader(image)
    return ntfs.NtfsVolume(read, os.path.getsize(image),
                           ntfs.NTFS_BOOT_SECTOR.unpack(read(0, 512)))


@pytest.mark.parametrize("cluster,sector,size", [
    (4096, 512, 48 * MiB), (512, 512, 24 * MiB), (65536, 512, 64 * MiB),
    (4096, 4096, 32 * MiB)])
def test_map_matches_ntfsinfo_and_restores(tmp_path, cluster, sector, size):
    image = mkntfs(tmp_path / "ntfs.img", size, "-c", cluster, "-s", sector)
    rng = random.Random(cluster)
    with mounted(image, tmp_path) as mnt:
        tree = demodisk.make_tree(os.path.join(mnt, "tree"), 150, cluster)
        expected = {f"tree/{rel}": digest for rel, digest in tree.items()}
        packed = compressed_files(mnt, rng, expected)
        attributes, = struct.unpack(">I", os.getxattr(
            packed, "system.ntfs_attrib_be"))
        # NTFS compresses only with clusters up to 4 KiB
        assert bool(attributes & COMPRESSED) == (cluster <= 4096)
        packed_inode = os.stat(packed).st_ino
    used = map_image(image)
    info = ntfsinfo(image)
    assert used.block_size == info["cluster"] == cluster
    assert info["sector"] == sector
    assert used.total_bytes == info["bytes"]
    assert used.used_bytes == tool_used_bytes(image, "ntfs")
    runs = list(used.runs)
    assert used.used_bytes == sum(n for _, n in runs)
    ids = blkid(image)
    assert (used.label, used.uuid) == (ids["LABEL"], ids["UUID"])
    assert used.warnings == []
    for (o1, n1), (o2, _) in zip(runs, runs[1:]):
        assert o1 + n1 < o2
    if cluster <= 4096:     # the log is stored compressed: holes in its runs
        runs, out = mft_runlist(image, packed_inode)
        assert "COMPRESSED" in out and None in [lcn for _, lcn, _ in runs]
    check_restore(image, used, expected, tmp_path)


def test_fragmented_file_in_extension_records(tmp_path):
    """Two files grown in turn, one 512-byte cluster at a time, until the
    volume is full, then one deleted: the other's thousands of runs go on
    in extension records through an $ATTRIBUTE_LIST."""
    image = mkntfs(tmp_path / "ntfs.img", 8 * MiB, "-c", 512)
    rng = random.Random(3)
    with mounted(image, tmp_path) as mnt:
        expected = interleave_until_full(mnt, ["a.bin", "b.bin"], 512, rng)
        os.unlink(os.path.join(mnt, "b.bin"))
        del expected["b.bin"]
        inode = os.stat(os.path.join(mnt, "a.bin")).st_ino
    runs, out = mft_runlist(image, inode)
    assert len(runs) > 1000 and "$ATTRIBUTE_LIST" in out
    volume = open_ntfs_volume(image)
    file_runs, data_size, _ = volume.data_runs(inode)
    assert file_runs == runs
    data = volume.read_runs(file_runs, 0, data_size, "a.bin")
    assert hashlib.sha256(data).hexdigest() == expected["a.bin"]
    used = map_image(image)
    assert used.used_bytes == tool_used_bytes(image, "ntfs")
    check_restore(image, used, expected, tmp_path)


def test_fragmented_mft_with_attribute_list(tmp_path):
    """Fill the volume with one-cluster files, delete every other one and
    create thousands of empty files: the MFT grows into the holes, in
    hundreds of runs, and record 0 needs an $ATTRIBUTE_LIST."""
    image = mkntfs(tmp_path / "ntfs.img", 32 * MiB)
    rng = random.Random(5)
    expected = {}
    with mounted(image, tmp_path) as mnt:
        os.mkdir(os.path.join(mnt, "fill"))
        names = []
        try:
            while True:
                name = os.path.join(mnt, "fill", f"{len(names):05d}")
                names.append(name)
                with open(name, "wb") as f:
                    f.write(rng.randbytes(4096))
        except OSError:             # full: drop the one that failed
            if os.path.exists(name := names.pop()):
                os.unlink(name)
        for index, name in enumerate(names):
            if index % 2 == 0:
                os.unlink(name)
            else:
                with open(name, "rb") as f:
                    expected[os.path.relpath(name, mnt)] = hashlib.sha256(
                        f.read()).hexdigest()
        os.mkdir(os.path.join(mnt, "empty"))
        for index in range(8000):
            name = os.path.join(mnt, "empty", f"{index:05d}")
            try:
                open(name, "wb").close()
            except OSError:
                break
            expected[os.path.relpath(name, mnt)] = hashlib.sha256().hexdigest()
    runs, out = mft_runlist(image)
    assert len(runs) > 100 and "$ATTRIBUTE_LIST" in out
    assert open_ntfs_volume(image).mft_runs == runs
    used = map_image(image)
    assert used.used_bytes == tool_used_bytes(image, "ntfs")
    check_restore(image, used, expected, tmp_path)


def test_free_space_garbage_left_out(tmp_path):
    size = 32 * MiB
    image = mkntfs(tmp_path / "ntfs.img", size)
    rng = random.Random(9)
    expected = {}
    with mounted(image, tmp_path) as mnt:
        index = 0
        try:
            while True:
                tag = b"DELETED!" if index % 5 else b"KEPT-ONE"
                data = (tag + rng.randbytes(4088)) * 32     # 128 KiB
                write(os.path.join(mnt, f"r{index:04d}.bin"), data, expected,
                      mnt)
                index += 1
        except OSError:             # full: drop the partly written one
            if os.path.exists(partial := os.path.join(mnt,
                                                      f"r{index:04d}.bin")):
                os.unlink(partial)
        for name in list(expected):
            if int(name[1:5]) % 5:
                os.unlink(os.path.join(mnt, name))
                del expected[name]
        assert len(expected) > 20
        # a large file written into the holes the deleted ones left
        big = os.path.join(mnt, "big.bin")
        write(big, rng.randbytes(4 * MiB), expected, mnt)
        big_inode = os.stat(big).st_ino
    info = ntfsinfo(image)
    assert info["free"] * info["cluster"] < size // 10 * 9  # was full
    runs, _ = mft_runlist(image, big_inode)
    assert len(runs) >= 5                   # fragmented
    used = map_image(image)
    assert used.used_bytes == tool_used_bytes(image, "ntfs")
    assert used.used_bytes < size * 0.45
    # Not one block of a deleted file is in the runs.
    with open(image, "rb") as f:
        kept = b"".join(os.pread(f.fileno(), n, o) for o, n in used.runs)
    assert kept.count(b"KEPT-ONE") == 32 * (len(expected) - 1)
    assert b"DELETED!" not in kept
    check_restore(image, used, expected, tmp_path)


def test_sector_after_volume_is_the_backup_boot_sector(tmp_path):
    """The map holds the backup boot sector: without it, ntfsfix fails the
    restored volume, and a partition larger than the volume still has its
    last sector mapped only when it is a boot sector copy."""
    image = mkntfs(tmp_path / "ntfs.img", 8 * MiB)
    used = map_image(image)
    size = os.path.getsize(image)
    runs = list(used.runs)
    assert runs[-1] == (size - 512, 512)
    target = map_only_restore(image, tmp_path / "t.img", runs[:-1])
    clean, output = demodisk.fsck(target, 0, size, "ntfs")
    assert not clean and "boot sector" in output.lower(), output
    with open(image, "ab") as f:            # the partition grew by 1 MiB
        f.write(os.urandom(MiB))
    grown = map_image(image)
    assert list(grown.runs) == runs
    with open(image, "r+b") as f:           # ... and a copy at its end
        f.seek(-512, 2)
        f.write(open(image, "rb").read(512))
    assert list(map_image(image).runs) == runs + [(size + MiB - 512, 512)]


def test_large_volume_maps_without_a_loop_per_cluster(tmp_path):
    """A 64 GiB volume (16 M clusters, a 2 MiB bitmap): no Python loop per
    cluster (counted in lines run, not timed: speed is the benchmark's)."""
    image = mkntfs(tmp_path / "big.img", 64 << 30)
    used, lines = python_lines(lambda: map_image(image))
    assert lines < (64 << 30) // 4096 // 2, f"{lines} Python lines"
    assert used.used_bytes == tool_used_bytes(image, "ntfs")
