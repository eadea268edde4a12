"""Boot flags patched in place (diskimage.tables.flags), checked with the
field's tools: sfdisk --json (attrs, bootable), sgdisk -v (both GPT
copies and their CRCs), and byte comparisons of the whole disk."""

import shutil
import subprocess

import pytest

from diskimage.tables import flags
from tests.tables.table_tools import MIB, make_disk, parse, sfdisk_json

pytestmark = pytest.mark.needs("sfdisk", "sgdisk")

GPT = """label: gpt
size=8M, type=L, name=one
size=8M, type=L, name=two, attrs="RequiredPartition"
size=8M, type=L, name=three
"""
MBR = """label: dos
size=8M, type=83, bootable
size=8M, type=1c
size=8M, type=83
"""
SERVICE_BIOS = (1 << 0) | (1 << 2) | (1 << 62) | (1 << 63)


def differing(a, b):
    """The byte offsets where the two files differ."""
    da, db = open(a, "rb").read(), open(b, "rb").read()
    assert len(da) == len(db)
    block = 4096
    return [i for at in range(0, len(da), block)
            if da[at:at + block] != db[at:at + block]
            for i in range(at, min(at + block, len(da))) if da[i] != db[i]]


def sgdisk_verify(path):
    out = subprocess.run(["sgdisk", "-v", str(path)], capture_output=True,
                         text=True)
    return out.returncode, out.stdout


def test_gpt_attrs_both_copies(tmp_path):
    disk = make_disk(tmp_path / "gpt.img", 32 * MIB, GPT)
    before = tmp_path / "before.img"
    shutil.copyfile(disk, before)
    writes = flags.gpt_attr_writes(disk, None, {2: SERVICE_BIOS})
    flags.apply(disk, writes)
    code, said = sgdisk_verify(disk)
    assert code == 0 and "No problems found" in said, said
    parts = sfdisk_json(disk)["partitions"]
    assert parts[1]["attrs"] == \
        "RequiredPartition LegacyBIOSBootable GUID:62,63"
    assert "attrs" not in parts[0] and "attrs" not in parts[2]
    # only the entry's attribute field and the two headers changed, in
    # the primary (LBA 1, array at LBA 2) and the backup (array at the
    # end, header at the last LBA)
    last = 32 * MIB // 512 - 1
    array2 = (last - 32) * 512
    allowed = set()
    for array_at in (2 * 512, array2):
        allowed |= set(range(array_at + 128 + 48, array_at + 128 + 56))
    for head in (512, last * 512):
        allowed |= set(range(head + 16, head + 20)) | \
            set(range(head + 88, head + 92))
    changed = differing(before, disk)
    assert changed and set(changed) <= allowed
    # the backup copy alone carries it too: damage the primary header
    with open(disk, "r+b") as f:
        f.seek(512)
        f.write(b"NOT PART")
    table = parse(disk)
    assert any("using the backup" in w for w in table.warnings)
    assert {p.number: p.attrs for p in table.partitions}[2] == SERVICE_BIOS


def test_gpt_snapshot_and_restore_writes(tmp_path):
    disk = make_disk(tmp_path / "gpt.img", 32 * MIB, GPT)
    before = tmp_path / "before.img"
    shutil.copyfile(disk, before)
    saved = flags.snapshot(disk)
    assert saved == {"table": "gpt", "attrs": {"1": 0, "2": 1, "3": 0}}
    flags.apply(disk, flags.gpt_attr_writes(disk, None, {2: 5, 3: 4}))
    assert differing(before, disk)
    flags.apply(disk, flags.restore_writes(disk, None, saved))
    assert differing(before, disk) == []
    assert flags.gpt_attr_writes(disk, None, {2: 1}) == []


def test_mbr_active_flags(tmp_path):
    disk = make_disk(tmp_path / "mbr.img", 32 * MIB, MBR)
    before = tmp_path / "before.img"
    shutil.copyfile(disk, before)
    saved = flags.snapshot(disk)
    assert saved == {"table": "mbr", "active": [1]}
    writes = flags.mbr_active_writes(disk, None, [2])
    assert writes == [(446, b"\x00"), (462, b"\x80")]
    flags.apply(disk, writes)
    parts = sfdisk_json(disk)["partitions"]
    assert [bool(p.get("bootable")) for p in parts] == [False, True, False]
    assert differing(before, disk) == [446, 462]
    flags.apply(disk, flags.restore_writes(disk, None, saved))
    assert differing(before, disk) == []


def test_refusals(tmp_path):
    gpt_disk = make_disk(tmp_path / "gpt.img", 32 * MIB, GPT)
    mbr_disk = make_disk(tmp_path / "mbr.img", 32 * MIB, MBR)
    from diskimage.errors import InputError, TableError
    with pytest.raises(TableError, match="not an MBR"):
        flags.mbr_active_writes(gpt_disk, None, [1])
    with pytest.raises(TableError, match="not a GPT"):
        flags.gpt_attr_writes(mbr_disk, None, {1: 4})
    with pytest.raises(InputError, match="no partition 4 in the MBR"):
        flags.mbr_active_writes(mbr_disk, None, [4])
    with pytest.raises(InputError, match="GPT entry 9 is unused"):
        flags.gpt_attr_writes(gpt_disk, None, {9: 4})


def test_overlay():
    data = bytes(16)
    assert flags.overlay(data, 100, [(98, b"abcd"), (115, b"xy"),
                                     (200, b"z")]) == \
        b"cd" + bytes(13) + b"x"
