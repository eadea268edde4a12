"""Disks with a service partition made by hand (sfdisk, mkfs), for the
tests of part B (tail, record, state, remove, status): the record and the
tail are ours, the partition is added as install adds it (the service
type, attributes and name; MBR type 0x1c) with sfdisk --append."""

import json
import subprocess

from diskimage.service import fatfs, layout, partition, record
from diskimage.tables.partitions import read_table

MiB = 1 << 20
SECTOR = 512
GPT_TYPE = layout.GPT_TYPE
SYSLINUX = "/usr/lib/syslinux/mbr"


def sh(*args, input=None):
    return subprocess.run([str(a) for a in args], input=input, text=True,
                          check=True, capture_output=True).stdout


def sfdisk_json(path):
    return json.loads(sh("sfdisk", "--json", path))["partitiontable"]


def table_of(path):
    with open(path, "rb") as f:
        def read(offset, length):
            f.seek(offset)
            return f.read(length)
        import os
        return read_table(read, os.path.getsize(path))


def blank(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


def production(path, kind="gpt", size=512 * MiB, p1=128 * MiB, ext4=True,
               boot_code=False):
    """A disk with partition 1 (ext4, *p1* bytes at 1 MiB; None: up to
    the disk's end) and room after it; with *boot_code*, syslinux's
    gptmbr.bin or mbr.bin in sector 0's first 440 bytes."""
    blank(path, size)
    label = "gpt" if kind == "gpt" else "dos"
    ptype = "L" if kind == "gpt" else "83"
    sized = f"size={p1 // SECTOR}, " if p1 else ""
    sh("sfdisk", "-q", path,
       input=f"label: {label}\nstart=2048, {sized}type={ptype}, "
       f"{'bootable' if kind == 'mbr' else 'name=root'}\n")
    if boot_code:
        name = "gptmbr.bin" if kind == "gpt" else "mbr.bin"
        with open(f"{SYSLINUX}/{name}", "rb") as f:
            code = f.read(440)
        with open(path, "r+b") as f:
            f.write(code)
    if ext4:
        length = table_of(path).partitions[0].size
        sh("mkfs.ext4", "-q", "-F", "-E", f"offset={MiB}", path,
           f"{length // 1024}K")
    return str(path)


def read_at(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def install_by_hand(path, size=320 * MiB, shrink=None):
    """What install does to the table and the tail: record.snapshot
    before any write, (shrink partition 1's ext4 and its partition to
    *shrink* bytes), the service partition appended (in the space at the
    end), record sealed and written to the tail.  Returns the Service."""
    path = str(path)
    before = table_of(path)
    areas = record.snapshot(path, before)
    shrunk = None
    if shrink:
        p1 = before.partitions[0]
        from diskimage.fs import resize as fsresize
        with fsresize.region(path, p1.start, p1.size) as dev:
            sh("e2fsck", "-fy", dev)
            sh("resize2fs", dev, f"{shrink // 1024}K")
        sh("sfdisk", "-q", "--no-reread", "-N", "1", path,
           input=f"2048,{shrink // SECTOR}\n")
        shrunk = {"number": 1, "fs": "ext4", "old_size": p1.size,
                  "new_size": shrink}
    if before.kind == "gpt":
        line = (f"size={size // SECTOR}, type={GPT_TYPE}, "
                f'name="rdeploy service", attrs="RequiredPartition,'
                f'GUID:62,63"\n')
    else:
        line = f"size={size // SECTOR}, type=1c\n"
    sh("sfdisk", "-q", "--no-reread", "--append", path, input=line)
    after = table_of(path)
    new = max(after.partitions, key=lambda p: p.start)
    part_id = new.uuid if after.kind == "gpt" else \
        f"{after.disk_id[2:]}-{new.number:02d}"
    service = partition.Service(path, new.number, new.start, new.size,
                                after.kind, part_id)
    rec = record.new(disk=path, table=before,
                     areas=record.seal(path, areas),
                     partition={"number": new.number, "start": new.start,
                                "size": new.size, "part_id": part_id,
                                "type": new.type},
                     shrunk=shrunk,
                     bios={"unsupported": "made by hand in a test"})
    fatfs.format(service)
    record.write_both(service, rec)
    return service
