"""The service partition's table entry (partition.py): the writes that add
it, read back by read_table and by sfdisk --json; find_service trusting
a type only with a valid tail record; the shrink; grow."""

import json
import subprocess

import pytest

from diskimage.errors import InputError, TargetError
from diskimage.service import (fatfs, install, layout, partition, plan,
                               record, tail)
from diskimage.tables.partitions import read_table
from tests.service.forged import minimal_record
from tests.service.installdisks import (MiB, ext4_files, ext4_into,
                                        make_bundle, make_disk, part_of, run,
                                        sfdisk_json, sha256)

pytestmark = pytest.mark.needs("sfdisk", "mkfs.fat", "mcopy")


def _add(disk, number, start, size, changes=None):
    table, sector0 = partition.read_disk(str(disk))
    uuid = partition.new_uuid()
    writes = partition.table_writes(table, sector0, changes or {}, dict(
        number=number, start=start, size=size, uuid=uuid))
    partition.apply(str(disk), writes, "table")
    return uuid


def _node(table, number):
    return next(p for p in table["partitions"]
                if p["node"].endswith(str(number)))


def test_gpt_entry(tmp_path):
    disk = make_disk(tmp_path / "d.img", 800, "gpt",
                     "start=2048, size=300MiB, name=os\n")
    before = sfdisk_json(disk)
    uuid = _add(disk, 2, 301 * MiB, 256 * MiB)
    after = sfdisk_json(disk)
    new = _node(after, 2)
    assert new["type"].lower() == layout.GPT_TYPE
    assert new["uuid"].lower() == uuid
    assert new["name"] == layout.GPT_NAME
    assert new["attrs"] == "RequiredPartition GUID:62,63"
    assert (new["start"], new["size"]) == (301 * 2048, 256 * 2048)
    assert _node(after, 1) == _node(before, 1)
    assert after["id"] == before["id"]
    run("sgdisk", "-v", disk)       # both copies and their CRCs
    with open(disk, "rb") as f:
        table = read_table(lambda o, n: (f.seek(o), f.read(n))[1],
                           800 * MiB)
    assert table.warnings == []
    mine = next(p for p in table.partitions if p.number == 2)
    assert (mine.start, mine.size, mine.attrs) == \
        (301 * MiB, 256 * MiB, layout.GPT_ATTRS)


def test_gpt_plain_protective_sector0_not_written(tmp_path):
    disk = make_disk(tmp_path / "d.img", 800, "gpt", "size=300MiB\n")
    with open(disk, "rb") as f:
        sector0 = f.read(512)
    _add(disk, 2, 301 * MiB, 256 * MiB)
    with open(disk, "rb") as f:
        assert f.read(512) == sector0   # a plain protective MBR: not written


def test_mbr_entry_and_shrunk_row(tmp_path):
    disk = make_disk(tmp_path / "d.img", 800, "dos",
                     "start=2048, size=500MiB, bootable\n")
    before = sfdisk_json(disk)
    _add(disk, 2, 401 * MiB, 256 * MiB, changes={1: 400 * MiB})
    after = sfdisk_json(disk)
    new = _node(after, 2)
    assert new["type"] == "1c"
    assert "bootable" not in new
    assert (new["start"], new["size"]) == (401 * 2048, 256 * 2048)
    old = _node(after, 1)
    assert old["size"] == 400 * 2048 and old["bootable"] is True
    assert after["id"] == before["id"]


def test_find_service_needs_a_valid_record(tmp_path):
    disk = make_disk(tmp_path / "d.img", 800, "dos", "start=2048, "
                     "size=300MiB\n")
    _add(disk, 2, 301 * MiB, 256 * MiB)
    assert partition.find_service(str(disk)) is None     # a type alone
    table, _ = partition.read_disk(str(disk))
    svc = partition.service_of(str(disk), table, table.partitions[1])
    tail.write_record(svc, minimal_record(svc))
    found = partition.find_service(str(disk))
    assert found == svc
    signature = sfdisk_json(disk)["id"][2:]
    assert found.part_id == f"{signature}-02"
    assert found.fs_size == 255 * MiB
    assert found.tail_offset == 301 * MiB + 255 * MiB
    with open(disk, "r+b") as f:                # a flipped byte in the JSON
        f.seek(found.tail_offset + 32)
        byte = f.read(1)
        f.seek(found.tail_offset + 32)
        f.write(bytes([byte[0] ^ 1]))
    assert partition.find_service(str(disk)) is None


def _flip(disk, offset):
    with open(disk, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))


def test_gpt_type_with_a_damaged_tail_is_a_damaged_service(tmp_path):
    disk = make_disk(tmp_path / "d.img", 800, "gpt", "start=2048, "
                     "size=300MiB\n")
    _add(disk, 2, 301 * MiB, 256 * MiB)
    table, _ = partition.read_disk(str(disk))
    svc = partition.service_of(str(disk), table, table.partitions[1])
    with pytest.raises(partition.DamagedService, match=r"partition 2 is a "
                       r"damaged service partition: no service record "
                       rf"\(tail copy\) at byte {svc.tail_offset}"):
        partition.find_service(str(disk))
    tail.write_record(svc, minimal_record(svc))
    _flip(disk, svc.tail_offset + 40)
    with pytest.raises(partition.DamagedService, match=rf"at byte "
                       rf"{svc.tail_offset}: crc32 mismatch"):
        partition.find_service(str(disk))


def test_mbr_rdservice_fat_without_record_is_damaged(tmp_path):
    disk = make_disk(tmp_path / "d.img", 800, "dos", "start=2048, "
                     "size=300MiB\n")
    _add(disk, 2, 301 * MiB, 256 * MiB)
    table, _ = partition.read_disk(str(disk))
    svc = partition.service_of(str(disk), table, table.partitions[1])
    fatfs.format(svc)                            # labelled RDSERVICE
    with pytest.raises(partition.DamagedService, match="partition 2"):
        partition.find_service(str(disk))


def test_found_by_the_fat_copy_when_the_tail_magic_is_gone(tmp_path):
    disk = make_disk(tmp_path / "d.img", 800, "gpt", "start=2048, "
                     "size=300MiB\n")
    _add(disk, 2, 301 * MiB, 256 * MiB)
    table, _ = partition.read_disk(str(disk))
    svc = partition.service_of(str(disk), table, table.partitions[1])
    fatfs.format(svc)
    record.write_both(svc, minimal_record(svc))
    _flip(disk, svc.tail_offset)                # the magic
    assert partition.find_service(str(disk)) == svc
    assert tail.read_record(svc) == minimal_record(svc)   # written back
    assert tail.read_record(svc, fat_copy=False) == minimal_record(svc)


def test_service_by_id_unknown():
    with pytest.raises(InputError, match="no service partition "
                       "deadbeef-01 on any disk"):
        partition.service_by_id("deadbeef-01")


@pytest.mark.needs("losetup", "mkfs.ext4", "resize2fs", "debugfs",
                   root=True)
def test_shrink_fs_ext4_keeps_files(tmp_path):
    disk = make_disk(tmp_path / "d.img", 800, "gpt", "start=2048, "
                     "size=500MiB\n")
    files = {f"f{i}.bin": bytes([i]) * (3 * MiB + i) for i in range(5)}
    ext4_into(tmp_path, disk, 1, files)
    start, size = part_of(disk, 1)
    want, clean = ext4_files(tmp_path, disk, start, size, files)
    assert clean == 0
    got = partition.shrink_fs(str(disk), start, size, "ext4", 200 * MiB)
    assert got == 200 * MiB
    have, clean = ext4_files(tmp_path, disk, start, 200 * MiB, files)
    assert clean == 0 and have == want


@pytest.mark.needs("losetup", "fsck.fat", root=True)
def test_grow(tmp_path):
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=100MiB\n")
    p = plan.plan_install(str(disk), make_bundle(tmp_path / "bundle"),
                          size=512 * MiB, firmware="uefi")
    install.install(p)
    svc = partition.find_service(str(disk))
    with fatfs.open_fat(svc) as fat:
        fat.put(b"kept", "/kept.txt")
    grown = partition.grow(svc, 1024 * MiB)
    assert grown.size == 1024 * MiB
    assert partition.find_service(str(disk)) == grown
    rec = tail.read_record(grown, fat_copy=False)
    assert rec["partition"]["size"] == 1024 * MiB
    for area, now in zip(rec["areas"], record.current(disk, rec["areas"])):
        assert record.sha256(now) == area["after_sha256"]
    assert _node(sfdisk_json(disk), 2)["size"] == 1024 * 2048
    run("sgdisk", "-v", disk)
    with fatfs.open_fat(grown) as fat:
        assert fat.get("/kept.txt") == b"kept"
        assert json.loads(fat.get(layout.RECORD_PATH)) == rec
        assert fat.free() > 900 * MiB
    image = tmp_path / "fat.img"
    with open(disk, "rb") as src, open(image, "wb") as dst:
        src.seek(grown.start)
        dst.write(src.read(grown.fs_size))
    fsck = subprocess.run(["fsck.fat", "-n", str(image)],
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_grow_whose_fat_grow_fails_is_still_removable(tmp_path,
                                                       monkeypatch):
    """A FAT grow that fails after the table grew (the resizer stands in
    for a tool that died) leaves the record sealed with the new table, so
    remove puts the disk back instead of refusing a changed table."""
    from diskimage.errors import TargetChangedError
    from diskimage.fs import resize as fsresize
    from diskimage.service import remove
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=100MiB\n")
    before = _bytes_at(disk, 0, 34 * 512)
    p = plan.plan_install(str(disk), make_bundle(tmp_path / "bundle"),
                          size=512 * MiB, firmware="uefi")
    install.install(p)
    svc = partition.find_service(str(disk))

    def died(*args):
        raise fsresize.ResizeError("the FAT resizer died")
    monkeypatch.setattr(fsresize, "resize", died)
    with pytest.raises(TargetChangedError, match="resizer died"):
        partition.grow(svc, 1024 * MiB)
    monkeypatch.undo()
    remove.remove(str(disk))
    assert _bytes_at(disk, 0, 34 * 512) == before


def test_grow_refused_without_free_space(tmp_path):
    disk = make_disk(tmp_path / "d.img", 1200, "gpt", "start=2048, "
                     "size=100MiB\nstart=600MiB, size=100MiB\n")
    _add(disk, 3, 101 * MiB, 256 * MiB)
    table, _ = partition.read_disk(str(disk))
    svc = partition.service_of(str(disk), table,
                               next(p for p in table.partitions
                                    if p.number == 3))
    before = sha256(disk)
    with pytest.raises(TargetError, match=r"partition 3 cannot grow to "
                       r"512\.0 MiB: only 243\.0 MiB are free after it"):
        partition.grow(svc, 512 * MiB)
    assert sha256(disk) == before


def test_mbr_logicals_and_ebrs_kept(tmp_path):
    disk = make_disk(tmp_path / "d.img", 800, "dos",
                     "start=2048, size=20480\nstart=22528, size=409600, "
                     "type=5\nstart=24576, size=102400\n"
                     "start=129024, size=102400\n")
    before = sfdisk_json(disk)
    ebrs = [(p["start"] - 2048) * 512 for p in before["partitions"]
            if int(p["node"].rsplit("img", 1)[1]) >= 5]
    ebr_bytes = [_bytes_at(disk, at, 512) for at in ebrs]
    table, sector0 = partition.read_disk(str(disk))
    assert partition.extended_spans(table, sector0) == [(11 * MiB,
                                                         211 * MiB)]
    _add(disk, 3, 211 * MiB, 256 * MiB)
    after = sfdisk_json(disk)
    assert [p for p in after["partitions"] if not p["node"].endswith("3")] \
        == before["partitions"]
    assert _node(after, 3)["type"] == "1c"
    assert [_bytes_at(disk, at, 512) for at in ebrs] == ebr_bytes


def _bytes_at(path, offset, size):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def test_overlap_refused(tmp_path):
    disk = make_disk(tmp_path / "d.img", 800, "dos",
                     "start=2048, size=20480\nstart=22528, size=409600, "
                     "type=5\nstart=24576, size=102400\n")
    table, sector0 = partition.read_disk(str(disk))
    with pytest.raises(TargetError, match="would overlap the extended"):
        partition.table_writes(table, sector0, {}, dict(
            number=3, start=201 * MiB, size=256 * MiB, uuid=""))
    with pytest.raises(TargetError, match="would overlap partition 1"):
        partition.table_writes(table, sector0, {}, dict(
            number=3, start=10 * MiB, size=256 * MiB, uuid=""))
