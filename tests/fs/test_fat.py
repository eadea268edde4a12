"""FAT12/16/32 used-cluster maps (diskimage.fs.fat.used) against dosfstools and
mtools on real images made by mkfs.fat and filled with mcopy.

Used clusters are checked against `fsck.fat -n -v` ("N files, U/T
clusters") and mtools' `mdir` ("bytes free"); the map is checked complete
by a map-only restore into random bytes followed by fsck.fat and a
comparison of every file's sha256.
"""

import os
import random
import re
import struct
import subprocess

import pytest

import demodisk
from diskimage.fs.fat import used as fat
from diskimage.fs.fat.mtools import mtools_env
from demodisk import sha256_file
from tests.fsmaps import (blkid, map_only_restore, materialized, python_lines,
                          random_fill)
from diskimage.fs.usedmap import MapError

KiB, MiB = 1 << 10, 1 << 20
MTOOLS_ENV = mtools_env()

pytestmark = pytest.mark.needs("mkfs.fat", "fsck.fat", "mcopy")


# --- helpers -----------------------------------------------------------------
def run(*args, env=None):
    return subprocess.run([str(a) for a in args], check=True, text=True,
                          capture_output=True, env=env,
                          stdin=subprocess.DEVNULL).stdout


def mkfs(path, bits, size_kib, *extra):
    run("mkfs.fat", "-C", "-F", bits, *extra, path, size_kib)


def mcopy(image, source):
    entries = [os.path.join(source, e) for e in sorted(os.listdir(source))]
    run("mcopy", "-s", "-Q", "-i", image, *entries, "::/", env=MTOOLS_ENV)


def file_reader(path):
    fd = os.open(path, os.O_RDONLY)
    return lambda offset, length: os.pread(fd, length, offset)


def map_image(path):
    return fat.open_volume(file_reader(path), os.path.getsize(path))


def bytes_reader(data):
    return lambda offset, length: bytes(data[offset:offset + length])


def fsck_report(path):
    """fsck.fat -n -v's own numbers: cluster size, data start, clusters
    used and in total, sector size and count."""
    out = run("fsck.fat", "-n", "-v", path)
    number = lambda pattern: int(re.search(pattern, out, re.M).group(1))
    used, total = map(int, re.search(r"\d+ files?, (\d+)/(\d+) clusters",
                                     out).groups())
    return {"cluster": number(r"^\s*(\d+) bytes per cluster"),
            "data_start": number(r"Data area starts at byte (\d+)"),
            "sector": number(r"^\s*(\d+) bytes per logical sector"),
            "sectors": number(r"^\s*(\d+) sectors total"),
            "used": used, "clusters": total}


def mdir_free(path):
    out = run("mdir", "-i", path, "::/", env=MTOOLS_ENV)
    return int(re.search(r"([\d ]+) bytes free", out).group(1)
               .replace(" ", ""))


def check_map(image, umap, kind):
    """The map against fsck.fat, mdir and blkid."""
    report = fsck_report(image)
    assert umap.kind == kind
    assert umap.block_size == report["cluster"]
    assert umap.total_bytes == report["sector"] * report["sectors"]
    runs = list(umap.runs)
    assert runs[0][0] == 0
    assert runs[0][1] >= report["data_start"]
    assert umap.used_bytes == sum(n for _, n in runs)
    assert all(a[0] + a[1] < b[0] for a, b in zip(runs, runs[1:]))
    used = (umap.used_bytes - report["data_start"]) // report["cluster"]
    assert used == report["used"]
    assert mdir_free(image) == (report["clusters"] - used) * report["cluster"]
    ids = blkid(image)
    assert umap.uuid == ids["UUID"]
    assert umap.label == ids.get("LABEL", "")


def restore_and_check(image, umap, kind, digests, tmp_path):
    target = tmp_path / "restored.img"
    map_only_restore(image, target, umap.runs, seed=99)
    clean, output = demodisk.fsck(target, 0, os.path.getsize(image), kind)
    assert clean, output
    assert demodisk.read_files(target, 0, os.path.getsize(image),
                               kind) == digests


# --- real filesystems --------------------------------------------------------
VARIANTS = {
    # name: (FAT bits, size in KiB, mkfs.fat options, files, largest file)
    "fat12-floppy": (12, 1440, ("-n", "FLOPPY"), 30, 16 * KiB),
    "fat16": (16, 64 * 1024, ("-n", "DATA16"), 150, 64 * KiB),
    "fat32": (32, 100 * 1024, ("-n", "DATA32"), 150, 64 * KiB),
    # mtools counts clusters to tell FAT16 from FAT32, so it needs at least
    # 65525 of them: 300 MiB of 4 KiB clusters
    "fat32-4k-sectors": (32, 300 * 1024, ("-S", "4096", "-n", "DATA4K"),
                         120, 64 * KiB),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_used_clusters_match_fsck_and_restore(tmp_path, monkeypatch,
                                              variant):
    bits, size_kib, options, count, max_size = VARIANTS[variant]
    image = str(tmp_path / "fat.img")
    mkfs(image, bits, size_kib, *options)
    digests = demodisk.make_tree(tmp_path / "src", count, seed=bits,
                                 max_size=max_size)
    mcopy(image, tmp_path / "src")
    umap = materialized(map_image(image))
    check_map(image, umap, f"fat{bits}")
    assert umap.warnings == []
    assert umap.used_bytes < os.path.getsize(image)
    monkeypatch.setattr(fat, "CHUNK_ENTRIES", 998)   # runs across chunks
    assert materialized(map_image(image)) == umap
    restore_and_check(image, umap, f"fat{bits}", digests, tmp_path)


def test_small_fat32_is_fat32_by_its_bpb(tmp_path):
    """mkfs.fat makes FAT32 with fewer than 65525 clusters (100 MiB of 4 KiB
    sectors); fsck.fat and Linux take it as FAT32 by its BPB, so do we (the
    count alone would say FAT16), with a warning."""
    image = str(tmp_path / "fat.img")
    mkfs(image, 32, 100 * 1024, "-S", "4096")
    umap = map_image(image)
    report = fsck_report(image)
    assert report["clusters"] < 65525
    assert umap.kind == "fat32" and umap.block_size == 4096
    assert (umap.used_bytes - report["data_start"]) // 4096 == report["used"]
    assert any("fewer than 65525" in w for w in umap.warnings)
    restore_and_check(image, umap, "fat32", {}, tmp_path)


def test_garbage_of_deleted_files_is_left_out(tmp_path):
    image = str(tmp_path / "fat.img")
    size = 64 * MiB
    mkfs(image, 32, size // KiB, "-n", "GARBAGE")
    src = tmp_path / "src"
    src.mkdir()
    for index in range(24):
        random_fill(src / f"junk{index:02d}.bin", 2 * MiB + index * 777,
                    seed=index)
    digests = demodisk.make_tree(src / "keep", 40, seed=5, max_size=32 * KiB)
    digests = {f"keep/{rel}": digest for rel, digest in digests.items()}
    mcopy(image, src)
    run("mdel", "-i", image, *(f"::/junk{i:02d}.bin" for i in range(22)),
        env=MTOOLS_ENV)
    digests.update({f"junk{i:02d}.bin": sha256_file(
        src / f"junk{i:02d}.bin") for i in (22, 23)})
    umap = map_image(image)
    check_map(image, umap, "fat32")
    # what the tool says is used, plus the FATs: far below the 50 MiB the
    # deleted files' data still fills.
    assert umap.used_bytes < 8 * MiB
    restore_and_check(image, umap, "fat32", digests, tmp_path)


def test_large_fat32_maps_without_a_loop_per_cluster(tmp_path, monkeypatch):
    """About 4 million clusters, fragmented files: Python runs a few lines
    per run of clusters, never a loop per cluster (a count, not a time:
    speed is the benchmark's)."""
    image = str(tmp_path / "big.img")
    with open(image, "wb") as f:
        f.truncate(2 << 30)
    run("mkfs.fat", "-F", "32", "-s", "1", image)
    with open(image, "r+b") as f:
        boot = f.read(512)
    reserved, nfats = struct.unpack_from("<H", boot, 14)[0], boot[16]
    total_sectors, fat_sectors = struct.unpack_from("<2I", boot, 32)
    entries = fat_sectors * 512 // 4
    clusters = total_sectors - reserved - nfats * fat_sectors   # 1 sector
    rng = random.Random(3)
    table = bytearray(entries * 4)
    struct.pack_into("<3I", table, 0, 0x0FFFFFF8, 0x0FFFFFFF, 0x0FFFFFFF)
    cluster, used = 3, 1
    while cluster < clusters + 2 - 200:
        run_length = rng.randint(1, 64)
        for c in range(cluster, cluster + run_length - 1):
            struct.pack_into("<I", table, 4 * c, c + 1)
        struct.pack_into("<I", table, 4 * (cluster + run_length - 1),
                         0x0FFFFFFF)
        used += run_length
        cluster += run_length + rng.randint(1, 64)
    with open(image, "r+b") as f:
        for number in range(nfats):
            f.seek((reserved + number * fat_sectors) * 512)
            f.write(table)
    umap, lines = python_lines(lambda: materialized(map_image(image)))
    data_start = (reserved + nfats * fat_sectors) * 512
    assert (umap.used_bytes - data_start) // 512 == used
    assert clusters > 4_000_000
    assert lines < clusters // 2, f"{lines} Python lines for {clusters} clusters"
    monkeypatch.setattr(fat, "CHUNK_ENTRIES", 1 << 20)
    assert materialized(map_image(image)) == umap


# --- the FAT decoder on in-memory bytes --------------------------------------
def naive_entries(raw, bits):
    if bits == 12:
        return [(int.from_bytes(raw[i * 3 // 2:i * 3 // 2 + 2], "little")
                 >> (4 * (i & 1))) & 0xFFF for i in range(len(raw) * 2 // 3)]
    width = bits // 8
    mask = 0x0FFFFFFF if bits == 32 else 0xFFFF
    return [int.from_bytes(raw[i:i + width], "little") & mask
            for i in range(0, len(raw), width)]


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_entry_flags_match_a_plain_decoder(bits):
    rng = random.Random(bits)
    bad = {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}[bits]
    values = [rng.choice([0, 0, 0, bad, 1, rng.getrandbits(bits)])
              for _ in range(3000)]
    if bits == 32:          # the top nibble is reserved: ignored
        values = [v | rng.getrandbits(4) << 28 for v in values]
        raw = b"".join(v.to_bytes(4, "little") for v in values)
    elif bits == 16:
        raw = b"".join(v.to_bytes(2, "little") for v in values)
    else:
        raw = b"".join((a | b << 12).to_bytes(3, "little")
                       for a, b in zip(values[::2], values[1::2]))
    entries = naive_entries(raw, bits)
    nonzero, marked = fat._entry_flags(raw, bits)
    assert list(nonzero) == [int(e != 0) for e in entries]
    assert list(marked) == [int(e == bad) for e in entries]


# --- inconsistent structures -------------------------------------------------
@pytest.fixture(scope="module")
def fat16_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("fat16") / "fat16.img"
    mkfs(path, 16, 16 * 1024, "-n", "SMALL")
    source = tmp_path_factory.mktemp("fat16src")
    (source / "a.txt").write_bytes(b"x" * 5000)
    mcopy(str(path), source)
    return path.read_bytes()


@pytest.fixture(scope="module")
def fat32_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("fat32") / "fat32.img"
    mkfs(path, 32, 40 * 1024)
    return path.read_bytes()


def patched(data, offset, fmt, value):
    data = bytearray(data)
    struct.pack_into(fmt, data, offset, value)
    return data


@pytest.mark.parametrize("offset, fmt, value, message", [
    (11, "<H", 1000, "bytes per sector"),
    (13, "<B", 3, "not a power of two"),
    (13, "<B", 0, "not a power of two"),
    (16, "<B", 0, "zero FATs"),
    (14, "<H", 0, "reserved"),
    (22, "<H", 0xFFFF, "past the volume"),           # FAT far too big
    (19, "<H", 0xFFFF, "larger than the partition"),
    (21, "<B", 0xF0, "media byte"),
    (22, "<H", 1, "cannot hold"),                   # FAT far too small
    (17, "<H", 0, "BPB_RootEntCnt"),
])
def test_bad_fat16_fields_raise(fat16_image, offset, fmt, value, message):
    data = patched(fat16_image, offset, fmt, value)
    with pytest.raises(MapError, match=message):
        fat.open_volume(bytes_reader(data), len(data))


@pytest.mark.parametrize("offset, fmt, value, message", [
    (44, "<I", 1, "root cluster"),
    (44, "<I", 0x0FFFFFF0, "root cluster"),
    (44, "<I", 5000, "free in the FAT"),
    (40, "<H", 0x85, "active FAT"),
    (32, "<I", 0x7FFFFFFF, "larger than the partition"),
    (17, "<H", 512, "BPB_RootEntCnt"),
])
def test_bad_fat32_fields_raise(fat32_image, offset, fmt, value, message):
    data = patched(fat32_image, offset, fmt, value)
    with pytest.raises(MapError, match=message):
        fat.open_volume(bytes_reader(data), len(data))


def test_partition_smaller_than_filesystem_raises(fat16_image):
    with pytest.raises(MapError, match="larger than the partition"):
        fat.open_volume(bytes_reader(fat16_image), len(fat16_image) - 512)


@pytest.mark.parametrize("offset, value", [(510, b"\0\0"), (0, b"\0\0\0"),
                                           (3, b"NTFS    ")])
def test_not_fat_is_none(fat16_image, offset, value):
    data = bytearray(fat16_image)
    data[offset:offset + len(value)] = value
    assert fat.open_volume(bytes_reader(data), len(data)) is None


def test_bad_clusters_are_left_out_and_copies_united(fat16_image):
    data = bytearray(fat16_image)
    umap = fat.open_volume(bytes_reader(data), len(data))
    reserved, fat_sectors = (struct.unpack_from("<H", data, o)[0]
                             for o in (14, 22))
    first, second = reserved * 512, (reserved + fat_sectors) * 512
    # cluster 100 bad in both FATs, cluster 200 used in the second only
    for start in (first, second):
        struct.pack_into("<H", data, start + 200, 0xFFF7)
    struct.pack_into("<H", data, second + 400, 0xFFFF)
    changed = fat.open_volume(bytes_reader(data), len(data))
    assert changed.used_bytes == umap.used_bytes + changed.block_size
    assert any("marked bad" in w for w in changed.warnings)
    assert any("FAT copies differ" in w for w in changed.warnings)
