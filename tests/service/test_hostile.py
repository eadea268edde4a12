"""A disk that arrives with a forged service record or state: remove
writes nothing outside the table areas, every forged field is InputError
naming it and where it came from, nothing crashes.  The forgeries are
written with tail.py's own encoder (a valid header and crc over a record
this tool would never write) and as raw bytes."""

import base64
import hashlib
import struct

import pytest

from diskimage.errors import InputError
from diskimage.service import partition, record, remove, state, status, tail
from tests.service.forged import raw_record
from tests.smalldisk import sha256
from tests.service.ondisk_helpers import MiB, install_by_hand, production

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4", "e2fsck", "resize2fs",
                               "mkfs.fat", "mcopy", "losetup", root=True)


def b64(data):
    return base64.b64encode(data).decode()


def forge(service, change):
    """The record read, *change(record)* applied, both copies written
    with the tool's own writers (which do not check what they write)."""
    rec = tail.read_record(service)
    change(rec)
    record.write_both(service, rec)
    return rec


@pytest.fixture(params=["gpt", "mbr"])
def installed(request, tmp_path):
    disk = production(tmp_path / "disk.img", request.param)
    return disk, install_by_hand(disk)


def aim(offset, size=512, what="mbr", index=0):
    data = bytes(range(256)) * (size // 256)

    def change(rec):
        area = rec["areas"][index]
        area.update(what=what if area["what"] != "lba0" else "lba0",
                    offset=offset, size=size, before=b64(data),
                    before_sha256=hashlib.sha256(data).hexdigest())
    return change


@pytest.mark.parametrize("how", ["into-p1", "past-end", "length", "dup"])
def test_areas_aimed_outside_the_table_write_nothing(installed, how):
    disk, service = installed
    rec = tail.read_record(service)
    first = rec["areas"][0]
    if how == "into-p1":
        change = aim(2 * MiB)                   # partition 1's ext4
    elif how == "past-end":
        change = aim(512 * MiB - 256)
    elif how == "length":
        change = aim(first["offset"], first["size"] + 512)
    else:
        def change(r):
            r["areas"].append(dict(r["areas"][0]))
    forge(service, change)
    before = sha256(disk)
    with pytest.raises(InputError, match=r"service record: field areas"):
        remove.remove(disk)
    assert sha256(disk) == before
    assert status.status(disk)["installed"] is True


def test_before_bytes_that_grow_partition_1_over_the_service(tmp_path):
    disk = production(tmp_path / "disk.img", "mbr")
    service = install_by_hand(disk)

    def change(rec):
        area = rec["areas"][0]
        sector = bytearray(base64.b64decode(area["before"]))
        # partition 1 made to cover the service partition
        sector[446 + 12:446 + 16] = struct.pack(
            "<I", (service.start + service.size) // 512 - 2048)
        area["before"] = b64(bytes(sector))
        area["before_sha256"] = hashlib.sha256(sector).hexdigest()
    forge(service, change)
    before = sha256(disk)
    with pytest.raises(InputError, match=r"field areas: the before-bytes "
                       r"make a table that is not this disk's without the "
                       r"service partition"):
        remove.remove(disk)
    assert sha256(disk) == before


def test_forged_shrunk_cannot_grow_past_the_partition(installed):
    disk, service = installed

    def change(rec):
        rec["shrunk"] = {"number": 1, "fs": "ext4", "old_size": 400 * MiB,
                         "new_size": 128 * MiB}
    forge(service, change)
    before = sha256(disk)
    with pytest.raises(InputError, match=r"field shrunk: partition 1 is "
                       r"134217728 bytes now and 134217728 in the "
                       r"before-bytes"):
        remove.remove(disk)
    assert sha256(disk) == before


@pytest.mark.parametrize("field, value, said", [
    (("partition", "part_id"), "x rd.job=evil", r"field partition.part_id "
     r"'x rd.job=evil' is not of the form"),
    (("areas",), "all", r"field areas is not a list"),
    (("areas", 0, "offset"), -512, r"field areas\[0\].offset is -512, out "
     r"of bounds"),
    (("areas", 0, "size"), 1 << 40, r"field areas\[0\].size is 1099511627776"),
    (("areas", 0, "before"), "!!", r"field areas\[0\].before is not base64"),
    (("disk", "table"), "apm", r"field disk.table is 'apm', not one of"),
    (("nvram",), [{"name": "../../x", "guid": "8be4df61-93ca-11d2-aa0d-"
                   "00e098032b8c", "before": None, "after_sha256": None}],
     r"field nvram\[0\].name '../../x' is not of the form"),
    (("shrunk",), {"number": 1, "fs": "ext4;rm", "old_size": 1,
                   "new_size": 1}, r"field shrunk.fs 'ext4;rm'"),
    (("format",), True, r"field format is not an integer"),
])
def test_forged_record_fields(installed, field, value, said):
    disk, service = installed

    def change(rec):
        where = rec
        for key in field[:-1]:
            where = where[key]
        where[field[-1]] = value
    forge(service, change)
    at = service.tail_offset
    with pytest.raises(InputError, match=rf"service record \(tail copy\) "
                       rf"at byte {at}: {said}"):
        tail.read_record(service)
    before = sha256(disk)
    # ours by its type (and FAT): a damaged service partition, exit 3
    damaged = rf"partition {service.number} is a damaged service " \
        rf"partition: service record \(tail copy\) at byte {at}: {said}"
    with pytest.raises(partition.DamagedService, match=damaged):
        partition.find_service(disk)
    with pytest.raises(InputError, match=damaged):
        remove.remove(disk)
    with pytest.raises(InputError, match=damaged):
        status.status(disk)
    assert sha256(disk) == before


@pytest.mark.parametrize("body, said", [
    (b"[" * 200000, "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "the JSON is not an object"),
    (b'{"format": 1, "disk": NaN}', "field disk is not an object"),
    (b'{"format": 1e999}', "field format is not an integer"),
])
def test_raw_forged_record_bytes(installed, body, said):
    disk, service = installed
    raw_record(service, body)
    with pytest.raises(InputError, match=rf"at byte {service.tail_offset}: "
                       rf"{said}"):
        tail.read_record(service, fat_copy=False)
    # /bwpart/install.json is whole: found by it, the tail written back
    assert partition.find_service(disk) == service
    assert tail.read_record(service) == tail.fat_record(service)
    assert tail.read_record(service, fat_copy=False) is not None


@pytest.mark.parametrize("armed, said", [
    ({"firmware": "bios", "bios": {"method": "active-flag",
                                   "flags_before": {"100": 0}}},
     r"field armed.bios.flags_before"),
    ({"firmware": "bios", "bios": {"method": "active-flag",
                                   "flags_before": {"1": 4096}}},
     r"field armed.bios.flags_before"),
    ({"firmware": "uefi", "uefi": {"entry": "Boot./x",
                                   "bootorder_before": None}},
     r"field armed.uefi.entry 'Boot./x' is not of the form"),
    ({"firmware": "efi"}, r"field armed.firmware is 'efi'"),
])
def test_forged_state_writes_nothing(installed, armed, said):
    disk, service = installed
    tail.write_state(service, {"job": None, "armed": armed, "last": None})
    before = sha256(disk)
    with pytest.raises(InputError, match=r"service state slot A at byte "
                       rf"{service.tail_offset + 512 * 1024}: {said}"):
        state.load(service)
    with pytest.raises(InputError, match=said):
        remove.remove(disk)
    assert sha256(disk) == before


def test_forged_job_text_not_its_sha256(installed):
    disk, service = installed
    job = state.new_job("job.sh", "echo asked\n")
    job["text"] = "echo unasked\n"
    tail.write_state(service, {"job": job, "armed": None, "last": None})
    with pytest.raises(InputError, match=r"job.text does not have the "
                       r"sha256 job.sha256 names"):
        state.load(service)
    for bad in ({"tries": 10 ** 9}, {"used": -1}, {"name": ["x"]}):
        good = state.new_job("job.sh", "echo asked\n")
        tail.write_state(service, {"job": dict(good, **bad)})
        with pytest.raises(InputError, match=r"field job\."):
            state.load(service)


def test_forged_nvram_cannot_delete_the_machines_entries(tmp_path):
    """A record that says bwpart made Boot0000 (the machine's own) and
    BootOrder: remove leaves both, with a note; its own entry it deletes."""
    from diskimage.service import arming
    from diskimage.service.efiboot import EFI_GLOBAL_VARIABLE as GUID
    from diskimage.service.efivars import Efivars
    disk = production(tmp_path / "disk.img", "gpt", ext4=False)
    service = install_by_hand(disk)
    root = tmp_path / "efivars"
    root.mkdir()
    variables = Efivars(str(root), firmware=str(tmp_path))
    variables.write("Boot0000", GUID, b"the firmware's own entry")
    variables.write("BootOrder", GUID, struct.pack("<H", 0))
    arming.arm(service, "uefi", vars=variables)           # makes Boot0001
    own = b64(b"x")

    def change(rec):
        rec["nvram"] += [
            {"name": "Boot0000", "guid": GUID, "before": None,
             "after_sha256": None},
            {"name": "BootOrder", "guid": GUID, "before": own,
             "after_sha256": "0" * 64}]
    forge(service, change)
    done = remove.remove(disk, efivars=variables)
    assert "Boot0001 deleted" in done["done"]
    assert variables.read("Boot0000", GUID)[1] == b"the firmware's own entry"
    assert variables.read("BootOrder", GUID)[1] == struct.pack("<H", 0)
    assert any(n.startswith("Boot0000 left as it is: not a load option")
               for n in done["notes"]), done["notes"]
    assert any(n.startswith("BootOrder left as it is: changed since")
               for n in done["notes"]), done["notes"]
