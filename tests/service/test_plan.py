"""The install plan (plan.plan_install): every check before any write, the
plan's lines and dict, the BIOS boot code judged by the firmware."""

import json
import subprocess

import pytest

from diskimage.errors import InputError, TargetError
from diskimage.service import layout, plan
from tests.service.installdisks import (MiB, make_bundle, make_disk,
                                        sha256)

pytestmark = pytest.mark.needs("sfdisk", "mkfs.fat", "mcopy")
MBR_BIN = "/usr/lib/syslinux/mbr/mbr.bin"


def _code(disk, path):
    subprocess.run(["dd", f"if={path}", f"of={disk}", "bs=440", "count=1",
                    "conv=notrunc"], check=True, capture_output=True)


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path / "bundle")


def test_gpt_plan_writes_nothing(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=300MiB\n")
    before = sha256(disk)
    p = plan.plan_install(str(disk), bundle, firmware="uefi",
                          efi_loader="grub")
    assert sha256(disk) == before
    d = json.loads(json.dumps(p.to_dict()))
    assert d["partition"] == {"number": 2, "start": 301 * MiB,
                              "size": layout.DEFAULT_SIZE,
                              "part_id": p.part_uuid,
                              "type": layout.GPT_TYPE}
    assert d["table"] == "gpt" and d["shrink"] is None
    assert d["firmware"] == "uefi" and d["efi_loader"] == "grub"
    assert "no BIOS boot code" in d["bios"]["unsupported"]
    assert d["bundle"]["version"] == "1.0"
    # both GPT copies, each inside an area the record keeps
    assert [w["offset"] for w in d["writes"]] == \
        [512, 1024, (1500 * MiB - 33 * 512), 1500 * MiB - 512]
    for at, data in p.writes:
        assert any(a["offset"] <= at and at + len(data) <= a["offset"] +
                   a["size"] for a in p.areas)
    text = "\n".join(p.lines())
    assert f"new: partition 2 at byte {301 * MiB}, 1.0 GiB" in text
    assert "BIOS unsupported: no BIOS boot code" in text


def test_bios_with_no_boot_code_refused(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "dos", "start=2048, "
                     "size=300MiB\n")
    before = sha256(disk)
    with pytest.raises(TargetError, match=f"^{disk}: BIOS: no BIOS boot "
                       f"code"):
        plan.plan_install(str(disk), bundle, firmware="bios")
    assert sha256(disk) == before


def test_bios_with_grub_code_refused(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "dos", "start=2048, "
                     "size=300MiB\n")
    with open(disk, "r+b") as f:
        f.write(b"\xeb\x63\x90" + bytes(0x180) + b"GRUB \0Geom\0Hard Disk")
    before = sha256(disk)
    with pytest.raises(TargetError, match="BIOS: BIOS boot code is GRUB's "
                       "boot.img"):
        plan.plan_install(str(disk), bundle, firmware="bios")
    assert sha256(disk) == before
    p = plan.plan_install(str(disk), bundle, firmware="uefi")
    assert "GRUB's boot.img" in p.bios["unsupported"]


@pytest.mark.needs("syslinux")
def test_bios_with_syslinux_mbr(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "dos", "start=2048, "
                     "size=300MiB\n")
    _code(disk, MBR_BIN)
    p = plan.plan_install(str(disk), bundle, size=512 * MiB,
                          firmware="bios")
    assert p.bios == {"code": "syslinux mbr.bin", "method": "active-flag"}
    assert p.part_id.endswith("-02") and len(p.part_id) == 11
    assert [at for at, _ in p.writes] == [0]
    assert "BIOS syslinux (boot code syslinux mbr.bin, active-flag)" in \
        "\n".join(p.lines())


def test_bad_options_and_bundle(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "gpt", "start=2048, "
                     "size=300MiB\n")
    with pytest.raises(InputError, match="--efi-loader=lilo"):
        plan.plan_install(str(disk), bundle, efi_loader="lilo")
    with pytest.raises(InputError, match="--firmware=coreboot"):
        plan.plan_install(str(disk), bundle, firmware="coreboot")
    (bundle / "initrd.img").write_bytes(b"changed")
    with pytest.raises(InputError, match="initrd.img has sha256"):
        plan.plan_install(str(disk), bundle, firmware="uefi")
    with pytest.raises(InputError, match="no bundle.json"):
        plan.plan_install(str(disk), tmp_path, firmware="uefi")


def test_mbr_without_disk_signature_refused(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1500, "dos", "start=2048, "
                     "size=300MiB\n")
    with open(disk, "r+b") as f:
        f.seek(440)
        f.write(bytes(4))
    with pytest.raises(TargetError, match="disk signature is 0"):
        plan.plan_install(str(disk), bundle, firmware="uefi")


def test_backup_gpt_not_at_the_end_refused(tmp_path, bundle):
    disk = make_disk(tmp_path / "d.img", 1000, "gpt", "start=2048, "
                     "size=300MiB\n")
    with open(disk, "r+b") as f:        # the disk grew; the backup stayed
        f.truncate(1500 * MiB)
    before = sha256(disk)
    with pytest.raises(TargetError, match="outside the table areas .* "
                       "sgdisk -e moves it"):
        plan.plan_install(str(disk), bundle, firmware="uefi")
    assert sha256(disk) == before
