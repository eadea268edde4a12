"""Disk files with a service partition, for the tests of arming, boot-next
and the service boot (part E): the table made by sfdisk, syslinux's boot
code from Debian's syslinux-common in sector 0, the tail record written by
part B's tail.write_record, and (for UEFI) a FAT made by mkfs.fat in the
FAT area.  What the field's tools say of them: sfdisk --json."""

import hashlib
import json
import subprocess

from diskimage.service import fatfs, layout, partition, tail
from tests.service.forged import minimal_record

MiB = 1 << 20
SYSLINUX_MBR = "/usr/lib/syslinux/mbr"
#: p1: a "production" partition at 1 MiB; p2: the service partition
P1_MIB, SERVICE_MIB = 32, 256
SIZE_MIB = 1 + P1_MIB + SERVICE_MIB + 1


def sfdisk_json(path):
    out = subprocess.run(["sfdisk", "--json", str(path)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)["partitiontable"]


def parts(path):
    """{number: partition dict of sfdisk --json}."""
    return {int(p["node"][len(str(path)):]): p
            for p in sfdisk_json(path)["partitions"]}


def head(path, length=64 << 10):
    with open(path, "rb") as f:
        return f.read(length)


def table_bytes(path):
    """LBA 0-33 and the last 33 sectors (GPT backup): what arming may
    change."""
    with open(path, "rb") as f:
        first = f.read(34 * 512)
        f.seek(-33 * 512, 2)
        return first + f.read()


def boot_code(path, name):
    """Lay the first 440 bytes of syslinux's `name` (mbr.bin, gptmbr.bin)
    into sector 0; None: leave it as sfdisk made it (zeros)."""
    if name is None:
        return
    with open(f"{SYSLINUX_MBR}/{name}", "rb") as f:
        code = f.read(440)
    with open(path, "r+b") as f:
        f.write(code)


def make(path, label="dos", code="syslinux", p1_boot=True, fat=False,
         record=None):
    """A disk file: p1 (production, active / legacy BIOS bootable when
    `p1_boot`) and p2 the service partition with a valid tail record.
    `code`: "syslinux" (mbr.bin or gptmbr.bin by the label), None (zeros)
    or a file name in SYSLINUX_MBR.  Returns the Service find_service
    finds."""
    with open(path, "wb") as f:
        f.truncate(SIZE_MIB * MiB)
    if label == "dos":
        script = (f"label: dos\n"
                  f"start=1MiB, size={P1_MIB}MiB, type=83"
                  f"{', bootable' if p1_boot else ''}\n"
                  f"size={SERVICE_MIB}MiB, type=1c\n")
    else:
        attrs = ', attrs="LegacyBIOSBootable"' if p1_boot else ""
        script = (f"label: gpt\n"
                  f"start=1MiB, size={P1_MIB}MiB, "
                  f"type=0fc63daf-8483-4772-8e79-3d69d8477de4{attrs}\n"
                  f"size={SERVICE_MIB}MiB, type={layout.GPT_TYPE}, "
                  f'name="{layout.GPT_NAME}", '
                  f'attrs="RequiredPartition,62,63"\n')
    subprocess.run(["sfdisk", "-q", str(path)], input=script, text=True,
                   check=True, capture_output=True)
    if code == "syslinux":
        code = "mbr.bin" if label == "dos" else "gptmbr.bin"
    boot_code(path, code)
    table, _ = partition.read_disk(str(path))
    part = next(p for p in table.partitions if p.number == 2)
    service = partition.service_of(str(path), table, part)
    # -s 1: at 4 KiB clusters a 255 MiB FAT32 is below its cluster
    # minimum and mtools takes it for FAT16 ("No directory slots").  The
    # FAT is made whatever `fat` says: install.json on it is what says
    # the install finished (record.whole); `fat` is kept for the callers.
    subprocess.run(["mkfs.fat", "-F", "32", "-s", "1",
                    "-n", layout.FAT_LABEL,
                    "--offset", str(service.start // 512), str(path),
                    str(service.fs_size // 1024)],
                   check=True, capture_output=True)
    record = record or minimal_record(service, efi_loader="shim")
    tail.write_record(service, record)
    with fatfs.open_fat(service) as opened:
        opened.mkdir("/bwpart")
        opened.put(tail.encode(record), layout.RECORD_PATH)
    found = partition.find_service(str(path))
    assert found == service
    return found


def fingerprint(path):
    """sha256 of every byte arming, boot-next and the service boot may
    write on a disk of make(): the first MiB (MBR, GPT) and the last two
    (the service partition's tail, the backup GPT)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(MiB))
        f.seek(-2 * MiB, 2)
        h.update(f.read())
    return h.hexdigest()
