"""arming: the BIOS switch (MBR active flag, GPT legacy BIOS bootable
attribute) on real disk files made by sfdisk, judged by sfdisk --json and
byte for byte; the UEFI switch through Efivars on a directory laid out as
efivarfs (the real efivarfs is H's QEMU tests')."""

import base64
import struct

import pytest

from diskimage.errors import TargetError
from diskimage.service import arming, efiboot, state, tail
from diskimage.service.efivars import Efivars

from tests.service import servicedisk

pytestmark = pytest.mark.needs("sfdisk")
GUID = efiboot.EFI_GLOBAL_VARIABLE


digest = servicedisk.fingerprint


def active(path):
    return {n for n, p in servicedisk.parts(path).items() if p.get("bootable")}


def legacy(path):
    return {n for n, p in servicedisk.parts(path).items()
            if "LegacyBIOSBootable" in p.get("attrs", "")}


def test_firmware_is_read_from_sys_firmware_efi(tmp_path):
    assert arming.firmware(str(tmp_path / "absent")) == "bios"
    assert arming.firmware(str(tmp_path)) == "uefi"


def test_mbr_active_flag_moves_to_the_service_partition_and_back(tmp_path):
    disk = tmp_path / "disk.img"
    service = servicedisk.make(disk, "dos")
    before = servicedisk.table_bytes(disk)
    assert active(disk) == {1}
    armed = arming.arm(service, "bios")
    assert armed["bios"]["method"] == "active-flag"
    assert active(disk) == {2}
    saved = state.load(service)["armed"]
    assert saved["bios"]["flags_before"] == {"1": 0x80, "2": 0, "3": 0,
                                             "4": 0}
    # a second arm keeps the first "before" (not its own armed flags)
    arming.arm(service, "bios")
    assert state.load(service)["armed"] == saved
    assert arming.disarm(service) == saved
    assert active(disk) == {1}
    assert state.load(service)["armed"] is None
    assert servicedisk.table_bytes(disk) == before
    assert arming.disarm(service) is None


def test_mbr_no_active_partition_before_is_put_back_as_none(tmp_path):
    disk = tmp_path / "disk.img"
    service = servicedisk.make(disk, "dos", p1_boot=False)
    before = servicedisk.table_bytes(disk)
    arming.arm(service, "bios")
    assert active(disk) == {2}
    arming.disarm(service)
    assert active(disk) == set()
    assert servicedisk.table_bytes(disk) == before


def test_gpt_legacy_attribute_on_the_service_partition_only(tmp_path):
    disk = tmp_path / "disk.img"
    service = servicedisk.make(disk, "gpt")
    before = servicedisk.table_bytes(disk)
    assert legacy(disk) == {1}
    arming.arm(service, "bios")
    # sfdisk reads both CRCs: a wrong one would be a warning or an error
    assert legacy(disk) == {2}
    attrs = servicedisk.parts(disk)[2]["attrs"]
    assert "RequiredPartition" in attrs and "GUID:62,63" in attrs
    armed = state.load(service)["armed"]["bios"]
    assert armed["method"] == "legacy-attr"
    assert set(armed["attrs_before"]) == {"1", "2"}
    arming.disarm(service)
    assert legacy(disk) == {1}
    assert servicedisk.table_bytes(disk) == before


def test_rearm_puts_back_flags_changed_meanwhile(tmp_path):
    disk = tmp_path / "disk.img"
    service = servicedisk.make(disk, "dos")
    before = servicedisk.table_bytes(disk)
    arming.arm(service, "bios")
    import subprocess
    subprocess.run(["sfdisk", "-q", "--activate", str(disk), "1"],
                   check=True, capture_output=True)
    assert 1 in active(disk)
    arming.rearm(service)
    assert active(disk) == {2}
    arming.disarm(service)
    assert servicedisk.table_bytes(disk) == before


@pytest.mark.parametrize("label", ["dos", "gpt"])
def test_an_unknown_boot_code_is_refused_before_any_write(tmp_path, label):
    disk = tmp_path / "disk.img"
    service = servicedisk.make(disk, label, code=None)
    was = digest(disk)
    with pytest.raises(TargetError, match="boot code"):
        arming.arm(service, "bios")
    assert digest(disk) == was


def test_the_other_tables_boot_code_is_refused(tmp_path):
    disk = tmp_path / "disk.img"
    service = servicedisk.make(disk, "dos", code="gptmbr.bin")
    was = digest(disk)
    with pytest.raises(TargetError):
        arming.arm(service, "bios")
    assert digest(disk) == was


# -- UEFI on a directory laid out as efivarfs --------------------------------

def efivars_dir(tmp_path, order):
    root = tmp_path / "efivars"
    root.mkdir()
    vars = Efivars(str(root), firmware=str(tmp_path))
    vars.write("Boot0000", GUID, b"the firmware's own entry")
    vars.write("BootOrder", GUID, struct.pack(f"<{len(order)}H", *order))
    return vars


@pytest.mark.needs("mkfs.fat", "mcopy")
def test_uefi_entry_bootorder_bootnext_and_back(tmp_path):
    disk = tmp_path / "disk.img"
    service = servicedisk.make(disk, "gpt", fat=True)
    vars = efivars_dir(tmp_path, [0])
    order_before = vars.read("BootOrder", GUID)
    armed = arming.arm(service, "uefi", vars=vars)
    entry = armed["uefi"]["entry"]
    assert entry == "Boot0001"
    assert efiboot.boot_order(vars) == [1, 0]
    assert efiboot.boot_next(vars) == 1
    assert armed["uefi"]["bootorder_before"] == \
        base64.b64encode(order_before[1]).decode()
    # the entry is in the install record, for `bwpart remove`
    assert [n["name"] for n in tail.read_record(service)["nvram"]] == \
        [entry]
    # the firmware uses BootNext up; the service boot sets it again
    vars.delete("BootNext", GUID)
    arming.rearm(service, vars=vars)
    assert efiboot.boot_next(vars) == 1
    assert state.load(service)["armed"]["uefi"]["bootorder_before"] == \
        armed["uefi"]["bootorder_before"]
    arming.disarm(service, vars=vars)
    assert vars.read("BootOrder", GUID) == order_before
    assert vars.read("BootNext", GUID) is None
    assert state.load(service)["armed"] is None
    # armed again: the same entry, not a second one, recorded once
    arming.arm(service, "uefi", vars=vars)
    assert efiboot.boot_next(vars) == 1
    assert len(efiboot.entries(vars)) == 2
    assert len(tail.read_record(service)["nvram"]) == 1


def test_uefi_refused_where_no_variables_are(tmp_path):
    disk = tmp_path / "disk.img"
    service = servicedisk.make(disk, "gpt")
    (tmp_path / "empty").mkdir()
    vars = Efivars(str(tmp_path / "empty"), firmware=str(tmp_path / "no"))
    was = digest(disk)
    with pytest.raises(TargetError, match="--firmware=bios"):
        arming.arm(service, "uefi", vars=vars)
    assert digest(disk) == was


def stale_copy(service):
    """The entry as it was made before the partition grew: its HD() node
    names a size 1 MiB smaller."""
    import dataclasses
    from diskimage.service import layout, loadoption
    old = dataclasses.replace(service, size=service.size - (1 << 20))
    return loadoption.build(efiboot.DESCRIPTION, old, layout.EFI_SHIM)


@pytest.mark.needs("mkfs.fat", "mcopy", "mmove")
def test_a_stale_entry_is_replaced_deleted_and_dropped_from_the_record(
        tmp_path):
    from diskimage.service import layout
    disk = tmp_path / "disk.img"
    service = servicedisk.make(disk, "gpt", fat=True)
    vars = efivars_dir(tmp_path, [0])
    order_before = vars.read("BootOrder", GUID)
    assert arming.arm(service, "uefi", vars=vars)["uefi"]["entry"] == \
        "Boot0001"
    vars.write("Boot0001", GUID, stale_copy(service))
    vars.delete("BootNext", GUID)           # the firmware used it up
    arming.rearm(service, vars=vars)
    assert vars.read("Boot0001", GUID) is None
    assert efiboot.entry_matches(vars, "Boot0002", service, layout.EFI_SHIM)
    assert efiboot.boot_next(vars) == 2
    assert efiboot.boot_order(vars) == [2, 0]
    assert state.load(service)["armed"]["uefi"]["entry"] == "Boot0002"
    assert [n["name"] for n in tail.read_record(service)["nvram"]] == \
        ["Boot0002"]
    arming.disarm(service, vars=vars)
    assert vars.read("BootOrder", GUID) == order_before
    assert vars.read("BootNext", GUID) is None


@pytest.mark.needs("mkfs.fat", "mcopy", "mmove")
def test_a_stale_entry_from_before_the_install_is_left_for_remove(tmp_path):
    """An entry the record keeps before-bytes of (it was there before the
    install, identical): a new one is made, the old one left as it is for
    `bwpart remove` to put back."""
    from diskimage.service import layout, loadoption
    disk = tmp_path / "disk.img"
    service = servicedisk.make(disk, "gpt", fat=True)
    vars = efivars_dir(tmp_path, [0])
    ours = loadoption.build(efiboot.DESCRIPTION, service, layout.EFI_SHIM)
    vars.write("Boot0001", GUID, ours)
    rec = tail.read_record(service)
    rec["nvram"] = [{"name": "Boot0001", "guid": GUID,
                     "before": base64.b64encode(ours).decode(),
                     "after_sha256": None}]
    tail.write_record(service, rec)
    assert arming.arm(service, "uefi", vars=vars)["uefi"]["entry"] == \
        "Boot0001"
    vars.write("Boot0001", GUID, stale_copy(service))
    arming.rearm(service, vars=vars)
    assert vars.read("Boot0001", GUID) == (7, stale_copy(service))
    assert efiboot.boot_next(vars) == 2
    assert [n["name"] for n in tail.read_record(service)["nvram"]] == \
        ["Boot0001", "Boot0002"]
