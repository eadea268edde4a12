"""diskimage.tables.partitions against the reference tool.

Disk images are built with sfdisk and mkfs.fat; every expected number comes
from ``sfdisk --json`` on the same file, never from the code under test.
Each image is built once per session (read only) and copied per test.
"""

import json
import os
import shutil
import struct
import subprocess

import pytest

from diskimage.errors import TableError
from diskimage.tables.partitions import read_table
from diskimage.structs import Struct

MIB = 1 << 20
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
SFDISK = shutil.which("sfdisk", path=SBIN)
MKFS_FAT = shutil.which("mkfs.fat", path=SBIN)
needs_sfdisk = pytest.mark.skipif(SFDISK is None, reason="sfdisk not installed")
needs_mkfs_fat = pytest.mark.skipif(MKFS_FAT is None, reason="mkfs.fat not installed")

GPT_SCRIPT = """label: gpt
size=8M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system"
size=16M, type=L, name="root fs", attrs="RequiredPartition,LegacyBIOSBootable,GUID:60"
type=S, name=swap
"""
MBR_SCRIPT = """label: dos
size=8M, type=83, bootable
size=8M, type=7
type=5
size=8M, type=83
size=8M, type=82
type=c
"""
EXTENDED = {0x05, 0x0F, 0x85}
GPT_ATTR_BITS = {"RequiredPartition": 0, "NoBlockIOProtocol": 1, "LegacyBIOSBootable": 2}


# -- helpers -----------------------------------------------------------------

def make_disk(path, size, script=None):
    with open(path, "wb") as f:
        f.truncate(size)
    if script is not None:
        subprocess.run([SFDISK, "-q", str(path)], input=script, text=True,
                       check=True, capture_output=True)
    return path


def sfdisk_json(path):
    out = subprocess.run([SFDISK, "--json", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["partitiontable"]


def parse(path, **kwargs):
    with open(path, "rb") as f:
        def read(offset, length):
            f.seek(offset)
            return f.read(length)
        return read_table(read, os.path.getsize(path), **kwargs)


def gpt_attrs(text):
    bits = 0
    for word in text.split():
        bits |= 1 << (int(word[5:]) if word.startswith("GUID:") else GPT_ATTR_BITS[word])
    return bits


def expected(path, pt):
    """sfdisk's partitions as (number, start, size, type, extras) in bytes."""
    ss = pt["sectorsize"]
    rows = []
    for p in pt.get("partitions", []):
        number = int(p["node"][len(str(path)):])
        if pt["label"] == "gpt":
            extra = (p["uuid"].lower(), p.get("name", ""), gpt_attrs(p.get("attrs", "")))
            kind = p["type"].lower()
        else:
            if int(p["type"], 16) in EXTENDED:
                continue
            extra = (p.get("bootable", False),)
            kind = int(p["type"], 16)
        rows.append((number, p["start"] * ss, p["size"] * ss, kind, extra))
    return sorted(rows, key=lambda r: r[1])


def ours(table):
    rows = []
    for p in table.partitions:
        if table.kind == "gpt":
            rows.append((p.number, p.start, p.size, p.type, (p.uuid, p.name, p.attrs)))
        else:
            rows.append((p.number, p.start, p.size, int(p.type, 16), (p.bootable,)))
    return rows


def check_layout(table):
    """Partitions sorted by start; areas sorted, on the disk, disjoint from
    each other and from every partition."""
    starts = [p.start for p in table.partitions]
    assert starts == sorted(starts)
    spans = [(a.start, a.start + a.size) for a in table.areas]
    assert spans == sorted(spans)
    for a, b in zip(spans, spans[1:]):
        assert a[1] <= b[0]
    for start, end in spans:
        assert 0 <= start < end <= table.disk_size
        for p in table.partitions:
            assert end <= p.start or start >= p.start + p.size
    json.dumps(table.to_dict())


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0xFF]))


def poke(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def peek(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


# -- images built once per session, copied per test ----------------------------

@pytest.fixture(scope="session")
def session_images(tmp_path_factory):
    if SFDISK is None:
        pytest.skip("sfdisk not installed")
    d = tmp_path_factory.mktemp("images")
    images = {
        "gpt": make_disk(d / "gpt.img", 64 * MIB, GPT_SCRIPT),
        "mbr": make_disk(d / "mbr.img", 64 * MIB, MBR_SCRIPT),
    }
    for path in images.values():
        os.chmod(path, 0o444)
    return images


@pytest.fixture
def gpt_disk(session_images, tmp_path):
    path = tmp_path / "gpt.img"
    shutil.copyfile(session_images["gpt"], path)
    return path


@pytest.fixture
def mbr_disk(session_images, tmp_path):
    path = tmp_path / "mbr.img"
    shutil.copyfile(session_images["mbr"], path)
    return path


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


def test_short_read_names_the_offset(tmp_path):
    if SFDISK is None:
        pytest.skip("sfdisk not installed")
    path = make_disk(tmp_path / "d.img", 16 * MIB, GPT_SCRIPT.replace("16M", "1M"))
    data = path.read_bytes()
    with pytest.raises(TableError, match=r"byte offset \d+"):
        read_table(lambda offset, length: data[offset:min(offset + length, 8 * MIB)],
                   len(data))


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
