"""diskimage.tables.partitions reading MBR disks (primary, extended and
logical partitions, EBR chains), disks without a table and whole-disk FAT,
against the reference tool (GPT disks are in test_read_gpt.py).

Disk images are built with sfdisk and mkfs.fat; every expected number comes
from ``sfdisk --json`` on the same file, never from the code under test.
Each image is built once per session (read only) and copied per test.
"""

import os
import struct
import subprocess

import pytest

from diskimage.errors import TableError
from diskimage.tables.partitions import read_table
from diskimage.structs import Struct
from tests.tables.table_tools import (EXTENDED, MIB, MKFS_FAT, check_layout,
                                      expected, make_disk, needs_mkfs_fat,
                                      needs_sfdisk, ours, parse, peek, poke,
                                      sfdisk_json)


# -- MBR -------------------------------------------------------------------------

@needs_sfdisk
def test_mbr_matches_sfdisk(mbr_disk):
    pt = sfdisk_json(mbr_disk)
    table = parse(mbr_disk)
    assert table.kind == "mbr"
    assert table.warnings == []
    assert table.disk_id == pt["id"]
    assert ours(table) == expected(mbr_disk, pt)
    assert [p.number for p in table.partitions] == [1, 2, 5, 6, 7]
    assert [p.type for p in table.partitions][:2] == ["0x83", "0x07"]
    check_layout(table)


@needs_sfdisk
def test_mbr_areas(mbr_disk):
    pt = sfdisk_json(mbr_disk)
    ss = pt["sectorsize"]
    table = parse(mbr_disk)
    head, *ebrs = table.areas
    assert (head.kind, head.start, head.size) == ("head", 0, pt["partitions"][0]["start"] * ss)
    ext = next(p for p in pt["partitions"] if int(p["type"], 16) in EXTENDED)
    logicals = [p for p in pt["partitions"] if int(p["node"][len(str(mbr_disk)):]) >= 5]
    assert [a.kind for a in ebrs] == ["ebr"] * len(logicals)
    assert ebrs[0].start == ext["start"] * ss
    for area, logical in zip(ebrs, logicals):
        assert area.start + area.size == logical["start"] * ss
        assert ext["start"] * ss <= area.start < (ext["start"] + ext["size"]) * ss
        assert peek(mbr_disk, area.start + 510, 2) == b"\x55\xaa"


def _ebr_links(path, ext_start):
    """(offset of the link record's starting_lba, its value) along the chain."""
    links, ebr = [], ext_start
    while True:
        at = ebr * 512 + 446 + 16 + 8
        (rel,) = struct.unpack("<I", peek(path, at, 4))
        (size,) = struct.unpack("<I", peek(path, at + 4, 4))
        if not size:
            return links
        links.append((at, rel))
        ebr = ext_start + rel


@needs_sfdisk
def test_ebr_loop_is_an_error(mbr_disk):
    ext = next(p for p in sfdisk_json(mbr_disk)["partitions"] if p["type"] == "5")
    links = _ebr_links(mbr_disk, ext["start"])
    assert len(links) == 2
    poke(mbr_disk, links[1][0], struct.pack("<I", links[0][1]))   # 3rd EBR -> 2nd
    with pytest.raises(TableError, match="loops"):
        parse(mbr_disk)


@needs_sfdisk
def test_ebr_link_outside_the_extended_partition(mbr_disk):
    ext = next(p for p in sfdisk_json(mbr_disk)["partitions"] if p["type"] == "5")
    at, _ = _ebr_links(mbr_disk, ext["start"])[0]
    poke(mbr_disk, at, struct.pack("<I", ext["size"] + 8))
    with pytest.raises(TableError, match="outside"):
        parse(mbr_disk)


@needs_sfdisk
def test_partition_past_the_disk_end(tmp_path):
    path = make_disk(tmp_path / "d.img", 32 * MIB, "label: dos\nsize=8M\nsize=8M\n")
    os.truncate(path, 12 * MIB)
    with pytest.raises(TableError, match="partition 2"):
        parse(path)


# -- no table ------------------------------------------------------------------------

def test_blank_disk(tmp_path):
    table = parse(make_disk(tmp_path / "d.img", 4 * MIB))
    assert (table.kind, table.partitions, table.areas, table.disk_id) == ("none", [], [], "")


def test_tiny_disk():
    table = read_table(lambda offset, length: b"\0" * 100, 100)
    assert table.kind == "none"


@needs_sfdisk
def test_empty_dos_table(tmp_path):
    path = make_disk(tmp_path / "d.img", 4 * MIB, "label: dos\n")
    assert peek(path, 510, 2) == b"\x55\xaa"
    assert "partitions" not in sfdisk_json(path)
    table = parse(path)
    assert (table.kind, table.partitions, table.areas) == ("none", [], [])


@needs_mkfs_fat
@pytest.mark.parametrize("args", [["-F", "32"], ["-F", "16"], ["--mbr=y"]])
def test_whole_disk_fat(tmp_path, args):
    path = make_disk(tmp_path / "d.img", 64 * MIB)
    done = subprocess.run([MKFS_FAT, *args, str(path)], capture_output=True, text=True)
    if done.returncode and "--mbr=y" in args:
        pytest.skip("this mkfs.fat has no --mbr option")
    assert done.returncode == 0, done.stderr
    assert peek(path, 510, 2) == b"\x55\xaa"
    table = parse(path)
    assert (table.kind, table.partitions, table.areas) == ("none", [], [])


def _boot_sector(oem, fs_type_at=None, fs_type=b""):
    sector = bytearray(512)
    sector[0:3] = b"\xeb\x3c\x90"
    sector[3:11] = oem
    if fs_type_at:
        sector[fs_type_at:fs_type_at + 8] = fs_type
    sector[510:512] = b"\x55\xaa"
    return sector


@pytest.mark.parametrize("sector", [
    _boot_sector(b"MSDOS5.0", 54, b"FAT16   "),
    _boot_sector(b"mkfs.fat", 82, b"FAT32   "),
    _boot_sector(b"NTFS    "),
    _boot_sector(b"EXFAT   "),
])
@pytest.mark.parametrize("records", [
    bytes(range(1, 65)),                                    # bad boot indicators
    struct.pack("<B3sB3sII", 0, b"", 0x07, b"", 63, 0x7FFFFFFF) + bytes(48),  # past the end
])
def test_boot_sector_with_garbage_records_is_none(sector, records):
    sector[446:510] = records
    disk = bytes(sector) + bytes(8 * MIB - 512)
    table = read_table(lambda offset, length: disk[offset:offset + length], len(disk))
    assert (table.kind, table.partitions, table.areas) == ("none", [], [])
    assert table.warnings


def test_plain_mbr_past_the_end_is_an_error():
    sector = bytearray(512)
    sector[446:462] = struct.pack("<B3sB3sII", 0, b"", 0x83, b"", 2048, 1 << 20)
    sector[510:512] = b"\x55\xaa"
    disk = bytes(sector) + bytes(8 * MIB - 512)
    with pytest.raises(TableError, match="MBR partition 1"):
        read_table(lambda offset, length: disk[offset:offset + length], len(disk))


def test_struct_size_is_checked():
    with pytest.raises(AssertionError):
        Struct("thing", [("I", "a"), ("H", "b")], size=8)
