"""The install record: the areas snapshot() takes (checked against where
sfdisk put the tables and EBRs), seal, check, add_nvram."""

import base64
import hashlib
import struct

import pytest

from diskimage.errors import InputError
from diskimage.service import record, tail
from tests.service.ondisk_helpers import (MiB, SECTOR, blank,
                                          install_by_hand, production,
                                          read_at, sfdisk_json, sh, table_of)

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4", "e2fsck", root=True)

LOGICALS = """label: dos
size=8M, type=83
type=5
size=8M, type=83
size=8M, type=82
"""


def test_gpt_areas(tmp_path):
    disk = production(tmp_path / "disk.img", "gpt", size=64 * MiB,
                      p1=32 * MiB, ext4=False)
    areas = record.snapshot(disk)
    last = 64 * MiB // SECTOR - 1
    assert [(a["what"], a["offset"], a["size"]) for a in areas] == [
        ("lba0", 0, SECTOR),
        ("gpt-primary", SECTOR, 33 * SECTOR),
        ("gpt-backup", (last - 32) * SECTOR, 33 * SECTOR)]
    for a in areas:
        data = base64.b64decode(a["before"])
        assert data == read_at(disk, a["offset"], a["size"])
        assert hashlib.sha256(data).hexdigest() == a["before_sha256"]
        assert a["after_sha256"] is None
    assert read_at(disk, SECTOR, 8) == b"EFI PART"
    assert read_at(disk, last * SECTOR, 8) == b"EFI PART"


def test_mbr_areas_with_ebrs(tmp_path):
    disk = blank(tmp_path / "disk.img", 64 * MiB)
    sh("sfdisk", "-q", disk, input=LOGICALS)
    areas = record.snapshot(disk)
    assert areas[0]["what"] == "mbr" and areas[0]["offset"] == 0
    ebrs = [a for a in areas if a["what"] == "ebr"]
    logicals = [p for p in sfdisk_json(disk)["partitions"]
                if p["node"].endswith(("5", "6"))]
    assert len(ebrs) == len(logicals) == 2
    for ebr, logical in zip(ebrs, logicals):
        sector = base64.b64decode(ebr["before"])
        assert sector[510:] == b"\x55\xaa" and ebr["size"] == SECTOR
        rel = struct.unpack_from("<I", sector, 446 + 8)[0]
        assert ebr["offset"] // SECTOR + rel == logical["start"]


def test_new_seal_check(tmp_path):
    disk = production(tmp_path / "disk.img", "mbr", size=64 * MiB,
                      p1=32 * MiB, ext4=False)
    table = table_of(disk)
    areas = record.snapshot(disk, table)
    rec = record.new(disk=disk, table=table, areas=areas,
                     partition={"number": 2, "start": 33 * MiB,
                                "size": 30 * MiB, "part_id": "x-02",
                                "type": "0x1c"})
    assert rec["disk"] == {"size": 64 * MiB, "sector_size": 512,
                           "table": "mbr", "disk_id": table.disk_id}
    assert rec["format"] == 1 and rec["nvram"] == [] and \
        rec["shrunk"] is None
    with pytest.raises(InputError, match="never sealed"):
        record.check(rec)
    record.seal(disk, areas)
    assert record.check(rec) is rec
    assert record.area_state(areas[0], read_at(disk, 0, SECTOR)) == \
        "installed"
    assert record.area_state(areas[0], bytes(SECTOR)) == "changed"


def test_add_nvram_rewrites_the_tail(tmp_path):
    disk = production(tmp_path / "disk.img", "gpt")
    service = install_by_hand(disk)
    record.add_nvram(service, "Boot0007",
                     "8be4df61-93ca-11d2-aa0d-00e098032b8c", None,
                     after=b"\x01\x00\x00\x00entry")
    record.add_nvram(service, "BootOrder",
                     "8be4df61-93ca-11d2-aa0d-00e098032b8c",
                     b"\x01\x00\x02\x00", after=b"\x07\x00\x01\x00\x02\x00")
    # the same variable again keeps the first before-bytes
    record.add_nvram(service, "BootOrder",
                     "8be4df61-93ca-11d2-aa0d-00e098032b8c",
                     b"\x07\x00\x01\x00\x02\x00", after=b"\x01\x00")
    nvram = tail.read_record(service)["nvram"]
    assert [(v["name"], v["before"]) for v in nvram] == [
        ("Boot0007", None),
        ("BootOrder", base64.b64encode(b"\x01\x00\x02\x00").decode())]
    assert nvram[1]["after_sha256"] == hashlib.sha256(b"\x01\x00").hexdigest()
    assert MiB == 1 << 20


def test_damaged_tail_record_comes_back_from_the_fat(tmp_path):
    disk = production(tmp_path / "disk.img", "gpt", ext4=False)
    service = install_by_hand(disk)
    whole = read_at(disk, service.tail_offset, 512 * 1024)
    with open(disk, "r+b") as f:        # one byte of the JSON
        f.seek(service.tail_offset + 40)
        f.write(b"#")
    with pytest.raises(InputError, match=f"service record \\(tail copy\\) "
                       f"at byte {service.tail_offset}: crc32 mismatch"):
        tail.read_record(service, fat_copy=False)
    rec = tail.read_record(service)
    assert rec["partition"]["number"] == service.number
    assert read_at(disk, service.tail_offset, 512 * 1024) == whole
    # with the FAT copy gone too, the damage is said
    with open(disk, "r+b") as f:
        f.seek(service.tail_offset + 40)
        f.write(b"#")
    sh("mdel", "-i", f"{disk}@@{service.start}", "::/bwpart/install.json")
    with pytest.raises(InputError, match="crc32 mismatch"):
        tail.read_record(service)
