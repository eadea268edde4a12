"""bwpart remove on real disk files: the table put back byte for byte
(LBA 0, both GPT copies; MBR sector 0), refused when the table changed
after install, the filesystem grown back (e2fsck -fn clean)."""

import shutil
import struct

import pytest

from diskimage.errors import InputError, TargetChangedError, TargetError
from diskimage.service import (arming, partition, remove, state, status,
                               tail)
from diskimage.service.efiboot import EFI_GLOBAL_VARIABLE as GUID
from diskimage.service.efivars import Efivars
from tests.service.ondisk_helpers import (MiB, SECTOR, install_by_hand,
                                          production, read_at, sfdisk_json,
                                          sh, table_of)

pytestmark = pytest.mark.needs("sfdisk", "sgdisk", "mkfs.ext4", "e2fsck",
                               "resize2fs", "losetup", root=True)
DISK = 512 * MiB
GPT_HEAD = 34 * SECTOR               # LBA 0, header, 128 entries
GPT_BACK = 33 * SECTOR               # backup entries and header


def table_bytes(path, kind):
    if kind == "gpt":
        return read_at(path, 0, GPT_HEAD) + read_at(path, DISK - GPT_BACK,
                                                    GPT_BACK)
    return read_at(path, 0, SECTOR)


def fs_check(path, start, size):
    from diskimage.fs import resize as fsresize
    with fsresize.region(path, start, size) as dev:
        sh("e2fsck", "-fn", dev)
        info = sh("dumpe2fs", "-h", dev)
    fields = dict(line.split(":", 1) for line in info.splitlines()
                  if ":" in line)
    return int(fields["Block count"]) * int(fields["Block size"])


@pytest.mark.parametrize("kind", ["gpt", "mbr"])
def test_remove_puts_the_table_back(tmp_path, kind):
    disk = production(tmp_path / "disk.img", kind)
    before = table_bytes(disk, kind)
    json_before = sfdisk_json(disk)
    service = install_by_hand(disk)
    assert table_bytes(disk, kind) != before
    assert status.status(disk)["remove"]["can_remove"]
    done = remove.remove(disk)
    assert table_bytes(disk, kind) == before
    assert sfdisk_json(disk) == json_before
    if kind == "gpt":
        code = sh("sgdisk", "-v", disk)
        assert "No problems found" in code
    # nothing finds it again
    assert read_at(disk, service.start, MiB) == bytes(MiB)
    assert read_at(disk, service.tail_offset, MiB) == bytes(MiB)
    assert status.find_service(disk) is None
    assert status.status(disk)["installed"] is False
    assert "partition table put back" in done["done"]
    # partition 1 untouched
    assert fs_check(disk, MiB, 128 * MiB) == 128 * MiB


def test_refused_when_the_table_changed(tmp_path):
    disk = production(tmp_path / "disk.img", "gpt")
    install_by_hand(disk)
    sh("sgdisk", "-c", "1:renamed", disk)        # someone's later change
    seen = shutil.copyfile(disk, tmp_path / "seen.img")
    view = status.status(disk)["remove"]
    assert not view["can_remove"]
    assert {a["what"]: a["state"] for a in view["areas"]}["gpt-primary"] \
        == "changed"
    with pytest.raises(TargetError, match=r"the gpt-primary area \(bytes "
                       r"512 to 17408\) was changed since bwpart install"):
        remove.remove(disk)
    assert table_bytes(disk, "gpt") == table_bytes(seen, "gpt")
    assert status.find_service(disk) is not None


@pytest.mark.parametrize("kind", ["gpt", "mbr"])
def test_armed_for_bios_is_our_own_change(tmp_path, kind):
    disk = production(tmp_path / "disk.img", kind, boot_code=True)
    before = table_bytes(disk, kind)
    service = install_by_hand(disk)
    installed = table_bytes(disk, kind)
    arming.arm(service, "bios")         # part E's: flags saved, then set
    assert state.load(service)["armed"]["firmware"] == "bios"
    assert table_bytes(disk, kind) != installed
    assert status.status(disk)["remove"]["can_remove"]
    done = remove.remove(disk)
    assert "disarmed (bios)" in done["done"]
    assert table_bytes(disk, kind) == before


def test_armed_and_changed_is_refused(tmp_path):
    disk = production(tmp_path / "disk.img", "mbr", boot_code=True)
    install_by_hand(disk)
    service = status.find_service(disk)
    arming.arm(service, "bios")
    with open(disk, "r+b") as f:        # someone's later change: a type
        f.seek(446 + 4)
        f.write(b"\x8e")
    with pytest.raises(TargetError, match="the mbr area"):
        remove.remove(disk)
    assert state.load(service)["armed"] is not None


def test_grow_over_the_space(tmp_path):
    disk = production(tmp_path / "disk.img", "gpt")
    service = install_by_hand(disk)
    end = service.start + service.size
    before = read_at(disk, 0, 64 * 1024)
    for call in (remove.check, remove.remove):      # check writes nothing
        with pytest.raises(TargetError, match="partition 2 is the service "
                           "partition itself"):
            call(disk, grow=2)
        with pytest.raises(InputError, match=r"--grow=5: has no partition "
                           r"5 \(partitions: 1, 2\)"):
            call(disk, grow=5)
    assert read_at(disk, 0, 64 * 1024) == before
    remove.check(disk, grow=1)
    assert read_at(disk, 0, 64 * 1024) == before
    done = remove.remove(disk, grow=1)
    p1 = sfdisk_json(disk)["partitions"][0]
    assert p1["start"] * SECTOR == MiB
    assert (p1["start"] + p1["size"]) * SECTOR == end
    assert done["grown"] == {"number": 1, "fs": "ext4", "size": end - MiB}
    assert fs_check(disk, MiB, end - MiB) == end - MiB
    assert "No problems found" in sh("sgdisk", "-v", disk)


def test_shrunk_partition_grows_back(tmp_path):
    disk = production(tmp_path / "disk.img", "gpt", p1=None)
    before = table_bytes(disk, "gpt")
    old = table_of(disk).partitions[0].size
    install_by_hand(disk, shrink=160 * MiB)
    assert fs_check(disk, MiB, 160 * MiB) == 160 * MiB
    done = remove.remove(disk)
    assert table_bytes(disk, "gpt") == before
    assert done["grown"]["size"] == old
    assert fs_check(disk, MiB, old) == old


def test_no_service_partition(tmp_path):
    disk = production(tmp_path / "disk.img", "mbr", ext4=False)
    with pytest.raises(TargetError, match="no service partition"):
        remove.remove(disk)
    # a partition of the type alone is not one
    sh("sfdisk", "-q", "--append", disk, input="size=300M, type=1c\n")
    with pytest.raises(TargetError, match="no service partition .*: "
                       "partition 2 has the service type but its tail "
                       "holds no record"):
        remove.remove(disk)
    assert tail.TAIL_SIZE == MiB


@pytest.mark.parametrize("at", [0, 40])        # the magic, the JSON
def test_damaged_tail_record_repaired_from_the_fat(tmp_path, at):
    disk = production(tmp_path / "disk.img", "gpt", ext4=False)
    before = table_bytes(disk, "gpt")
    service = install_by_hand(disk)
    with open(disk, "r+b") as f:
        f.seek(service.tail_offset + at)
        f.write(b"#")
    assert status.find_service(disk) == service     # by the FAT copy
    remove.remove(disk)
    assert table_bytes(disk, "gpt") == before


def test_damaged_record_said(tmp_path):
    disk = production(tmp_path / "disk.img", "gpt", ext4=False)
    service = install_by_hand(disk)
    with open(disk, "r+b") as f:        # both copies damaged
        f.seek(service.tail_offset + 40)
        f.write(b"#")
    sh("mdel", "-i", f"{disk}@@{service.start}", "::/bwpart/install.json")
    said = (f"partition {service.number} is a damaged service partition: "
            f"service record \\(tail copy\\) at byte {service.tail_offset}"
            f": crc32 mismatch")
    before = read_at(disk, 0, 64 * 1024)
    with pytest.raises(InputError, match=said):
        remove.remove(disk)
    with pytest.raises(InputError, match=said):
        status.status(disk)
    assert read_at(disk, 0, 64 * 1024) == before


def test_uefi_entries_and_bootorder_put_back(tmp_path):
    """NVRAM through a directory laid out as efivarfs (part D's Efivars):
    the Boot#### boot-next made deleted, BootOrder byte for byte."""
    disk = production(tmp_path / "disk.img", "gpt", ext4=False)
    before = table_bytes(disk, "gpt")
    service = install_by_hand(disk)
    root = tmp_path / "efivars"
    root.mkdir()
    variables = Efivars(str(root), firmware=str(tmp_path))
    variables.write("Boot0000", GUID, b"the firmware's own entry")
    variables.write("BootOrder", GUID, struct.pack("<2H", 0, 3))
    files = {p.name: p.read_bytes() for p in root.iterdir()}
    armed = arming.arm(service, "uefi", vars=variables)
    assert armed["uefi"]["entry"] == "Boot0001"
    assert sorted(p.name for p in root.iterdir()) != sorted(files)
    done = remove.remove(disk, efivars=variables)
    assert "disarmed (uefi)" in done["done"]
    assert "Boot0001 deleted" in done["done"]
    assert {p.name: p.read_bytes() for p in root.iterdir()} == files
    assert table_bytes(disk, "gpt") == before


def test_uefi_armed_elsewhere_is_a_note(tmp_path):
    disk = production(tmp_path / "disk.img", "gpt", ext4=False)
    before = table_bytes(disk, "gpt")
    service = install_by_hand(disk)
    root = tmp_path / "efivars"
    root.mkdir()
    variables = Efivars(str(root), firmware=str(tmp_path))
    variables.write("BootOrder", GUID, struct.pack("<H", 0))
    arming.arm(service, "uefi", vars=variables)
    (tmp_path / "none").mkdir()
    elsewhere = Efivars(str(tmp_path / "none"), firmware=str(tmp_path / "x"))
    done = remove.remove(disk, efivars=elsewhere)
    assert table_bytes(disk, "gpt") == before
    assert any("not booted by UEFI" in n for n in done["notes"])


def test_grown_by_update_then_removed(tmp_path):
    """partition.grow (update --size) changes the table and reseals the
    record itself (record.reseal), so remove takes the grown table as the
    install's (a table changed by anything else is refused: above)."""
    disk = production(tmp_path / "disk.img", "gpt", ext4=False)
    before = table_bytes(disk, "gpt")
    service = install_by_hand(disk)
    grown = partition.grow(service, service.size + 32 * MiB)
    assert tail.read_record(grown)["partition"]["size"] == grown.size
    remove.remove(disk)
    assert table_bytes(disk, "gpt") == before
    assert read_at(disk, grown.tail_offset, MiB) == bytes(MiB)


def test_on_a_loop_device(tmp_path):
    """The disk as a block device (a loop device over the whole file):
    opened by its logical sector size, written without O_EXCL."""
    disk = production(tmp_path / "disk.img", "mbr")
    before = table_bytes(disk, "mbr")
    install_by_hand(disk)
    dev = sh("losetup", "--find", "--show", disk).strip()
    try:
        assert status.status(dev)["installed"] is True
        done = remove.remove(dev, grow=1)
        assert done["grown"]["number"] == 1
    finally:
        sh("losetup", "-d", dev)
    p1 = sfdisk_json(disk)["partitions"][0]
    assert p1["size"] * SECTOR == 128 * MiB + 320 * MiB
    assert table_bytes(disk, "mbr") != before       # grown: 1 record
    assert fs_check(disk, MiB, 448 * MiB) == 448 * MiB


@pytest.mark.needs("mkfs.fat", "mcopy", "syslinux", "debugfs")
def test_after_a_real_install(tmp_path):
    """Part A's install (MBR, ext4 shrunk, syslinux mbr.bin), armed for
    BIOS by part E, then removed: sector 0 as before, byte for byte, the
    ext4 at its old size with its files (debugfs sha256, e2fsck -fn)."""
    import os
    from diskimage.service import install, plan
    from tests.service import installdisks as A
    disk = A.make_disk(tmp_path / "d.img", 900, "dos",
                       "start=2048, size=850MiB, bootable\n")
    with open("/usr/lib/syslinux/mbr/mbr.bin", "rb") as f:
        code = f.read(440)
    with open(disk, "r+b") as f:
        f.write(code)
    files = {f"f{i}.bin": os.urandom(MiB + i) for i in range(3)}
    A.ext4_into(tmp_path, disk, 1, files)
    start, size = A.part_of(disk, 1)
    want, _ = A.ext4_files(tmp_path, disk, start, size, files)
    before = read_at(disk, 0, SECTOR)
    json_before = sfdisk_json(disk)
    p = plan.plan_install(str(disk), A.make_bundle(tmp_path / "bundle"),
                          size=512 * MiB, shrink=1, firmware="bios")
    install.install(p)
    service = status.find_service(disk)
    arming.arm(service, "bios")
    assert read_at(disk, 0, SECTOR) != before
    done = remove.remove(disk)
    assert read_at(disk, 0, SECTOR) == before
    assert sfdisk_json(disk) == json_before
    assert done["grown"] == {"number": 1, "fs": "ext4", "size": 850 * MiB}
    have, clean = A.ext4_files(tmp_path, disk, start, size, files)
    assert clean == 0 and have == want
    assert fs_check(disk, start, size) == size
    assert status.find_service(disk) is None


def test_failure_after_the_first_write(tmp_path, monkeypatch):
    """The grow fails (its tool, stood in for here) after the table was
    put back: TargetChangedError saying what was done."""
    from diskimage.fs import resize as fsresize
    disk = production(tmp_path / "disk.img", "gpt")
    before = table_bytes(disk, "gpt")
    install_by_hand(disk)

    def failing(kind, path, size, what):
        raise fsresize.ResizeError(f"{what}: resize2fs failed")
    monkeypatch.setattr(remove.fsresize, "resize", failing)
    with pytest.raises(TargetChangedError) as err:
        remove.remove(disk, grow=1)
    said = str(err.value)
    assert "resize2fs failed" in said
    assert "done: partition table put back; service partition wiped " \
        "(first and last MiB); partition 1 grown in the table" in said
    assert table_bytes(disk, "gpt") != before       # grown in the table
    assert status.find_service(disk) is None


@pytest.mark.parametrize("kind", ["mbr", "gpt"])
def test_both_state_slots_damaged_disarmed_from_the_record(tmp_path, kind):
    disk = production(tmp_path / "disk.img", kind, boot_code=True)
    before = table_bytes(disk, kind)
    service = install_by_hand(disk)
    st = state.load(service)
    state.set_job(st, state.new_job("capture.sh", "true\n", tries=3),
                  service)
    arming.arm(service, "bios")
    with open(disk, "r+b") as f:
        for slot in (512 << 10, 768 << 10):
            f.seek(service.tail_offset + slot + 40)
            f.write(b"XXXX")
    done = remove.remove(disk)
    assert table_bytes(disk, kind) == before
    assert any(d.startswith("disarmed from the record") for d in
               done["done"])
    assert done["notes"][0].startswith("state damaged: ")
