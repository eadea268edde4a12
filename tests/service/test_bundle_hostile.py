"""A bundle from the network is input: files outside it, of the wrong
kind or size, names and fields that would reach a path or a loader
config, and a file swapped between bundle.load and the copy."""

import hashlib
import json
import os

import pytest

from diskimage.errors import InputError, TargetChangedError
from diskimage.service import bundle, envslots, fatfs, loaders, serviceboot
from diskimage.service.partition import Service
from tests.service.fatdisk import TOOLS, make_bundle, make_disk


def rewrite(directory, **fields):
    path = os.path.join(directory, "bundle.json")
    with open(path) as f:
        info = json.load(f)
    info.update(fields)
    with open(path, "w") as f:
        json.dump(info, f)
    return info


def relist(directory, name):
    """bundle.json's sha256 of *name* made what the file holds now."""
    with open(os.path.join(directory, name), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(directory, "bundle.json")) as f:
        files = json.load(f)["files"]
    rewrite(directory, files=dict(files, **{name: digest}))


def test_symlink_out_of_the_bundle(tmp_path):
    d = str(tmp_path / "b")
    make_bundle(d)
    outside = tmp_path / "secret"
    outside.write_bytes(b"not for the FAT")
    os.unlink(os.path.join(d, "initrd.img"))
    os.symlink(outside, os.path.join(d, "initrd.img"))
    relist(d, "initrd.img")
    with pytest.raises(InputError, match=r"initrd.img is a link to .*secret"
                       r", outside the bundle directory"):
        bundle.load(d)


def test_symlink_inside_is_a_file(tmp_path):
    d = str(tmp_path / "b")
    make_bundle(d)
    os.rename(os.path.join(d, "initrd.img"), os.path.join(d, "real.img"))
    os.symlink("real.img", os.path.join(d, "initrd.img"))
    assert bundle.load(d).initrd == os.path.join(d, "initrd.img")


def test_not_a_regular_file(tmp_path):
    d = str(tmp_path / "b")
    make_bundle(d)
    os.unlink(os.path.join(d, "initrd.img"))
    os.mkfifo(os.path.join(d, "initrd.img"))
    with pytest.raises(InputError, match="initrd.img is not a regular file"):
        bundle.load(d)


def test_kernel_too_big(tmp_path):
    d = str(tmp_path / "b")
    make_bundle(d)
    with open(os.path.join(d, "vmlinuz"), "r+b") as f:
        f.truncate(129 << 20)           # sparse: checked before its sha256
    with pytest.raises(InputError, match=r"vmlinuz is 135266304 bytes, more "
                       r"than the 134217728"):
        bundle.load(d)


def test_huge_bundle_json(tmp_path):
    d = str(tmp_path / "b")
    make_bundle(d)
    with open(os.path.join(d, "bundle.json"), "w") as f:
        f.write("[" * 300000)
    with pytest.raises(InputError, match="not readable JSON"):
        bundle.load(d)


@pytest.mark.parametrize("fields, said", [
    ({"cmdline": "quiet\n  linux /evil"}, r"field cmdline .* is not of the "
     r"form"),
    ({"cmdline": "quiet; insmod evil"}, "field cmdline"),
    ({"cmdline": "x=$root"}, "field cmdline"),
    ({"id": "../../EFI/BOOT"}, "id '../../EFI/BOOT' is not a name"),
    ({"id": "a b"}, r"field id 'a b' is not of the form"),
    ({"version": "v" * 1000}, r"field version is 1000 characters long"),
    ({"files": {"vmlinuz": "x", "initrd.img": "y"}}, r"field files.vmlinuz "
     r"'x' is not of the form"),
])
def test_fields(tmp_path, fields, said):
    d = str(tmp_path / "b")
    make_bundle(d)
    rewrite(d, **fields)
    with pytest.raises(InputError, match=said):
        bundle.load(d)


@pytest.mark.parametrize("name", ["../x", "..", "sub/x", ".hidden"])
def test_file_names(tmp_path, name):
    d = str(tmp_path / "b")
    info = make_bundle(d)
    rewrite(d, files=dict(info["files"], **{name: "0" * 64}))
    with pytest.raises(InputError, match="bad file name|field files"):
        bundle.load(d)


@pytest.mark.needs(*TOOLS, "mmove", "mdeltree")
def test_file_swapped_after_load(tmp_path):
    """Checked while copied: what reads back from the FAT must be what
    bundle.json listed, not what the file holds at copy time."""
    service = make_disk(str(tmp_path / "disk.img"))
    d = str(tmp_path / "b")
    efi = os.urandom(4096)
    make_bundle(d, extra={"shimx64.efi": efi, "grubx64.efi": efi,
                          "mmx64.efi": efi})
    b = bundle.load(d)
    for name in ("initrd.img", "grubx64.efi"):
        with open(os.path.join(d, name), "r+b") as f:
            f.write(b"swapped")
    with open(os.path.join(d, "bundle.json"), "a") as f:
        f.write(" ")                    # what is copied is what was read
    assert b"swapped" not in b.info_bytes()
    with fatfs.open_fat(service) as fat:
        with pytest.raises(TargetChangedError, match="initrd.img read back"):
            envslots.write_slot(fat, b)
        with pytest.raises(TargetChangedError, match="grubx64.efi read back"):
            loaders.install_efi(fat, b, "shim")


def test_part_id_on_the_command_line_is_checked():
    bad = Service("/dev/null", 2, 1 << 20, 256 << 20, "gpt",
                  "0b2c4c55 rd.job=x", 512)
    with pytest.raises(InputError, match=r"part id .* is not of the form"):
        envslots.cmdline("quiet", bad)
    good = Service("/dev/null", 2, 1 << 20, 256 << 20, "mbr", "0badcafe-02",
                   512)
    assert "rd.bwpart=0badcafe-02 " in envslots.cmdline("quiet", good)
    with pytest.raises(InputError, match="rd.bwpart: part id"):
        serviceboot.run("x; sh", disk="/dev/null")
