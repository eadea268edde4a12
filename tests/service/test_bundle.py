"""bundle.load: a bundle made by hand as bootdisk writes it, and each way
one is refused."""

import json
import os

import pytest

from diskimage.errors import InputError
from diskimage.service import bundle
from tests.service.fatdisk import make_bundle


def test_load(tmp_path):
    info = make_bundle(str(tmp_path / "b"), version="2.5")
    b = bundle.load(str(tmp_path / "b"))
    assert b.version == "2.5" and b.info == info
    assert b.kernel == str(tmp_path / "b" / "vmlinuz")
    assert b.initrd == str(tmp_path / "b" / "initrd.img")
    assert b.efi_file("shimx64.efi") is None
    assert json.loads(b.info_bytes()) == info


def test_no_bundle_json(tmp_path):
    make_bundle(str(tmp_path / "b"))
    os.unlink(tmp_path / "b" / "bundle.json")
    with pytest.raises(InputError, match="no bundle.json"):
        bundle.load(str(tmp_path / "b"))
    with pytest.raises(InputError, match="no such directory"):
        bundle.load(str(tmp_path / "none"))


def test_changed_file_refused(tmp_path):
    make_bundle(str(tmp_path / "b"))
    with open(tmp_path / "b" / "initrd.img", "r+b") as f:
        f.write(b"X")
    with pytest.raises(InputError, match="initrd.img has sha256"):
        bundle.load(str(tmp_path / "b"))


def test_missing_listed_file(tmp_path):
    make_bundle(str(tmp_path / "b"), extra={"shimx64.efi": b"MZ"})
    os.unlink(tmp_path / "b" / "shimx64.efi")
    with pytest.raises(InputError, match="shimx64.efi is listed"):
        bundle.load(str(tmp_path / "b"))


@pytest.mark.parametrize("change, message", [
    ({"format": 2}, "format 2"),
    ({"cmdline": None}, "'cmdline' is not a str"),
    ({"secure_boot": "yes"}, "'secure_boot' is not a bool"),
    ({"files": {}}, "does not list vmlinuz"),
    ({"id": "a/b"}, "is not a name"),
])
def test_bad_fields(tmp_path, change, message):
    info = make_bundle(str(tmp_path / "b"))
    info.update(change)
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match=message):
        bundle.load(str(tmp_path / "b"))


def test_not_a_kernel(tmp_path):
    import hashlib
    info = make_bundle(str(tmp_path / "b"))
    (tmp_path / "b" / "vmlinuz").write_bytes(b"\0" * 4096)
    info["files"]["vmlinuz"] = hashlib.sha256(b"\0" * 4096).hexdigest()
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="not a Linux kernel"):
        bundle.load(str(tmp_path / "b"))
