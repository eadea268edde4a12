"""bwpart install end to end on disk files (install.install over a plan):
the new entry as sfdisk --json and blkid -p see it, the record in both
copies, the shrink of ext4, NTFS and FAT with their checkers clean and
their files kept, and the failures: a disk changed since the plan
(nothing written), a step failing after the first write
(TargetChangedError naming bwpart remove)."""

import hashlib
import json
import os
import re
import signal
import subprocess

import pytest

from diskimage.errors import TargetChangedError, TargetError
from diskimage.service import fatfs, install, layout, partition, plan, \
    record, tail
from tests.service.installdisks import (MiB, ext4_files, ext4_into,
                                        fat_into, make_bundle, make_disk,
                                        part_of, run, sfdisk_json, sha256)

pytestmark = pytest.mark.needs("sfdisk", "mkfs.fat", "mcopy", "blkid",
                               "losetup", root=True)
MBR_BIN = "/usr/lib/syslinux/mbr/mbr.bin"
MTOOLS = dict(os.environ, MTOOLS_SKIP_CHECK="1")


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path / "bundle")


def _bytes(path, start, size):
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(size)


def _blkid(disk, offset):
    out = run("blkid", "-p", "-O", offset, "-o", "export", disk).stdout
    return dict(line.split("=", 1) for line in out.split())


def _check_installed(disk, p, summary):
    svc = partition.find_service(str(disk))
    assert svc is not None and svc.part_id == p.part_id == summary["part_id"]
    assert (svc.number, svc.start, svc.size) == (p.room.number, p.room.start,
                                                 p.room.size)
    seen = _blkid(disk, svc.start)
    assert (seen["TYPE"], seen["VERSION"], seen["LABEL"]) == \
        ("vfat", "FAT32", layout.FAT_LABEL)
    rec = tail.read_record(svc, fat_copy=False)
    with fatfs.open_fat(svc) as fat:
        assert json.loads(fat.get(layout.RECORD_PATH)) == rec
        names = {n for n, _, _ in fat.ls("/bwpart/env/e1")}
        assert {"vmlinuz", "initrd.img", "bundle.json"} <= names
        assert not fat.exists("/EFI/BOOT")
        assert fat.exists(layout.GRUB_CFG)
    assert rec["partition"] == p.partition_row()
    assert rec["efi_loader"] == p.efi_loader    # what arming's entry starts
    for area, now in zip(rec["areas"], record.current(disk, rec["areas"])):
        assert hashlib.sha256(now).hexdigest() == area["after_sha256"]
        assert hashlib.sha256(record.unb64(area["before"])).hexdigest() == \
            area["before_sha256"]
    return svc, rec


@pytest.mark.needs("grub-mkstandalone")
def test_gpt_free_end(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=300MiB\n")
    os_bytes = hashlib.sha256(_bytes(disk, MiB, 300 * MiB)).hexdigest()
    lba0 = _bytes(disk, 0, 512)
    p = plan.plan_install(str(disk), bundle, size=512 * MiB,
                          firmware="uefi", efi_loader="grub")
    steps = []
    summary = install.install(p, progress=steps.append)
    assert steps[0].startswith("writing the new table")
    svc, rec = _check_installed(disk, p, summary)
    new = next(n for n in sfdisk_json(disk)["partitions"]
               if n["node"].endswith("2"))
    assert new["type"].lower() == layout.GPT_TYPE
    assert new["name"] == layout.GPT_NAME
    assert new["attrs"] == "RequiredPartition GUID:62,63"
    assert new["start"] * 512 == 301 * MiB
    run("sgdisk", "-v", disk)
    assert hashlib.sha256(_bytes(disk, MiB, 300 * MiB)).hexdigest() == \
        os_bytes
    assert _bytes(disk, 0, 512) == lba0         # no boot code changed
    assert rec["shrunk"] is None and rec["nvram"] == []
    assert rec["efi_loader"] == "grub"
    assert [a["what"] for a in rec["areas"]] == ["lba0", "gpt-primary",
                                                 "gpt-backup"]
    with fatfs.open_fat(svc) as fat:
        assert fat.exists("/EFI/rdeploy/grubx64.efi")


@pytest.mark.needs("mkfs.ext4", "resize2fs", "debugfs", "syslinux")
def test_mbr_shrink_ext4_bios(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 900, "dos", "start=2048, "
                     "size=850MiB, bootable\n")
    subprocess.run(["dd", f"if={MBR_BIN}", f"of={disk}", "bs=440",
                    "count=1", "conv=notrunc"], check=True,
                   capture_output=True)
    files = {f"f{i}.bin": os.urandom(2 * MiB + i) for i in range(6)}
    ext4_into(tmp_path, disk, 1, files)
    start, size = part_of(disk, 1)
    want, _ = ext4_files(tmp_path, disk, start, size, files)
    code = _bytes(disk, 0, 440)
    p = plan.plan_install(str(disk), bundle, size=512 * MiB, shrink=1,
                          firmware="bios")
    assert p.shrink[:3] == (1, "ext4", 850 * MiB)
    assert "shrinks from 850.0 MiB" in p.to_dict()["notes"][0]
    summary = install.install(p)
    svc, rec = _check_installed(disk, p, summary)
    assert rec["shrunk"] == {"number": 1, "fs": "ext4",
                             "old_size": 850 * MiB, "new_size": p.shrink[3]}
    assert rec["bios"] == {"code": "syslinux mbr.bin",
                           "method": "active-flag"}
    nodes = sfdisk_json(disk)["partitions"]
    assert nodes[0]["size"] * 512 == p.shrink[3]
    assert nodes[0]["bootable"] is True
    assert nodes[1]["type"] == "1c" and "bootable" not in nodes[1]
    assert nodes[1]["start"] * 512 == svc.start == start + p.shrink[3]
    have, clean = ext4_files(tmp_path, disk, start, p.shrink[3], files)
    assert clean == 0 and have == want          # e2fsck -fn, sha256
    assert _bytes(disk, 0, 440) == code         # the MBR code kept
    info = subprocess.run(["minfo", "-i", f"{disk}@@{svc.start}", "::"],
                          capture_output=True, text=True, env=MTOOLS,
                          check=True).stdout
    assert f"hidden sectors: {svc.start // 512}\n" in info  # syslinux's LBAs
    with fatfs.open_fat(svc) as fat:
        assert fat.exists("/syslinux/ldlinux.c32")
        assert fat.exists("/syslinux/ldlinux.sys")
        assert fat.exists("/EFI/rdeploy/shimx64.efi")


@pytest.mark.needs("fsck.fat", "mtype")
def test_gpt_shrink_fat32(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1200, "gpt", "start=2048, "
                     "size=1100MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
                     "\n")
    files = {f"F{i}.BIN": os.urandom(3 * MiB + i) for i in range(4)}
    fat_into(tmp_path, disk, 1, files)
    p = plan.plan_install(str(disk), bundle, size=512 * MiB, shrink=1,
                          firmware="uefi")
    number, kind, old, new = p.shrink
    assert (number, kind) == (1, "fat32") and new < old
    summary = install.install(p)
    _check_installed(disk, p, summary)
    start, size = part_of(disk, 1)
    assert size == new
    image = tmp_path / "p1.fat"
    image.write_bytes(_bytes(disk, start, size))
    fsck = subprocess.run(["fsck.fat", "-n", str(image)],
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout
    for name, data in files.items():
        got = subprocess.run(["mtype", "-i", str(image), f"::/{name}"],
                             capture_output=True, env=MTOOLS, check=True)
        assert got.stdout == data


@pytest.mark.needs("mkntfs", "ntfsresize", "ntfscp", "ntfscat")
def test_gpt_shrink_ntfs(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1200, "gpt", "start=2048, "
                     "size=1100MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
                     "\n")
    start, size = part_of(disk, 1)
    image = tmp_path / "p1.ntfs"
    with open(image, "wb") as f:
        f.truncate(size)
    run("mkntfs", "-F", "-Q", "-L", "win", image)
    data = os.urandom(5 * MiB)
    (tmp_path / "doc.bin").write_bytes(data)
    run("ntfscp", image, tmp_path / "doc.bin", "doc.bin")
    with open(image, "rb") as src, open(disk, "r+b") as dst:
        dst.seek(start)
        dst.write(src.read())
    p = plan.plan_install(str(disk), bundle, size=512 * MiB, shrink=1,
                          firmware="uefi")
    assert p.shrink[1] == "ntfs"
    summary = install.install(p)
    _check_installed(disk, p, summary)
    _, new_size = part_of(disk, 1)
    assert new_size == p.shrink[3]
    image.write_bytes(_bytes(disk, start, new_size))
    info = run("ntfsresize", "--info", "--force", "--no-progress-bar",
               image).stdout
    assert "Current volume size" in info
    got = subprocess.run(["ntfscat", "--force", str(image), "doc.bin"],
                         capture_output=True, check=True).stdout
    assert got == data


def test_disk_changed_since_plan(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=300MiB\n")
    p = plan.plan_install(str(disk), bundle, size=512 * MiB,
                          firmware="uefi")
    subprocess.run(["sgdisk", "-c", "1:renamed", str(disk)], check=True,
                   capture_output=True)
    before = sha256(disk)
    with pytest.raises(TargetError, match="gpt-primary area at byte 512 "
                       "changed since the plan; nothing written"):
        install.install(p)
    assert sha256(disk) == before


def test_failure_after_first_write(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=300MiB\n")
    p = plan.plan_install(str(disk), bundle, size=512 * MiB,
                          firmware="uefi")
    os.unlink(bundle / "initrd.img")        # gone before its copy
    # exactly the steps that were done, and the one under way
    with pytest.raises(TargetChangedError, match=r"install failed after "
                       r"it wrote the partition table, wrote the record, "
                       r"formatted partition 2, installed the UEFI loader "
                       r"\((shim|grub)\), while writing the environment: "
                       r".*bwpart remove .* undoes"):
        install.install(p)
    svc = partition.find_service(str(disk))
    assert svc is not None                      # remove can find it
    assert tail.read_record(svc, fat_copy=False)["areas"] == p.areas


def _interrupt_at(words):
    def progress(step):
        if step.startswith(words):
            os.kill(os.getpid(), signal.SIGINT)
    return progress


def test_ctrl_c_before_the_first_write(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=300MiB\n")
    p = plan.plan_install(str(disk), bundle, size=512 * MiB,
                          firmware="uefi")
    before = sha256(disk)
    with pytest.raises(KeyboardInterrupt):
        install.install(p, progress=_interrupt_at("writing the new table"))
    assert sha256(disk) == before


def test_ctrl_c_after_the_table(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=300MiB\n")
    p = plan.plan_install(str(disk), bundle, size=512 * MiB,
                          firmware="uefi")
    with pytest.raises(KeyboardInterrupt) as cut:
        install.install(p, progress=_interrupt_at("formatting"))
    assert re.search(r"after it wrote the partition table, wrote the "
                     r"record: interrupted; bwpart remove", cut.value.done)
    new = next(n for n in sfdisk_json(disk)["partitions"]
               if n["node"].endswith("2"))
    assert new["type"].lower() == layout.GPT_TYPE     # the table is whole
    run("sgdisk", "-v", disk)


def test_ctrl_c_before_the_record_puts_the_table_back(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=300MiB\n")
    p = plan.plan_install(str(disk), bundle, size=512 * MiB,
                          firmware="uefi")
    before = sha256(disk)
    with pytest.raises(KeyboardInterrupt) as cut:
        install.install(p, progress=_interrupt_at("writing the record"))
    assert re.search(r"after it wrote the partition table: interrupted; "
                     r"the table was put back as it was$", cut.value.done)
    assert sha256(disk) == before


@pytest.mark.needs("mkfs.ext4", "resize2fs", "debugfs", "dumpe2fs")
def test_ctrl_c_after_the_shrink_grows_it_back(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 900, "dos", "start=2048, "
                     "size=850MiB\n")
    files = {f"f{i}.bin": os.urandom(MiB + i) for i in range(3)}
    ext4_into(tmp_path, disk, 1, files)
    start, size = part_of(disk, 1)
    want, _ = ext4_files(tmp_path, disk, start, size, files)
    table = sfdisk_json(disk)
    p = plan.plan_install(str(disk), bundle, size=512 * MiB, shrink=1,
                          firmware="uefi")
    with pytest.raises(KeyboardInterrupt) as cut:
        install.install(p, progress=_interrupt_at("writing the new table"))
    assert re.search(r"after it shrank the filesystem of partition 1: "
                     r"interrupted; the filesystem grown back$",
                     cut.value.done)
    assert sfdisk_json(disk) == table
    have, clean = ext4_files(tmp_path, disk, start, size, files)
    assert clean == 0 and have == want
    image = tmp_path / "p1.ext4"
    image.write_bytes(_bytes(disk, start, size))
    head = run("dumpe2fs", "-h", image).stdout
    blocks = int(next(line.split(":")[1] for line in head.splitlines()
                      if line.startswith("Block count:")))
    block = int(next(line.split(":")[1] for line in head.splitlines()
                     if line.startswith("Block size:")))
    assert blocks * block == size


def test_block_device_at_the_least_size(tmp_path, bundle):
    """On a loop device over the whole disk (a block device, as a real
    disk is), the service partition of MIN_SIZE."""
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=300MiB\n")
    dev = run("losetup", "--find", "--show", disk).stdout.strip()
    try:
        p = plan.plan_install(dev, bundle, size=layout.MIN_SIZE,
                              firmware="uefi")
        summary = install.install(p)
        svc, _ = _check_installed(dev, p, summary)
        assert svc.size == layout.MIN_SIZE
        with fatfs.open_fat(svc) as fat:
            assert fat.free() > 200 * MiB
        # the loop device was attached without partition scanning: the
        # kernel is not told of the new entry (partitions partx added to it
        # would outlive the detach, for the next user of that loop device)
        name = os.path.basename(dev)
        assert not [p for p in os.listdir(f"/sys/block/{name}")
                    if p.startswith(name)]
    finally:
        run("losetup", "-d", dev)
    image = tmp_path / "fat.img"
    image.write_bytes(_bytes(disk, svc.start, svc.fs_size))
    fsck = subprocess.run(["fsck.fat", "-n", str(image)],
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout
