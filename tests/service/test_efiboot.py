"""The Boot#### entry, BootOrder and BootNext on a directory laid out as
efivarfs and filled with the variables OVMF made (the committed store of
tests/service/data); the real firmware is in test_efiboot_boot.py."""

import base64
import gzip
import os
import struct
import types
from pathlib import Path

import pytest

from diskimage.service import efiboot, efivars, loadoption
from tests import ovmfvars

DATA = Path(__file__).parent / "data"
GUID = efiboot.EFI_GLOBAL_VARIABLE
LOADER = "/EFI/rdeploy/shimx64.efi"
SERVICE = types.SimpleNamespace(
    disk="disk.img", number=3, start=1 << 30, size=1 << 30,
    table_kind="gpt", part_id="6a1bd6c1-8ef4-4fc6-9d2a-0f4d6a3b5e11")


@pytest.fixture
def ovmf(tmp_path):
    """An efivarfs-like directory holding OVMF's variables; BootOrder
    [0, 1, 2, 3]."""
    root = tmp_path / "efivars"
    root.mkdir()
    store = efivars.Efivars(str(root), firmware=str(tmp_path / "none"))
    vars_fd = gzip.decompress((DATA / "ovmf-vars-shell.fd.gz").read_bytes())
    for (name, guid), (attrs, data) in ovmfvars.variables(vars_fd).items():
        store.write(name, guid, data, attrs)
    return store


def _files(store):
    return {name: open(Path(store.root) / name, "rb").read()
            for name in sorted(os.listdir(store.root))}


def test_new_entry_takes_the_lowest_free_number(ovmf):
    assert efiboot.boot_order(ovmf) == [0, 1, 2, 3]
    name = efiboot.ensure_entry(ovmf, SERVICE, LOADER)
    assert name == "Boot0004"
    attrs, data = ovmf.read(name, GUID)
    assert attrs == 7
    parsed = loadoption.parse(data)
    assert parsed["description"] == "rdeploy service"
    assert parsed["hd"]["signature"] == SERVICE.part_id
    assert parsed["hd"]["start"] == (1 << 30) // 512
    # the same entry again: reused, nothing written
    before = _files(ovmf)
    assert efiboot.ensure_entry(ovmf, SERVICE, LOADER) == "Boot0004"
    assert _files(ovmf) == before
    # a gap is filled first
    ovmf.delete("Boot0001", GUID)
    assert efiboot.ensure_entry(ovmf, SERVICE, "/EFI/rdeploy/grubx64.efi") \
        == "Boot0001"


def test_a_grown_partition_needs_a_new_entry(ovmf):
    name = efiboot.ensure_entry(ovmf, SERVICE, LOADER)
    assert efiboot.entry_matches(ovmf, name, SERVICE, LOADER)
    grown = types.SimpleNamespace(**{**vars(SERVICE), "size": 2 << 30})
    assert not efiboot.entry_matches(ovmf, name, grown, LOADER)
    assert not efiboot.entry_matches(ovmf, "Boot0009", SERVICE, LOADER)
    assert efiboot.ensure_entry(ovmf, grown, LOADER) == "Boot0005"


def test_arm_then_disarm_puts_every_byte_back(ovmf):
    name = efiboot.ensure_entry(ovmf, SERVICE, LOADER)
    before = _files(ovmf)
    saved = efiboot.arm(ovmf, name)
    assert efiboot.boot_order(ovmf) == [4, 0, 1, 2, 3]
    assert ovmf.read("BootNext", GUID) == (7, struct.pack("<H", 4))
    assert saved == {"entry": "Boot0004",
                     "bootorder_before": base64.b64encode(
                         struct.pack("<4H", 0, 1, 2, 3)).decode(),
                     "bootorder_attrs": 7}
    # a re-arm (the firmware used BootNext up) keeps the first saved
    ovmf.delete("BootNext", GUID)
    again = efiboot.arm(ovmf, name, saved)
    assert again == saved and efiboot.boot_next(ovmf) == 4
    assert efiboot.boot_order(ovmf) == [4, 0, 1, 2, 3]
    assert efiboot.disarm(ovmf, saved) == ["BootNext", "BootOrder"]
    assert _files(ovmf) == before


def test_disarm_leaves_a_boot_next_that_is_not_ours(ovmf):
    name = efiboot.ensure_entry(ovmf, SERVICE, LOADER)
    saved = efiboot.arm(ovmf, name)
    ovmf.write("BootNext", GUID, struct.pack("<H", 2))
    assert efiboot.disarm(ovmf, saved) == ["BootOrder"]
    assert efiboot.boot_next(ovmf) == 2


def test_without_boot_order_disarm_deletes_it(tmp_path):
    store = efivars.Efivars(str(tmp_path), firmware=str(tmp_path / "none"))
    name = efiboot.ensure_entry(store, SERVICE, LOADER)
    assert name == "Boot0000"
    saved = efiboot.arm(store, name)
    assert saved["bootorder_before"] is None
    assert efiboot.boot_order(store) == [0]
    efiboot.disarm(store, saved)
    assert store.read("BootOrder", GUID) is None
    assert store.read("BootNext", GUID) is None
    assert efiboot.delete_entry(store, name) == ["Boot0000"]
    assert store.names() == []


def test_delete_entry_takes_it_out_of_boot_order_and_next(ovmf):
    before = _files(ovmf)
    name = efiboot.ensure_entry(ovmf, SERVICE, LOADER)
    efiboot.arm(ovmf, name)
    assert efiboot.delete_entry(ovmf, name) == ["Boot0004", "BootOrder",
                                                "BootNext"]
    assert _files(ovmf) == before


def test_names_are_checked():
    with pytest.raises(Exception, match="not a Boot#### variable"):
        efiboot.entry_number("Boot00x1")
    assert efiboot.entry_name(0xAB) == "Boot00AB"
