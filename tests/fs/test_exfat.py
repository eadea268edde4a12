"""exFAT used-cluster maps (diskimage.fs.exfat) against exfatprogs on real
images made by mkfs.exfat and filled through the FUSE driver (exfat-fuse;
this kernel has no exfat module).

Used clusters are checked against `dump.exfat` ("Total Clusters", "Free
Clusters", counted from the allocation bitmap) and blkid; the map is
checked complete by a map-only restore into random bytes followed by
`fsck.exfat -n` and every file's sha256 read back through a read-only mount.
"""

import contextlib
import os
import random
import re
import shutil
import struct
import subprocess

import pytest

import demodisk
from diskimage.fs import exfat
from diskimage.host import fuse
from demodisk import sha256_file
from tests.fsmaps import blkid, map_only_restore, python_lines, random_fill
from diskimage.fs.usedmap import MapError

KiB, MiB = 1 << 10, 1 << 20

pytestmark = pytest.mark.needs("mkfs.exfat", "fsck.exfat", "dump.exfat")
needs_fuse = pytest.mark.needs("mount.exfat-fuse", root=True, fuse=True)


# --- helpers -----------------------------------------------------------------
def run(*args, check=True):
    return subprocess.run([str(a) for a in args], check=check, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def loop(image, sector=512, read_only=False):
    args = ["losetup", "--find", "--show", "-b", sector, image]
    dev = run(*args[:2], *(["--read-only"] if read_only else []),
              *args[2:]).stdout.strip()
    try:
        yield dev
    finally:
        run("losetup", "-d", dev)


@contextlib.contextmanager
def mounted(image, mountpoint, sector=512, read_only=False):
    """The volume mounted with exfat-fuse; umount returns before the driver
    has written its last blocks (VolumeDirty cleared): its end is waited
    for (diskimage.host.fuse.unmount_fuse)."""
    os.makedirs(mountpoint, exist_ok=True)
    with loop(image, sector, read_only) as dev:
        run("mount.exfat-fuse", *(["-o", "ro"] if read_only else []), dev,
            mountpoint)
        try:
            yield mountpoint
        finally:                # and wait for the driver's last writes
            fuse.unmount_fuse(os.fspath(mountpoint))


def mkfs(image, size, *options, sector=512):
    """mkfs.exfat takes the sector size from the device: a loop device of
    that logical sector size for anything but 512."""
    with open(image, "wb") as f:
        f.truncate(size)
    if sector == 512:
        run("mkfs.exfat", *options, image)
        return
    with loop(image, sector) as dev:
        run("mkfs.exfat", *options, dev)


def map_image(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return exfat.open_volume(lambda o, n: os.pread(fd, n, o),
                                 os.path.getsize(path))
    finally:
        os.close(fd)


def dump_report(path):
    out = run("dump.exfat", path).stdout
    number = lambda label: int(re.search(rf"{label}:\s+(\w+)", out).group(1),
                               0)
    return {"cluster": number("Cluster size"),
            "clusters": number("Total Clusters"),
            "free": number("Free Clusters"),
            "heap": number(r"Cluster Heap Offset \(sector offset\)"),
            "sector": 1 << number("Sector Size Bits"),
            "sectors": number(r"Volume Length\(sectors\)"),
            "serial": number("Volume Serial")}


def digest_tree(root):
    """{relative posix path: sha256} of the files under root."""
    return {os.path.relpath(os.path.join(top, name), root): sha256_file(
                os.path.join(top, name))
            for top, _, names in os.walk(root) for name in names}


def check_map(image, umap):
    report = dump_report(image)
    heap = report["heap"] * report["sector"]
    assert umap.kind == "exfat"
    assert umap.block_size == report["cluster"]
    assert umap.total_bytes == report["sectors"] * report["sector"]
    runs = list(umap.runs)
    assert runs[0] == (0, runs[0][1]) and runs[0][1] >= heap
    assert umap.used_bytes == sum(n for _, n in runs)
    assert all(a[0] + a[1] < b[0] for a, b in zip(runs, runs[1:]))
    used = (umap.used_bytes - heap) // report["cluster"]
    assert used == report["clusters"] - report["free"]
    assert umap.uuid == blkid(image)["UUID"]
    assert f"0x{int(umap.uuid.replace('-', ''), 16):08x}" in run(
        "exfatlabel", "-i", image).stdout
    label = re.search(r"^label: (.*)$", run("exfatlabel", image).stdout,
                      re.M)      # no line when there is no label
    assert umap.label == (label.group(1) if label else "")
    assert umap.warnings == []


def restore_and_check(image, umap, digests, tmp_path, sector=512):
    target = tmp_path / "restored.img"
    map_only_restore(image, target, umap.runs, seed=42)
    fsck = run("fsck.exfat", "-n", target, check=False)
    assert fsck.returncode == 0 and "clean" in fsck.stdout, fsck.stdout
    with mounted(target, tmp_path / "check", sector, read_only=True) as mnt:
        assert digest_tree(mnt) == digests


# --- real filesystems --------------------------------------------------------
VARIANTS = {
    # name: (size, mkfs.exfat options, logical sector size, files)
    "4k-clusters": (64 * MiB, ("-L", "MyLabel"), 512, 150),
    "32k-clusters": (64 * MiB, ("-c", "32K"), 512, 100),
    "4k-sectors": (64 * MiB, ("-L", "Sec4K"), 4096, 100),
    "pack-bitmap": (48 * MiB, ("--pack-bitmap", "-L", "Ünï"), 512, 60),
}


@needs_fuse
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_used_clusters_match_dump_and_restore(tmp_path, variant):
    size, options, sector, count = VARIANTS[variant]
    image = tmp_path / "exfat.img"
    mkfs(image, size, *options, sector=sector)
    digests = demodisk.make_tree(tmp_path / "src", count, seed=len(variant))
    with mounted(image, tmp_path / "mnt", sector) as mnt:
        shutil.copytree(tmp_path / "src", mnt, dirs_exist_ok=True,
                        copy_function=shutil.copyfile)
    umap = map_image(image)
    check_map(image, umap)
    assert umap.used_bytes < size
    restore_and_check(image, umap, digests, tmp_path, sector)


@needs_fuse
def test_garbage_of_deleted_files_is_left_out(tmp_path):
    image = tmp_path / "exfat.img"
    size = 64 * MiB
    mkfs(image, size, "-L", "Garbage")
    digests = demodisk.make_tree(tmp_path / "keep", 40, seed=9,
                                 max_size=32 * KiB)
    with mounted(image, tmp_path / "mnt") as mnt:
        for index in range(24):
            random_fill(os.path.join(mnt, f"junk{index:02d}.bin"),
                        2 * MiB + index * 777, seed=index)
        shutil.copytree(tmp_path / "keep", os.path.join(mnt, "keep"),
                        copy_function=shutil.copyfile)
        for index in range(22):
            os.unlink(os.path.join(mnt, f"junk{index:02d}.bin"))
        kept = {f"junk{i:02d}.bin": sha256_file(
            os.path.join(mnt, f"junk{i:02d}.bin")) for i in (22, 23)}
    digests = {f"keep/{rel}": digest for rel, digest in digests.items()}
    digests.update(kept)
    umap = map_image(image)
    check_map(image, umap)
    # 2 MiB before the cluster heap, 4 MiB kept, some small files: far
    # below the 50 MiB that the deleted files' data still fills.
    assert umap.used_bytes < 10 * MiB
    restore_and_check(image, umap, digests, tmp_path)


def test_empty_volume_without_a_mount(tmp_path):
    image = tmp_path / "exfat.img"
    mkfs(image, 32 * MiB, "-L", "Empty")
    umap = map_image(image)
    check_map(image, umap)


def test_large_volume_maps_without_a_loop_per_cluster(tmp_path):
    """About 4 million clusters with a fragmented bitmap: a few Python lines
    per run, never a loop per cluster (a count, not a time: speed is the
    benchmark's), and the count still agrees with dump.exfat."""
    image = tmp_path / "big.img"
    with open(image, "wb") as f:
        f.truncate(2 << 30)
    run("mkfs.exfat", "-c", "512", image)
    umap = map_image(image)
    with open(image, "rb") as f:
        heap, count = struct.unpack_from("<II", f.read(512), 88)
    bitmap_at = heap * 512           # the bitmap is cluster 2, contiguous
    keep = (umap.used_bytes - heap * 512) // 512   # bitmap, up-case, root
    rng = random.Random(5)
    bits = bytearray((count + 7) // 8)
    for index in range(keep):
        bits[index // 8] |= 1 << index % 8
    cluster = keep + 1
    while cluster < count - 100:
        length = rng.randint(1, 64)
        for index in range(cluster, cluster + length):
            bits[index // 8] |= 1 << index % 8
        cluster += length + rng.randint(1, 64)
    with open(image, "r+b") as f:
        f.seek(bitmap_at)
        f.write(bits)
        f.seek(112)                  # PercentInUse: not kept, outside the
        f.write(b"\xff")             # boot checksum
    umap, lines = python_lines(lambda: map_image(image))
    assert count > 4_000_000
    check_map(image, umap)
    assert len(list(umap.runs)) > 50_000
    assert lines < count // 2, f"{lines} Python lines for {count} clusters"


# --- inconsistent structures -------------------------------------------------
def checksum(region, sector):
    """The boot checksum (exFAT spec 3.4), written here apart from the
    module so a patched boot sector can be made consistent again."""
    value = 0
    for index in range(11 * sector):
        if index in (106, 107, 112):
            continue
        value = ((value >> 1) | ((value & 1) << 31)) + region[index]
        value &= 0xFFFFFFFF
    return value


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    image = tmp_path_factory.mktemp("exfat") / "small.img"
    mkfs(image, 8 * MiB, "-L", "Small")
    return image.read_bytes()


def reader(data):
    return lambda offset, length: bytes(data[offset:offset + length])


def open_bytes(data, size=None):
    return exfat.open_volume(reader(data), len(data) if size is None
                             else size)


def patched(data, offset, fmt, value, fix_checksum=True):
    data = bytearray(data)
    struct.pack_into(fmt, data, offset, value)
    if fix_checksum:
        value = checksum(data, 512)
        data[11 * 512:12 * 512] = struct.pack("<I", value) * 128
    return data


def root_offset(data):
    heap, = struct.unpack_from("<I", data, 88)
    spc = 1 << data[109]
    root, = struct.unpack_from("<I", data, 96)
    return (heap + (root - 2) * spc) * 512


def test_small_image_maps(small_image):
    umap = open_bytes(small_image)
    assert umap.label == "Small" and umap.warnings == []


@pytest.mark.parametrize("offset, fmt, value, message", [
    (11, "<B", 1, "MustBeZero"),
    (108, "<B", 8, "BytesPerSectorShift"),
    (109, "<B", 20, "SectorsPerClusterShift"),
    (110, "<B", 3, "NumberOfFats"),
    (72, "<Q", 1 << 40, "larger than the partition"),
    (84, "<I", 1 << 20, "overlap"),                  # FatLength
    (80, "<I", 4, "overlap"),                        # FatOffset
    (92, "<I", 1 << 30, "ends past the volume"),      # ClusterCount
    (96, "<I", 1, "root directory cluster"),
    (96, "<I", 1 << 28, "root directory cluster"),
])
def test_bad_boot_sector_fields_raise(small_image, offset, fmt, value,
                                      message):
    with pytest.raises(MapError, match=message):
        open_bytes(patched(small_image, offset, fmt, value))


def test_dirty_volume_warns(small_image):
    umap = open_bytes(patched(small_image, 106, "<H", 0x2,
                              fix_checksum=False))     # not in the checksum
    assert any("VolumeDirty" in w for w in umap.warnings)


def test_boot_checksum_mismatch_raises(small_image):
    data = patched(small_image, 100, "<I", 0x12345678, fix_checksum=False)
    with pytest.raises(MapError, match="checksum"):
        open_bytes(data)


def test_partition_smaller_than_volume_raises(small_image):
    with pytest.raises(MapError, match="larger than the partition"):
        open_bytes(small_image, len(small_image) - 4096)


def test_not_exfat_is_none(small_image):
    data = bytearray(small_image)
    data[3:11] = b"MSDOS5.0"
    assert open_bytes(data) is None


def find_entry(data, entry_type):
    start = root_offset(data)
    for pos in range(start, start + 4096, 32):
        if data[pos] == entry_type:
            return pos
    raise AssertionError(f"no entry 0x{entry_type:02X}")


@pytest.mark.parametrize("field, fmt, value, message", [
    (0, "<B", 0x01, "no allocation bitmap"),     # entry marked unused
    (20, "<I", 1 << 30, "outside clusters"),        # FirstCluster
    (24, "<Q", 4, "too short"),                  # DataLength
])
def test_bad_bitmap_entry_raises(small_image, field, fmt, value, message):
    pos = find_entry(small_image, 0x81)
    data = patched(small_image, pos + field, fmt, value, fix_checksum=False)
    with pytest.raises(MapError, match=message):
        open_bytes(data)


def test_looping_root_chain_raises(small_image):
    fat_offset, = struct.unpack_from("<I", small_image, 80)
    root, = struct.unpack_from("<I", small_image, 96)
    data = patched(small_image, fat_offset * 512 + 4 * root, "<I", root,
                   fix_checksum=False)
    with pytest.raises(MapError, match="loops"):
        open_bytes(data)


def test_clusters_free_in_the_bitmap_are_kept_with_a_warning(small_image):
    pos = find_entry(small_image, 0x81)
    first, length = struct.unpack_from("<IQ", small_image, pos + 20)
    heap, = struct.unpack_from("<I", small_image, 88)
    bitmap = (heap + (first - 2) * (1 << small_image[109])) * 512
    umap = open_bytes(small_image)
    data = bytearray(small_image)
    data[bitmap:bitmap + length] = bytes(length)     # bitmap all free
    cleared = open_bytes(data)
    assert cleared.used_bytes == umap.used_bytes
    assert any("free in the allocation bitmap" in w
               for w in cleared.warnings)
