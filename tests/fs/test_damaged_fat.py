"""Damaged FAT and NTFS volumes never lose data silently: built with
mkfs.fat and mtools (or mkntfs), damaged with byte edits in the way dd
would make them, captured with `rdeploy capture` and restored onto
garbage; `fsck.fat -n` (or `ntfsfix -n`) gives the same verdict on the copy
as on the original, and capture warns naming the reason when the map was
not used.  FATs that differ and a stale FSInfo keep the map (the first is
mapped as the union of the copies, the second is advisory: fsck.fat
corrects it from the FAT)."""

import os
import random
import re
import struct

import pytest

from tests.fs.damaged_tools import MiB, damaged_round_trip, run
from tests.fs.ntfs_tools import mft_runlist, mkntfs
from tests.fsmaps import MTOOLS_ENV

pytestmark = pytest.mark.needs("mkfs.fat", "fsck.fat", "mcopy", "mshowfat",
                               "sfdisk")

TRUSTED = "its allocation maps cannot be trusted"


def make_fat(tmp_path, bits, kib):
    """A FAT volume of `kib` KiB over garbage holding /SUB/G0..G2 (20 000
    random bytes each) and /TOP.BIN.  Returns (image, layout), the layout
    read from fsck.fat -v: FAT offset and size, and where each file's
    clusters are (mshowfat)."""
    rng = random.Random(bits)
    image, src = tmp_path / "fs.img", tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for k in range(3):
        (src / "sub" / f"g{k}").write_bytes(rng.randbytes(20_000))
    (src / "top.bin").write_bytes(rng.randbytes(30_000))
    image.write_bytes(rng.randbytes(kib * 1024))
    run("mkfs.fat", "-F", bits, "-s", 1, "-n", "DAMAGED", image)
    run("mcopy", "-s", "-i", image, src / "sub", src / "top.bin", "::/",
        env=MTOOLS_ENV)
    text = run("fsck.fat", "-v", "-n", image).stdout
    number = lambda pattern: int(re.search(pattern, text).group(1))
    layout = {"fat": number(r"First FAT starts at byte (\d+)"),
              "fat_bytes": number(r"(\d+) bytes per FAT"),
              "bits": bits}
    for name in ("sub/g1", "top.bin"):
        shown = run("mshowfat", "-i", image, f"::/{name}",
                    env=MTOOLS_ENV).stdout
        first, last = map(int, re.search(r"<(\d+)-(\d+)>", shown).groups())
        layout[name] = (first, last)
    shown = run("mshowfat", "-i", image, "::/sub", env=MTOOLS_ENV).stdout
    layout["sub"] = int(re.search(r"<(\d+)", shown).group(1))
    return image, layout


def set_entry(image, layout, cluster, value, copies=(0, 1)):
    """FAT entry `cluster` set to `value` in the FAT copies named."""
    width = layout["bits"] // 8
    with open(image, "r+b") as f:
        for copy in copies:
            f.seek(layout["fat"] + copy * layout["fat_bytes"] +
                   cluster * width)
            f.write(value.to_bytes(width, "little"))


def fat_round_trip(image, tmp_path):
    before, after, stderr, rdi, where = damaged_round_trip(
        image, "fat16", "fat", tmp_path)
    assert after == before
    return before, stderr, rdi


@pytest.mark.parametrize("bits, kib", [(16, 16 * 1024), (32, 40 * 1024)])
def test_chain_into_free_space(tmp_path, bits, kib):
    image, layout = make_fat(tmp_path, bits, kib)
    first, last = layout["sub/g1"]
    set_entry(image, layout, first + 3, 0)
    (klass, lines), stderr, rdi = fat_round_trip(image, tmp_path)
    assert klass == 1 and f"  Contains a free cluster ({first + 3}). " \
        f"Assuming EOF." in lines
    assert TRUSTED in stderr and f"cluster {first + 2}'s chain runs into " \
        f"free cluster {first + 3}" in stderr, stderr


def test_directory_starting_in_a_free_cluster(tmp_path):
    image, layout = make_fat(tmp_path, 16, 16 * 1024)
    set_entry(image, layout, layout["sub"], 0)
    (klass, lines), stderr, rdi = fat_round_trip(image, tmp_path)
    assert klass == 1 and f"  Contains a free cluster ({layout['sub']}). " \
        f"Assuming EOF." in lines
    assert TRUSTED in stderr and "root directory entry 'SUB' starts in " \
        f"free cluster {layout['sub']}" in stderr, stderr


def test_fats_that_differ_keep_the_union(tmp_path):
    """The second FAT loses a chain's middle: fsck.fat uses the first; the
    map keeps every cluster used in either, so the copy says the same."""
    image, layout = make_fat(tmp_path, 16, 16 * 1024)
    first, last = layout["top.bin"]
    set_entry(image, layout, first + 1, 0, copies=(1,))
    (klass, lines), stderr, rdi = fat_round_trip(image, tmp_path)
    assert klass == 1 and "FATs differ but appear to be intact." in lines
    assert TRUSTED not in stderr and "the FAT copies differ" in stderr


def test_fsinfo_count_that_disagrees_is_advisory(tmp_path):
    image, layout = make_fat(tmp_path, 32, 40 * 1024)
    with open(image, "r+b") as f:
        f.seek(512 + 488)                   # FSI_Free_Count of sector 1
        f.write(struct.pack("<I", 100))
    (klass, lines), stderr, rdi = fat_round_trip(image, tmp_path)
    assert klass == 1 and any(line.startswith(
        "Free cluster summary wrong (100 vs. really") for line in lines)
    assert TRUSTED not in stderr and "FSInfo says 100 free clusters" in stderr


def test_clean_fat_control_uses_the_map(tmp_path):
    image, layout = make_fat(tmp_path, 16, 16 * 1024)
    (klass, lines), stderr, rdi = fat_round_trip(image, tmp_path)
    assert klass == 0 and "warning" not in stderr, stderr
    # 90 000 bytes of files in 16 MiB of garbage
    assert os.path.getsize(rdi) < MiB


@pytest.mark.needs("mkntfs", "ntfsinfo", "ntfsfix")
def test_ntfs_logfile_marked_free(tmp_path):
    """$LogFile's first cluster cleared in $Bitmap: ntfsfix -n's verdict
    on the copy equals the original's; the map is refused."""
    image = mkntfs(tmp_path / "fs.img", 16 * MiB)
    (_, bitmap_lcn, _), = mft_runlist(image, 6)[0][:1]
    logfile_lcn = mft_runlist(image, 2)[0][0][1]
    cluster = int(re.search(r"Cluster Size:\s*(\d+)",
                            run("ntfsinfo", "-m", image).stdout).group(1))
    where = bitmap_lcn * cluster + logfile_lcn // 8
    with open(image, "r+b") as f:
        f.seek(where)
        byte = f.read(1)[0]
        f.seek(where)
        f.write(bytes([byte & ~(1 << logfile_lcn % 8) & 0xFF]))
    before, after, stderr, _, _ = damaged_round_trip(image, "ntfs", "ntfs",
                                                     tmp_path)
    assert after == before
    assert TRUSTED in stderr and re.search(
        rf"marks clusters {logfile_lcn}-\d+ of \$LogFile free", stderr), stderr
