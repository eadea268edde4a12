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
import re
import shutil
import struct
import subprocess

import pytest

import demodisk
from diskimage.host import fuse
from diskimage.fs.ntfs import used as ntfs
from diskimage.fs.usedmap import MapError
from tests.fsbuild import COMPRESSED, compressed_files
from tests.fsmaps import blkid, map_only_restore, python_lines, tool_used_bytes

KiB, MiB = 1 << 10, 1 << 20


pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("mkntfs", "ntfs-3g", "ntfsinfo",
                                      "ntfsfix", "losetup")),
    reason="needs ntfs-3g and util-linux")


# --- helpers -----------------------------------------------------------------
def run(*args):
    return subprocess.run([str(a) for a in args], check=True, text=True,
                          capture_output=True,
                          stdin=subprocess.DEVNULL).stdout


def mkntfs(path, size, *extra):
    with open(path, "wb") as f:
        f.truncate(size)
    run("mkntfs", "-F", "-Q", "-L", "test-ntfs", *extra, path)
    return path


def mounted(image, tmp_path):
    return fuse.ntfs_mount(image, os.fspath(tmp_path / "mnt"), "rw")


def file_reader(path):
    fd = os.open(path, os.O_RDONLY)
    return lambda offset, length: os.pread(fd, length, offset)


def bytes_reader(data):
    return lambda offset, length: bytes(data[offset:offset + length])


def map_image(path):
    return ntfs.open_volume(file_reader(path), os.path.getsize(path))


def ntfsinfo(path):
    """ntfsinfo -m's own numbers, and ntfscluster --info's size of the
    volume (the clusters' bytes)."""
    out = run("ntfsinfo", "-m", path) + run("ntfscluster", "--info", path)
    number = lambda label: int(re.search(rf"^\s*{label}\s*:\s*(\d+)", out,
                                         re.M).group(1))
    # ntfscluster mislabels its counts ("sectors per volume" is the
    # cluster count) but agrees on the free clusters.
    assert number("clusters of free space") == number("Free Clusters")
    return {"cluster": number("Cluster Size"),
            "sector": number("Sector Size"),
            "clusters": number("Volume Size in Clusters"),
            "free": number("Free Clusters"),
            "bytes": number("bytes per volume"),
            "record": number("MFT Record Size"),
            "mft_lcn": number("LCN of Data Attribute for FILE_MFT")}


def mft_runlist(path, inode=0):
    """(vcn, lcn, count) of the $DATA of `inode` as `ntfsinfo -v` prints
    it, all extents."""
    out = run("ntfsinfo", "-i", inode, "-v", path)
    runs, in_data = [], False
    for line in out.splitlines():
        if line.startswith("Dumping attribute"):
            in_data = line.startswith("Dumping attribute $DATA")
        elif in_data and re.match(r"\t\t\t0x", line):
            vcn, lcn, count = line.split()
            if lcn == "<RL_NOT_MAPPED>":    # VCNs held by another extent
                continue
            runs.append((int(vcn, 16), None if lcn == "<HOLE>"
                         else int(lcn, 16), int(count, 16)))
    return runs, out


def check_restore(image, used, expected, tmp_path):
    target = map_only_restore(image, tmp_path / "target.img", used.runs)
    size = os.path.getsize(target)
    clean, output = demodisk.fsck(target, 0, size, "ntfs")
    assert clean, output
    assert demodisk.read_files(target, 0, size, "ntfs") == expected


def write(path, data, expected, root):
    with open(path, "wb") as f:
        f.write(data)
    expected[os.path.relpath(path, root)] = hashlib.sha256(data).hexdigest()


def interleave_until_full(mnt, names, chunk, rng):
    """Append `chunk` bytes to each file in turn until the volume is full:
    on a fresh volume every file ends up in runs of one chunk.  Returns
    {name: sha256} of what the files hold."""
    files = [os.open(os.path.join(mnt, n), os.O_CREAT | os.O_WRONLY)
             for n in names]
    try:
        while all(os.write(fd, rng.randbytes(chunk)) for fd in files):
            pass
    except OSError:
        pass
    finally:
        for fd in files:
            os.close(fd)
    result = {}
    for name in names:
        with open(os.path.join(mnt, name), "rb") as f:
            result[name] = hashlib.sha256(f.read()).hexdigest()
    return result


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


# --- inconsistent structures -------------------------------------------------
@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fresh 8 MiB volume as bytes, and where its records lie (from
    ntfsinfo, not from the code under test)."""
    path = mkntfs(tmp_path_factory.mktemp("ntfs") / "fresh.img", 8 * MiB)
    info = ntfsinfo(path)
    mft = info["mft_lcn"] * info["cluster"]
    data = open(path, "rb").read()
    return {"data": data, "info": info,
            "record": lambda n: mft + n * info["record"]}


def attribute(data, record, wanted):
    """Offset of the first attribute of type `wanted` in a FILE record."""
    pos = record + struct.unpack_from("<H", data, record + 0x14)[0]
    while True:
        kind, length = struct.unpack_from("<II", data, pos)
        assert kind != 0xFFFFFFFF
        if kind == wanted:
            return pos
        pos += length


def open_bytes(data, size=None):
    return ntfs.open_volume(bytes_reader(data),
                            len(data) if size is None else size)


def test_fresh_volume_maps(fresh):
    used = open_bytes(fresh["data"])
    info = fresh["info"]
    assert used.total_bytes == info["bytes"]
    assert used.used_bytes == (info["clusters"] - info["free"]) \
        * info["cluster"] + info["sector"]


def test_not_ntfs_is_none(fresh):
    data = bytearray(fresh["data"])
    data[3:11] = b"MSWIN4.1"
    assert open_bytes(data) is None
    assert open_bytes(bytes(4096)) is None


def corrupt(fresh, offset, value):
    data = bytearray(fresh["data"])
    data[offset:offset + len(value)] = value
    return data


@pytest.mark.parametrize("offset,value,message", [
    (510, b"\x55\x00", "end marker"),
    (0x0D, b"\x03", "power of two"),
    (0x0B, b"\x00\x03", "power of two"),
    (0x30, struct.pack("<q", 1 << 40), "mft_lcn"),
    (0x38, struct.pack("<q", -3), "mftmirr_lcn"),
    (0x28, struct.pack("<q", 1 << 20), "does not fit"),
    (0x40, b"\x00", "record size"),
    (0x44, b"\x7f", "clusters_per_index_record"),
])
def test_bad_boot_sector(fresh, offset, value, message):
    with pytest.raises(MapError, match=message):
        open_bytes(corrupt(fresh, offset, value))


def test_volume_larger_than_partition(fresh):
    with pytest.raises(MapError, match="does not fit"):
        open_bytes(fresh["data"], len(fresh["data"]) - 4096)


@pytest.mark.parametrize("record", [0, 3, 6])
def test_fixup_mismatch(fresh, record):
    tail = fresh["record"](record) + 510
    with pytest.raises(MapError, match=f"record {record} .*fixup"):
        open_bytes(corrupt(fresh, tail, b"\xde\xad"))


def test_no_file_signature(fresh):
    with pytest.raises(MapError, match="record 6 .*FILE"):
        open_bytes(corrupt(fresh, fresh["record"](6), b"BAAD"))


def bitmap_attribute(fresh):
    return attribute(fresh["data"], fresh["record"](6), 0x80)


def test_bitmap_too_small(fresh):
    pos = bitmap_attribute(fresh)
    data = corrupt(fresh, pos + 0x30, struct.pack("<qq", 8, 8))
    with pytest.raises(MapError, match="too small"):
        open_bytes(data)


def test_runlist_outside_volume(fresh):
    pos = bitmap_attribute(fresh)
    pairs = pos + struct.unpack_from("<H", fresh["data"], pos + 0x20)[0]
    header = fresh["data"][pairs]
    length_size, offset_size = header & 15, header >> 4
    start = pairs + 1 + length_size
    far = b"\xff" * (offset_size - 1) + b"\x7f"
    with pytest.raises(MapError, match="outside the volume"):
        open_bytes(corrupt(fresh, start, far))
    # and a runlist that claims fewer clusters than the attribute's VCNs
    with pytest.raises(MapError, match="covers VCNs"):
        open_bytes(corrupt(fresh, pos + 0x18, struct.pack("<q", 99)))


def test_bitmap_marking_metadata_free(fresh):
    """A $Bitmap that says the MFT's own clusters are free is not this
    volume's bitmap: refuse it rather than drop the MFT."""
    pos = bitmap_attribute(fresh)
    data = fresh["data"]
    pairs = pos + struct.unpack_from("<H", data, pos + 0x20)[0]
    length_size, offset_size = data[pairs] & 15, data[pairs] >> 4
    start = pairs + 1 + length_size
    lcn = int.from_bytes(data[start:start + offset_size], "little")
    mft_lcn = fresh["info"]["mft_lcn"]
    where = lcn * fresh["info"]["cluster"] + mft_lcn // 8
    with pytest.raises(MapError, match=r"\$MFT free"):
        open_bytes(corrupt(fresh, where, bytes([data[where]
                                                & ~(1 << mft_lcn % 8)])))


def test_dirty_volume_warns(fresh):
    record = fresh["record"](3)
    pos = attribute(fresh["data"], record, 0x70)
    value = pos + struct.unpack_from("<H", fresh["data"], pos + 0x14)[0]
    flags = struct.unpack_from("<H", fresh["data"], value + 10)[0]
    used = open_bytes(corrupt(fresh, value + 10, struct.pack("<H", flags | 1)))
    assert used.warnings and "dirty" in used.warnings[0]
