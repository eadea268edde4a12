"""Where a service partition goes (room.find_room): the free end on MBR and
GPT, --shrink=N, and each refusal, on disks made by sfdisk and mkfs; a
refusal leaves the disk file's sha256 as it was."""

import os
import subprocess

import pytest

from diskimage.errors import InputError, TargetError
from diskimage.service import layout, partition, room, tail
from tests.service.forged import minimal_record
from tests.service.installdisks import (MiB, ext4_into, make_disk, part_of,
                                        run, sha256)

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4")


@pytest.mark.parametrize("label,kind", [("gpt", "gpt"), ("dos", "mbr")])
def test_free_end(tmp_path, label, kind):
    disk = make_disk(tmp_path / "d.img", 1500, label,
                     "start=2048, size=300MiB\nsize=100MiB\n")
    before = sha256(disk)
    found = room.find_room(str(disk))
    start2, size2 = part_of(disk, 2)
    assert found.table_kind == kind
    assert found.number == 3
    assert found.start == -(-(start2 + size2) // MiB) * MiB
    assert found.size == layout.DEFAULT_SIZE
    assert found.shrink is None
    assert sha256(disk) == before


def test_free_end_gpt_stops_before_backup(tmp_path):
    # 1 MiB + 300 MiB + exactly 256 MiB + the 33 sectors of the backup
    # GPT would fit; the disk end is 1 MiB short of that (the head MiB)
    disk = make_disk(tmp_path / "d.img", 558, "gpt", "start=2048, "
                     "size=300MiB\n")
    found = room.find_room(str(disk), 256 * MiB)
    assert found.start == 301 * MiB
    # (no hint: partition 1 holds no filesystem that could shrink)
    with pytest.raises(TargetError, match=r"no room for a 257\.0 MiB "
                       r"service partition: 256\.0 MiB free at the end of "
                       r"the disk$"):
        room.find_room(str(disk), 257 * MiB)


def test_no_room_says_what_is_free(tmp_path):
    disk = make_disk(tmp_path / "d.img", 600, "dos", "start=2048, "
                     "size=500MiB\n")
    before = sha256(disk)
    with pytest.raises(TargetError, match=r"no room for a 256\.0 MiB "
                       r"service partition: 99\.0 MiB free"):
        room.find_room(str(disk), 256 * MiB)
    assert sha256(disk) == before


def test_shrink_hint_only_when_shrinking_gives_the_room(tmp_path):
    disk = make_disk(tmp_path / "d.img", 700, "dos", "start=2048, "
                     "size=600MiB\n")
    ext4_into(tmp_path, disk, 1, {"a.bin": os.urandom(MiB)})
    with pytest.raises(TargetError, match=r"99\.0 MiB free at the end of "
                       r"the disk; --shrink=1 makes room from the last "
                       r"partition$"):
        room.find_room(str(disk), 300 * MiB)
    for size in (700 * MiB, 1 << 40):       # more than shrinking can give
        with pytest.raises(TargetError, match=r"free at the end of the "
                           r"disk$"):
            room.find_room(str(disk), size)
    raw = make_disk(tmp_path / "r.img", 700, "dos", "start=2048, "
                    "size=600MiB\n")        # no filesystem to shrink
    with pytest.raises(TargetError, match=r"free at the end of the disk$"):
        room.find_room(str(raw), 300 * MiB)


def test_bad_size(tmp_path):
    disk = make_disk(tmp_path / "d.img", 600, "gpt", "")
    for size in (100 * MiB, 300 * MiB + 512):
        with pytest.raises(InputError, match="whole number of MiB"):
            room.find_room(str(disk), size)


def test_no_table(tmp_path):
    disk = tmp_path / "blank.img"
    disk.write_bytes(b"")
    os.truncate(disk, 600 * MiB)
    with pytest.raises(TargetError, match="no partition table"):
        room.find_room(str(disk))


def test_mbr_no_free_primary_slot(tmp_path):
    disk = make_disk(tmp_path / "d.img", 1500, "dos", "size=10MiB\n" * 4)
    before = sha256(disk)
    with pytest.raises(TargetError, match="no free primary slot"):
        room.find_room(str(disk), 256 * MiB)
    assert sha256(disk) == before


def test_mbr_extended_container_counts_as_used(tmp_path):
    # the logical (5) ends 100 MiB before its container does
    disk = make_disk(tmp_path / "d.img", 1500, "dos",
                     "start=2048, size=20480\nstart=22528, size=819200, "
                     "type=5\nstart=24576, size=409600\n")
    found = room.find_room(str(disk), 256 * MiB)
    ext_start, ext_size = part_of(disk, 2)
    assert found.start == ext_start + ext_size
    assert found.number == 3


def test_mbr_room_only_past_2tib(tmp_path):
    disk = tmp_path / "big.img"
    with open(disk, "wb") as f:
        f.truncate((2 << 40) + 4096 * MiB)
    # the partition ends 100 MiB below 2 TiB: the room is past it
    last = (2 << 40) // 512 - 100 * 2048
    subprocess.run(["sfdisk", "-q", str(disk)], check=True, text=True,
                   capture_output=True,
                   input=f"label: dos\nstart=2048, size={last - 2048}\n")
    with pytest.raises(TargetError, match=r"100\.0 MiB free below 2\.0 "
                       r"TiB \(what an MBR's 32-bit"):
        room.find_room(str(disk), 256 * MiB)


def test_already_installed(tmp_path):
    disk = make_disk(tmp_path / "d.img", 1500, "gpt",
                     f"start=2048, size=300MiB\nsize=256MiB, "
                     f"type={layout.GPT_TYPE}\n")
    before = sha256(disk)
    # our GPT type with no record: a damaged service partition, never an
    # ordinary partition to stack beside or to shrink
    for shrink in (None, 2):
        with pytest.raises(TargetError, match=r"a service partition is "
                           r"already here \(damaged, partition 2\): "
                           r"bwpart status"):
            room.find_room(str(disk), 256 * MiB, shrink=shrink)
    assert sha256(disk) == before
    table, _ = partition.read_disk(str(disk))
    svc = partition.service_of(str(disk), table, table.partitions[1])
    tail.write_record(svc, minimal_record(svc))
    before = sha256(disk)
    with pytest.raises(TargetError, match="already has a service partition "
                       r"\(partition 2\): use bwpart update"):
        room.find_room(str(disk), 256 * MiB)
    assert sha256(disk) == before


# --- --shrink=N ---------------------------------------------------------------
def test_shrink_ext4(tmp_path):
    disk = make_disk(tmp_path / "d.img", 700, "dos", "start=2048, "
                     "size=600MiB\n")
    ext4_into(tmp_path, disk, 1, {"a.bin": os.urandom(MiB)})
    before = sha256(disk)
    found = room.find_room(str(disk), 300 * MiB, shrink=1)
    number, fs, old, new = found.shrink
    assert (number, fs, old) == (1, "ext4", 600 * MiB)
    assert found.start == MiB + new
    assert found.end == 700 * MiB       # an MBR disk's end
    assert found.start % MiB == 0
    assert "shrinks from 600.0 MiB" in found.notes[0]
    assert sha256(disk) == before


def test_shrink_not_needed(tmp_path):
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=300MiB\n")
    ext4_into(tmp_path, disk, 1, {})
    found = room.find_room(str(disk), 256 * MiB, shrink=1)
    assert found.shrink is None
    assert "need not shrink" in found.notes[0]


def test_shrink_too_little_margin(tmp_path):
    disk = make_disk(tmp_path / "d.img", 500, "gpt", "start=2048, "
                     "size=450MiB\n")
    ext4_into(tmp_path, disk, 1, {f"f{i}.bin": os.urandom(8 * MiB)
                                  for i in range(30)})
    before = sha256(disk)
    with pytest.raises(TargetError, match=r"partition 1 \(ext2/3/4, .* "
                       r"used\) can shrink to .* at the least, but would "
                       r"have to be"):
        room.find_room(str(disk), 256 * MiB, shrink=1)
    assert sha256(disk) == before


def test_shrink_not_the_last(tmp_path):
    disk = make_disk(tmp_path / "d.img", 700, "gpt",
                     "start=2048, size=500MiB\nsize=50MiB\n")
    with pytest.raises(TargetError, match="partition 1 is not the last.*"
                       "partition 2 follows it"):
        room.find_room(str(disk), 256 * MiB, shrink=1)
    with pytest.raises(InputError, match="has no partition 7"):
        room.find_room(str(disk), 256 * MiB, shrink=7)


def test_shrink_logical_refused(tmp_path):
    disk = make_disk(tmp_path / "d.img", 700, "dos",
                     "start=2048, size=20480\nstart=22528, size=1290240, "
                     "type=5\nstart=24576, size=1228800\n")
    with pytest.raises(TargetError, match="partition 5 is a logical"):
        room.find_room(str(disk), 256 * MiB, shrink=5)


def _header_into(disk, number, header, at=0):
    start, _ = part_of(disk, number)
    with open(disk, "r+b") as f:
        f.seek(start + at)
        f.write(header)


@pytest.mark.parametrize("header,name", [
    (b"LUKS\xba\xbe\x00\x01" + bytes(600), "LUKS"),
    (b"\xeb\x52\x90-FVE-FS-" + bytes(500) + b"\x55\xaa", "BitLocker")])
def test_shrink_encrypted_refused(tmp_path, header, name):
    disk = make_disk(tmp_path / "d.img", 700, "gpt", "start=2048, "
                     "size=600MiB\n")
    _header_into(disk, 1, header)
    before = sha256(disk)
    with pytest.raises(TargetError, match=f"partition 1 is encrypted "
                       rf"\({name}\): it cannot be resized"):
        room.find_room(str(disk), 256 * MiB, shrink=1)
    assert sha256(disk) == before


@pytest.mark.needs("mkfs.exfat")
def test_shrink_kind_that_cannot(tmp_path):
    disk = make_disk(tmp_path / "d.img", 700, "gpt", "start=2048, "
                     "size=600MiB\n")
    start, size = part_of(disk, 1)
    image = tmp_path / "x.img"
    with open(image, "wb") as f:
        f.truncate(size)
    run("mkfs.exfat", image)
    with open(image, "rb") as src, open(disk, "r+b") as dst:
        dst.seek(start)
        dst.write(src.read())
    with pytest.raises(TargetError, match=r"partition 1 \(exFAT\) cannot "
                       r"shrink \(only .*ext2/3/4.* do\)"):
        room.find_room(str(disk), 256 * MiB, shrink=1)
    _header_into(disk, 1, bytes(4096))
    with pytest.raises(TargetError, match="no filesystem known here"):
        room.find_room(str(disk), 256 * MiB, shrink=1)


@pytest.mark.needs("losetup", "mount", root=True)
def test_shrink_mounted_refused(tmp_path):
    disk = make_disk(tmp_path / "d.img", 700, "gpt", "start=2048, "
                     "size=600MiB\n")
    ext4_into(tmp_path, disk, 1, {"a": b"x"})
    start, size = part_of(disk, 1)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    dev = run("losetup", "--find", "--show", "-o", start, "--sizelimit",
              size, disk).stdout.strip()
    try:
        run("mount", "-t", "ext4", dev, mnt)
        try:
            with pytest.raises(TargetError, match=rf"partition 1 \(ext2/3/4"
                               rf"\) is mounted at {mnt}: it would have to "
                               rf"shrink"):
                room.find_room(str(disk), 256 * MiB, shrink=1)
        finally:
            run("umount", mnt)
    finally:
        run("losetup", "-d", dev)
