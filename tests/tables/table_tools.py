"""What the partition-table tests share: disks made by sfdisk, what
``sfdisk --json`` says of them, and byte edits."""

import json
import os
import subprocess

import pytest

from diskimage.tables.partitions import read_table
from tests import needs

MIB = 1 << 20
SFDISK = needs.which("sfdisk")
MKFS_FAT = needs.which("mkfs.fat")
needs_sfdisk = pytest.mark.needs("sfdisk")
needs_mkfs_fat = pytest.mark.needs("mkfs.fat")

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
