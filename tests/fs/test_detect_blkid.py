"""registry.detect names what `blkid -p` names (libblkid's own rules, read
in util-linux libblkid/src/superblocks/), on volumes made by the field's
tools and then patched the way real disks differ: swap with every page
size, hibernation images where swap was, FAT boot sectors whose type string
is not the usual one or whose BPB is insane, a BitLocker boot sector that
looks like FAT or NTFS, and the one FAT cluster count where we name it
otherwise.  Same TYPE, or both none (docs/filesystems/detection.md).
Damaged and truncated bodies are in tests/fs/test_detect_bodies.py."""

import os
import struct

import pytest

from diskimage.fs import registry
from diskimage.fs import swap
from tests.fsmaps import KiB, MiB, blkid, run

BLKID_FAT = {"FAT12": "fat12", "FAT16": "fat16", "FAT32": "fat32"}


def ours(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return registry.detect(lambda o, n: os.pread(fd, n, o), 0,
                               os.path.getsize(path))
    finally:
        os.close(fd)


def theirs(path):
    """blkid -p's TYPE in our names (vfat by its VERSION), or None."""
    tags = blkid(path)
    kind = tags.get("TYPE")
    if kind == "vfat":
        return BLKID_FAT.get(tags.get("VERSION"), "vfat")
    return kind


def agree(path, expected):
    """blkid -p says `expected` (the test's premise) and so do we."""
    assert theirs(path) == expected, blkid(path)
    assert ours(path) == expected


def patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def blank(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


# --- swap and hibernation images --------------------------------------------
@pytest.fixture
def swapfile(tmp_path):
    def make(page=4096, size=2 * MiB, label="sw"):
        path = blank(tmp_path / f"swap{page}.img", size)
        run("mkswap", "-q", "-p", page, "-L", label, path)
        return path
    return make


@pytest.mark.needs("mkswap", "blkid")
@pytest.mark.parametrize("page", [4096, 8192, 16384, 32768, 65536])
def test_swap_every_page_size(swapfile, page):
    path = swapfile(page)
    agree(path, "swap")
    fd = os.open(path, os.O_RDONLY)
    used = swap.open_volume(lambda o, n: os.pread(fd, n, o),
                            os.path.getsize(path))
    os.close(fd)
    tags = blkid(path)
    assert (used.block_size, used.used_bytes) == (page, page)
    assert (used.label, used.uuid) == (tags["LABEL"], tags["UUID"])


@pytest.mark.needs("mkswap", "blkid")
@pytest.mark.parametrize("page", [4096, 65536])
@pytest.mark.parametrize("magic", [b"S1SUSPEND", b"S2SUSPEND", b"ULSUSPEND",
                                   b"LINHIB0001"])
def test_hibernation_signature_is_swsuspend(swapfile, page, magic):
    path = swapfile(page)
    patch(path, page - 10, magic.ljust(10, b"\0"))
    agree(path, "swsuspend")


@pytest.mark.needs("mkswap", "blkid")
def test_tuxonice_keeps_the_swap_signature_and_is_swsuspend(swapfile):
    path = swapfile()
    patch(path, 0, swap.TUXONICE)
    with open(path, "rb") as f:
        assert f.read(4096)[-10:] == b"SWAPSPACE2"
    agree(path, "swsuspend")


@pytest.mark.needs("mkswap", "blkid")
@pytest.mark.parametrize("damage", ["version 0", "version 2", "no pages",
                                    "too small"])
def test_damaged_swap_is_nothing(swapfile, tmp_path, damage):
    path = swapfile()
    if damage == "too small":          # libblkid wants 10 pages of 4 KiB
        small = tmp_path / "small.img"
        small.write_bytes(path.read_bytes()[:36 * KiB])
        path = small
    else:
        field, value = {"version 0": (1024, 0), "version 2": (1024, 2),
                        "no pages": (1028, 0)}[damage]
        patch(path, field, struct.pack("<I", value))
    agree(path, None)


@pytest.mark.needs("mkswap", "blkid")
def test_big_endian_and_v0_swap(swapfile):
    path = swapfile()
    patch(path, 1024, struct.pack(">I", 1))
    agree(path, "swap")
    patch(path, 4096 - 10, b"SWAP-SPACE")
    agree(path, "swap")


# --- FAT --------------------------------------------------------------------
@pytest.fixture
def fatfile(tmp_path):
    def make(*options, size=8 * MiB, name="fat.img"):
        path = blank(tmp_path / name, size)
        run("mkfs.fat", *options, path)
        return path
    return make


FAT_VARIANTS = {
    "fat12": (["-F", "12"], 2 * MiB),
    "fat16": (["-F", "16"], 16 * MiB),
    "fat32": (["-F", "32"], 40 * MiB),
    "fat12-one-fat": (["-F", "12", "-f", "1"], 2 * MiB),
    "fat16-8-sectors-per-cluster": (["-F", "16", "-s", "8"], 40 * MiB),
    "fat16-2k-sectors": (["-F", "16", "-S", "2048"], 64 * MiB),
    "fat32-4k-sectors": (["-F", "32", "-S", "4096"], 40 * MiB),
    "fat32-1k-sectors-2-per-cluster": (["-F", "32", "-S", "1024", "-s", "2"],
                                       40 * MiB),
    "fat16-many-reserved": (["-F", "16", "-R", "32"], 16 * MiB),
    "fat12-media-f0": (["-F", "12", "-M", "0xF0"], 2 * MiB),
    "fat32-no-fsinfo-backup": (["-F", "32", "-b", "0"], 40 * MiB),
}


@pytest.mark.needs("mkfs.fat", "blkid")
@pytest.mark.parametrize("variant", sorted(FAT_VARIANTS))
def test_fat_variants(fatfile, variant):
    options, size = FAT_VARIANTS[variant]
    path = fatfile(*options, size=size)
    agree(path, variant.split("-")[0])


# where the type string is: FAT12/16 at 0x36, FAT32 at 0x52
TYPE_AT = {"fat12": 0x36, "fat16": 0x36, "fat32": 0x52}
FAT_SIZES = {"fat12": 2 * MiB, "fat16": 16 * MiB, "fat32": 40 * MiB}


@pytest.mark.needs("mkfs.fat", "blkid")
@pytest.mark.parametrize("kind", sorted(TYPE_AT))
@pytest.mark.parametrize("string", [b"        ", b"MSDOS   ", b"FAT     ",
                                    b"XYZZY123"])
def test_fat_type_string_is_not_what_names_it(fatfile, kind, string):
    path = fatfile("-F", kind[3:], size=FAT_SIZES[kind])
    patch(path, TYPE_AT[kind], string)
    agree(path, kind)


@pytest.mark.needs("mkfs.fat", "blkid")
def test_fat_without_jump_or_string_needs_the_boot_signature(fatfile):
    path = fatfile("-F", "16", size=16 * MiB)
    patch(path, 0, b"\0\0\0")
    patch(path, 0x36, b"        ")
    agree(path, "fat16")                 # 55 AA alone, the BPB sane
    patch(path, 510, b"\0\0")
    agree(path, None)


FAT_DAMAGE = {
    # name: (offset, bytes)
    "no FATs": (0x10, b"\0"),
    "no reserved sectors": (0x0E, b"\0\0"),
    "media byte 0x00": (0x15, b"\0"),
    "media byte 0xF1": (0x15, b"\xf1"),
    "3 sectors per cluster": (0x0D, b"\x03"),
    "0 sectors per cluster": (0x0D, b"\x00"),
    "sector size 256": (0x0B, struct.pack("<H", 256)),
    "sector size 8192": (0x0B, struct.pack("<H", 8192)),
    "sector size 768": (0x0B, struct.pack("<H", 768)),
}


@pytest.mark.needs("mkfs.fat", "blkid")
@pytest.mark.parametrize("damage", sorted(FAT_DAMAGE))
@pytest.mark.parametrize("kind", ["fat12", "fat32"])
def test_fat_with_a_bad_bpb_is_nothing(fatfile, kind, damage):
    path = fatfile("-F", kind[3:], size=FAT_SIZES[kind])
    patch(path, *FAT_DAMAGE[damage])
    agree(path, None)


@pytest.mark.needs("mkfs.fat", "blkid")
def test_fat12_bpb_with_too_many_clusters_is_nothing(fatfile):
    path = fatfile("-F", "16", size=16 * MiB)
    patch(path, 0x13, b"\0\0")           # the total in the 32-bit field
    patch(path, 0x20, struct.pack("<I", 0xFFFF00))
    agree(path, None)


@pytest.mark.needs("mkfs.fat", "blkid")
@pytest.mark.parametrize("sig", ["lead", "trail"])
def test_fat32_fsinfo_signature(fatfile, sig):
    path = fatfile("-F", "32", size=40 * MiB)
    patch(path, 512 + (0 if sig == "lead" else 484), b"XXXX")
    agree(path, None)
    patch(path, 512 + (0 if sig == "lead" else 484), bytes(4))
    agree(path, "fat32")                 # an unsigned FSInfo is allowed


# --- BitLocker ----------------------------------------------------------------
def bitlocker_like(path, version, fve_at=64 * KiB):
    """Turn the boot sector of the volume at `path` into BitLocker's: its
    jump and OEM name, the offset of an FVE metadata block, and that
    block's signature."""
    if version == "vista":
        patch(path, 0, b"\xeb\x52\x90-FVE-FS-")
        return
    patch(path, 0, b"\xeb\x58\x90" +
          (b"-FVE-FS-" if version == "win7" else b"MSWIN4.1"))
    patch(path, 176 if version == "win7" else 440, struct.pack("<Q", fve_at))
    patch(path, fve_at, b"-FVE-FS-" + struct.pack("<HH", 0, 2))


@pytest.mark.needs("mkfs.fat", "mkntfs", "blkid")
@pytest.mark.parametrize("version", ["vista", "win7", "togo"])
@pytest.mark.parametrize("under", ["fat32", "ntfs"])
def test_bitlocker_is_never_fat_or_ntfs(fatfile, tmp_path, version, under):
    if under == "fat32":
        path = fatfile("-F", "32", size=40 * MiB)
    else:
        path = blank(tmp_path / "ntfs.img", 16 * MiB)
        run("mkntfs", "-q", "-F", "-f", path)
    bitlocker_like(path, version)
    agree(path, "BitLocker")


@pytest.mark.needs("mkfs.fat", "blkid")
@pytest.mark.parametrize("fve_at", [0, 100, 64 * KiB])
def test_togo_without_fve_metadata_is_fat(fatfile, fve_at):
    path = fatfile("-F", "32", size=40 * MiB)
    bitlocker_like(path, "togo", fve_at=64 * KiB)
    patch(path, 440, struct.pack("<Q", fve_at))
    if fve_at == 64 * KiB:
        patch(path, fve_at, b"-NOT-FVE")
    if fve_at == 100:
        patch(path, 100, b"-FVE-FS-")
    assert ours(path) == "fat32"
    if fve_at != 100:                  # 2.38.1 does not check alignment
        assert theirs(path) == "fat32"


# --- the one place we name FAT differently ------------------------------------
@pytest.mark.needs("mkfs.fat", "fsck.fat", "blkid")
@pytest.mark.parametrize("clusters", [4083, 4084])
def test_fat12_at_4084_clusters(tmp_path, clusters):
    """libblkid calls 4084 clusters FAT16 (FAT12 below 0xFF4), the FAT
    specification, Linux and fsck.fat FAT12 (up to 4084): detection says
    what blkid says, the map reads 12-bit entries as fsck.fat does, and the
    area is named by the map."""
    path = blank(tmp_path / "fat.img", 4141 * 512)
    run("mkfs.fat", "-F", "12", "-s", "1", "-r", "512", "-R", "1", path)
    total, = struct.unpack_from("<H", path.read_bytes(), 19)
    made = int(next(line.split()[0] for line in run(
        "fsck.fat", "-nv", path).stdout.splitlines()
        if "data clusters" in line))
    total += clusters - made
    patch(path, 19, struct.pack("<H", total))
    os.truncate(path, total * 512)
    checked = run("fsck.fat", "-nv", path).stdout
    assert f"{clusters} data clusters" in checked
    assert "12 bit entries" in checked
    blkid_kind = "fat12" if clusters < 4084 else "fat16"
    agree(path, blkid_kind)
    fd = os.open(path, os.O_RDONLY)
    assert registry.used_map(lambda o, n: os.pread(fd, n, o), 0,
                             total * 512, blkid_kind).kind == "fat12"
    os.close(fd)
