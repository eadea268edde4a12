"""EFI_LOAD_OPTION built for a real partition (sfdisk's own words for its
numbers) and parsed back, OVMF's own entries parsed, and every bad length
refused."""

import gzip
import json
import struct
import subprocess
import types
import uuid
from pathlib import Path

import pytest

from diskimage.errors import InputError
from diskimage.service import loadoption
from tests import ovmfvars

DATA = Path(__file__).parent / "data"
LOADER = "/EFI/rdeploy/shimx64.efi"


def _disk(tmp_path, script):
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["sfdisk", "-q", str(path)], input=script, text=True,
                   check=True)
    table = json.loads(subprocess.run(
        ["sfdisk", "--json", str(path)], capture_output=True, text=True,
        check=True).stdout)["partitiontable"]
    return path, table


def _service(table, number):
    part = table["partitions"][number - 1]
    if table["label"] == "gpt":
        part_id = part["uuid"].lower()
    else:
        part_id = f"{int(table['id'], 16):08x}-{number:02d}"
    return types.SimpleNamespace(
        disk="disk.img", number=number, start=part["start"] * 512,
        size=part["size"] * 512, table_kind=table["label"]
        if table["label"] == "gpt" else "mbr", part_id=part_id)


@pytest.mark.needs("sfdisk")
def test_gpt_entry_names_the_partition_as_sfdisk_sees_it(tmp_path):
    _, table = _disk(tmp_path, "label: gpt\nstart=2048, size=20480\n"
                               "start=22528, size=40960\n")
    service = _service(table, 2)
    data = loadoption.build("rdeploy service", service, LOADER)
    # the bytes, field by field, from the spec's offsets
    attrs, length = struct.unpack_from("<IH", data)
    assert attrs == loadoption.LOAD_OPTION_ACTIVE
    desc = "rdeploy service".encode("utf-16-le") + b"\0\0"
    assert data[6:6 + len(desc)] == desc
    paths = data[6 + len(desc):]
    assert len(paths) == length
    assert paths[:4] == bytes([4, 1, 42, 0])
    number, start, size = struct.unpack_from("<IQQ", paths, 4)
    assert (number, start, size) == (2, 22528, 40960)
    guid = uuid.UUID(table["partitions"][1]["uuid"])
    assert paths[24:40] == guid.bytes_le
    assert paths[40:42] == bytes([2, 2])
    name = "\\EFI\\rdeploy\\shimx64.efi".encode("utf-16-le") + b"\0\0"
    assert paths[42:46] == bytes([4, 4]) + struct.pack("<H", 4 + len(name))
    assert paths[46:46 + len(name)] == name
    assert paths[46 + len(name):] == bytes([0x7F, 0xFF, 4, 0])

    parsed = loadoption.parse(data)
    assert parsed["description"] == "rdeploy service"
    assert parsed["file"] == "\\EFI\\rdeploy\\shimx64.efi"
    assert parsed["hd"]["signature"] == str(guid)
    assert parsed["hd"]["start"] == 22528 and parsed["hd"]["size"] == 40960
    assert parsed["optional"] == b""


@pytest.mark.needs("sfdisk")
def test_mbr_entry_carries_the_disk_signature(tmp_path):
    _, table = _disk(tmp_path, "label: dos\nlabel-id: 0x1badcafe\n"
                               "start=2048, size=20480, type=83\n"
                               "start=22528, size=40960, type=1c\n")
    service = _service(table, 2)
    assert service.part_id == "1badcafe-02"
    parsed = loadoption.parse(
        loadoption.build("rdeploy service", service, LOADER))
    hd = parsed["hd"]
    assert (hd["number"], hd["start"], hd["size"]) == (2, 22528, 40960)
    assert hd["signature"] == 0x1BADCAFE
    assert (hd["mbr_type"], hd["signature_type"]) == (1, 1)
    raw = loadoption.build("rdeploy service", service, LOADER)
    at = raw.index(bytes([4, 1, 42, 0]))
    assert raw[at + 24:at + 40] == struct.pack("<I", 0x1BADCAFE) + bytes(12)


def test_ovmf_made_entries_parse():
    store = gzip.decompress((DATA / "ovmf-vars-shell.fd.gz").read_bytes())
    entries = ovmfvars.boot_entries(store)
    got = {name: loadoption.parse(data)["description"]
           for name, data in entries.items() if name.startswith("Boot0")}
    # what the firmware said on its console (tests/service/data/README.md)
    assert got == {"Boot0000": "UiApp",
                   "Boot0001": "UEFI QEMU DVD-ROM QM00003 ",
                   "Boot0002": "UEFI Misc Device",
                   "Boot0003": "EFI Internal Shell"}
    # OVMF's auto-made device entries carry 16 bytes of optional data
    assert len(loadoption.parse(entries["Boot0002"])["optional"]) == 16


def _good():
    hd = loadoption.hd_node(1, 2048, 4096, "0fc63daf-8483-4772-8e79-"
                                           "3d69d8477de4", "gpt")
    return loadoption.build_raw("x", hd, LOADER)


@pytest.mark.parametrize("damage, words", [
    (lambda d: d[:5], "short read"),
    (lambda d: d[:4] + struct.pack("<H", len(d)) + d[6:], "runs past"),
    (lambda d: d[:6] + b"x\0" * 3, "without its NUL"),
    (lambda d: d[:10] + bytes([4, 1, 40, 0]) + d[14:], "HD node of 40"),
    (lambda d: d[:10] + bytes([4, 1, 2, 0]) + d[14:], "length 2"),
    (lambda d: d[:-4] + bytes([0x7F, 0xFF, 8, 0]), "length 8"),
    (lambda d: d[:4] + struct.pack("<H", struct.unpack_from("<H", d, 4)[0]
                                   - 4) + d[6:-4], "without its End"),
])
def test_bad_lengths_are_refused(damage, words):
    data = _good()
    assert loadoption.parse(data)["file"] == "\\EFI\\rdeploy\\shimx64.efi"
    with pytest.raises(InputError, match=words):
        loadoption.parse(damage(data))


def test_bad_part_id_and_table_kind():
    service = types.SimpleNamespace(number=1, start=0, size=512,
                                    table_kind="mbr", part_id="zz-01")
    with pytest.raises(InputError, match="not an MBR partition id"):
        loadoption.build("x", service, LOADER)
    with pytest.raises(InputError, match="neither gpt nor mbr"):
        loadoption.hd_node(1, 0, 1, 0, "apm")
