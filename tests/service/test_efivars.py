"""efivarfs's file format and the immutable flag, on a plain directory (the
real efivarfs is tested under OVMF: test_efiboot_boot.py)."""

import os
import struct
import subprocess

import pytest

from diskimage.errors import InputError
from diskimage.service import efivars

GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "efivars"
    root.mkdir()
    return efivars.Efivars(str(root), firmware=str(tmp_path / "no-efi"))


def test_file_is_attributes_then_data(store):
    store.write("BootNext", GUID, b"\x07\x00")
    raw = open(os.path.join(store.root, f"BootNext-{GUID}"), "rb").read()
    assert raw == struct.pack("<I", 7) + b"\x07\x00"
    assert store.read("BootNext", GUID) == (7, b"\x07\x00")
    assert store.read("BootOrder", GUID) is None
    assert store.names(GUID) == [("BootNext", GUID)]
    assert store.names("00000000-0000-0000-0000-000000000000") == []


def test_overwrite_with_less_data_leaves_no_old_tail(store):
    store.write("Boot0001", GUID, b"a" * 100, attrs=3)
    store.write("Boot0001", GUID, b"b" * 10)
    assert store.read("Boot0001", GUID) == (7, b"b" * 10)


@pytest.mark.needs("chattr", root=True)
def test_delete_and_overwrite_clear_the_immutable_flag(store):
    store.write("Boot0002", GUID, b"one")
    path = os.path.join(store.root, f"Boot0002-{GUID}")
    subprocess.run(["chattr", "+i", path], check=True)
    with pytest.raises(PermissionError):
        open(path, "wb")
    store.write("Boot0002", GUID, b"two")
    assert store.read("Boot0002", GUID) == (7, b"two")
    subprocess.run(["chattr", "+i", path], check=True)
    assert store.delete("Boot0002", GUID) is True
    assert not os.path.exists(path)
    assert store.delete("Boot0002", GUID) is False


def test_names_are_checked(store):
    for name, guid in [("a/b", GUID), ("x", "not-a-guid"), ("", GUID),
                       ("Boot-1", GUID)]:
        with pytest.raises(InputError, match="not a UEFI variable name"):
            store.read(name, guid)
    # an upper-case GUID is the same variable
    store.write("Timeout", GUID.upper(), b"\x05\x00")
    assert store.read("Timeout", GUID) == (7, b"\x05\x00")


def test_short_file_is_refused(store):
    open(os.path.join(store.root, f"Bad-{GUID}"), "wb").write(b"\1\0")
    with pytest.raises(InputError, match=f"Bad-{GUID}: 2 bytes"):
        store.read("Bad", GUID)


def test_available_only_with_variables_or_firmware(store, tmp_path):
    assert store.available() is False         # empty, not a UEFI machine
    with pytest.raises(InputError, match="not a UEFI machine"):
        store.mount()
    store.write("Timeout", GUID, b"\x05\x00")
    assert store.available() is True


def test_only_an_empty_sysfs_directory_is_taken_for_unmounted(tmp_path):
    """An efivarfs not mounted yet must not read as "no variables" (a new
    entry would take Boot0000 over the firmware's own): the empty sysfs
    directory is mounted before any use; a plain directory never is (the
    real mount is tested under OVMF, tests/bwpart/test_boot_capture.py)."""
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "sysfs /sys sysfs rw,nosuid 0 0\n"
        "efivarfs /sys/firmware/efi/efivars efivarfs rw 0 0\n"
        "/dev/vda / ext4 rw 0 0\n"
        "tmpfs /run/my\\040dir tmpfs rw 0 0\n")
    of = efivars.filesystem_of
    assert of("/sys/firmware/efi/efivars", str(mounts)) == "efivarfs"
    assert of("/sys/firmware/efi", str(mounts)) == "sysfs"
    assert of("/sysx", str(mounts)) == "ext4"
    assert of("/run/my dir/x", str(mounts)) == "tmpfs"
    assert of("/sys/kernel") == "sysfs"              # this machine's table
    assert of(str(tmp_path)) != "sysfs"
    # a plain empty directory with "firmware" beside it is written as is
    firmware = tmp_path / "efi"
    firmware.mkdir()
    root = tmp_path / "efivars"
    root.mkdir()
    store = efivars.Efivars(str(root), firmware=str(firmware))
    assert store.available() is False
    store.write("BootNext", GUID, b"\0\0")
    assert store.available() is True
