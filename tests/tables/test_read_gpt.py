"""diskimage.tables.partitions reading GPT disks, against the reference
tool (MBR disks and disks without a table are in test_read_mbr.py).

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
from tests.tables.table_tools import (GPT_SCRIPT, MIB, SFDISK, check_layout,
                                      expected, flip, make_disk, needs_sfdisk,
                                      ours, parse, peek, poke, sfdisk_json)


# -- GPT -------------------------------------------------------------------------

@needs_sfdisk
def test_gpt_matches_sfdisk(gpt_disk):
    pt = sfdisk_json(gpt_disk)
    table = parse(gpt_disk)
    assert table.kind == "gpt"
    assert table.warnings == []
    assert table.sector_size == pt["sectorsize"]
    assert table.disk_id == pt["id"].lower()
    assert ours(table) == expected(gpt_disk, pt)
    assert [p.name for p in table.partitions] == ["EFI system", "root fs", "swap"]
    check_layout(table)


@needs_sfdisk
def test_gpt_areas(gpt_disk):
    pt = sfdisk_json(gpt_disk)
    ss = pt["sectorsize"]
    table = parse(gpt_disk)
    head, backup = table.areas
    assert (head.kind, head.start, head.size) == ("head", 0, pt["partitions"][0]["start"] * ss)
    # sfdisk puts the backup array right after the last usable LBA, and the
    # backup header on the disk's last sector.
    assert backup.kind == "gpt-backup"
    assert backup.start == (pt["lastlba"] + 1) * ss
    assert backup.start + backup.size == os.path.getsize(gpt_disk)


@needs_sfdisk
def test_gpt_numbering_with_a_hole_and_out_of_order(tmp_path):
    path = tmp_path / "d.img"
    make_disk(path, 32 * MIB, f"""label: gpt
{path}4 : start=2048, size=4M, name=four
{path}2 : size=4M, name=two
""")
    pt = sfdisk_json(path)
    table = parse(path)
    assert ours(table) == expected(path, pt)
    assert [p.number for p in table.partitions] == [4, 2]
    check_layout(table)


@needs_sfdisk
def test_empty_gpt(tmp_path):
    path = make_disk(tmp_path / "d.img", 16 * MIB, "label: gpt\n")
    pt = sfdisk_json(path)
    table = parse(path)
    assert table.kind == "gpt" and table.partitions == []
    assert table.disk_id == pt["id"].lower()
    ss = pt["sectorsize"]
    assert [(a.kind, a.start, a.size) for a in table.areas] == [
        ("head", 0, pt["firstlba"] * ss),
        ("gpt-backup", (pt["lastlba"] + 1) * ss,
         os.path.getsize(path) - (pt["lastlba"] + 1) * ss)]


@needs_sfdisk
@pytest.mark.parametrize("offset, why", [
    (512 + 56, "header CRC32"),            # a byte of the disk GUID in the header
    (2 * 512 + 56, "array CRC32"),         # a byte of entry 1's name
])
def test_damaged_primary_uses_backup(gpt_disk, offset, why):
    pt = sfdisk_json(gpt_disk)
    flip(gpt_disk, offset)
    table = parse(gpt_disk)
    assert table.kind == "gpt"
    assert ours(table) == expected(gpt_disk, pt)
    assert table.disk_id == pt["id"].lower()
    assert any("primary" in w and why in w and "backup" in w for w in table.warnings)
    assert [a.kind for a in table.areas] == ["head", "gpt-backup"]
    check_layout(table)


@needs_sfdisk
def test_damaged_backup_is_a_warning(gpt_disk):
    pt = sfdisk_json(gpt_disk)
    flip(gpt_disk, os.path.getsize(gpt_disk) - 512 + 56)
    table = parse(gpt_disk)
    assert ours(table) == expected(gpt_disk, pt)
    assert any("backup" in w and "damaged" in w for w in table.warnings)


@needs_sfdisk
def test_both_gpt_headers_damaged_is_an_error(gpt_disk):
    flip(gpt_disk, 512 + 56)
    flip(gpt_disk, os.path.getsize(gpt_disk) - 512 + 56)
    with pytest.raises(TableError, match="protective"):
        parse(gpt_disk)


@needs_sfdisk
def test_truncated_gpt_is_an_error(gpt_disk):
    os.truncate(gpt_disk, 32 * MIB)
    with pytest.raises(TableError):
        parse(gpt_disk)


@needs_sfdisk
def test_hybrid_mbr_is_gpt(gpt_disk):
    pt = sfdisk_json(gpt_disk)
    first = pt["partitions"][0]
    # slot 2 of the protective MBR: a FAT32 LBA entry over GPT partition 1
    poke(gpt_disk, 446 + 16, struct.pack("<B3sB3sII", 0, b"\xfe\xff\xff", 0x0C,
                                         b"\xfe\xff\xff", first["start"], first["size"]))
    table = parse(gpt_disk)
    assert table.kind == "gpt"
    assert ours(table) == expected(gpt_disk, pt)


@needs_sfdisk
def test_stale_gpt_under_a_dos_table(gpt_disk):
    subprocess.run([SFDISK, "-q", "--wipe", "never", str(gpt_disk)], check=True,
                   input="label: dos\nsize=8M, type=83\n", text=True, capture_output=True)
    assert peek(gpt_disk, 512, 8) == b"EFI PART"     # the GPT is still there
    pt = sfdisk_json(gpt_disk)
    assert pt["label"] == "dos"
    table = parse(gpt_disk)
    assert table.kind == "mbr"
    assert ours(table) == expected(gpt_disk, pt)
    assert any("GPT" in w and "ignored" in w for w in table.warnings)


@needs_sfdisk
def test_short_read_names_the_offset(tmp_path):
    path = make_disk(tmp_path / "d.img", 16 * MIB, GPT_SCRIPT.replace("16M", "1M"))
    data = path.read_bytes()
    with pytest.raises(TableError, match=r"byte offset \d+"):
        read_table(lambda offset, length: data[offset:min(offset + length, 8 * MIB)],
                   len(data))
