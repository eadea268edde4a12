"""tests/ovmfvars.py on OVMF's own store (the committed one of
tests/service/data, made by a boot), and its states and checks."""

import gzip
import struct
from pathlib import Path

import pytest

from tests import ovmfvars

DATA = Path(__file__).parent / "data"


@pytest.fixture
def store():
    return bytearray(gzip.decompress(
        (DATA / "ovmf-vars-shell.fd.gz").read_bytes()))


def test_boot_variables_of_a_booted_store(store):
    entries = ovmfvars.boot_entries(bytes(store))
    assert entries["BootOrder"] == [0, 1, 2, 3]
    assert entries["BootNext"] is None
    assert sorted(k for k in entries if k.startswith("Boot0")) == \
        ["Boot0000", "Boot0001", "Boot0002", "Boot0003"]
    live = ovmfvars.variables(bytes(store))
    attrs, data = live[("BootOrder", ovmfvars.EFI_GLOBAL_VARIABLE)]
    assert attrs == 7 and data == struct.pack("<4H", 0, 1, 2, 3)
    # a write leaves the old copy behind, marked deleted
    states = {r["state"] for r in ovmfvars.records(bytes(store))}
    assert states == {ovmfvars.VAR_ADDED, 0x3C}


def test_pristine_store_has_no_variables():
    pristine = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
    assert pristine.exists(), "needs ovmf (Debian package ovmf; make deps)"
    assert ovmfvars.variables(pristine) == {}


def _boot_order_record(store):
    return [r for r in ovmfvars.records(bytes(store))
            if r["name"] == "BootOrder" and r["state"] == ovmfvars.VAR_ADDED][0]


def test_deleted_and_in_transition_states(store):
    rec = _boot_order_record(store)
    key = ("BootOrder", ovmfvars.EFI_GLOBAL_VARIABLE)
    store[rec["offset"] + 2] = 0x3E          # a write cut short: still live
    assert key in ovmfvars.variables(bytes(store))
    store[rec["offset"] + 2] = 0x3C          # deleted
    assert key not in ovmfvars.variables(bytes(store))
    store[rec["offset"] + 2] = 0x7F          # header only: not live
    assert key not in ovmfvars.variables(bytes(store))


@pytest.mark.parametrize("offset, byte, words", [
    (40, ord("X"), "no _FVH"),
    (16, 0, "not EFI_SYSTEM_NV_DATA_FV"),
    (50, 0, "checksum"),
    (0x48, 0, "signature"),
    (0x48 + 20, 0, "not formatted"),
])
def test_damaged_headers_are_refused(store, offset, byte, words):
    store[offset] ^= 0xFF if byte == 0 else 0
    if byte:
        store[offset] = byte
    with pytest.raises(ovmfvars.VarsError, match=words):
        ovmfvars.variables(bytes(store))


def test_size_past_the_store_is_refused(store):
    rec = _boot_order_record(store)
    struct.pack_into("<I", store, rec["offset"] + 40, 1 << 24)
    with pytest.raises(ovmfvars.VarsError, match="run past the store"):
        ovmfvars.variables(bytes(store))
