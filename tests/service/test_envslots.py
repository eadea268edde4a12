"""envslots on a real FAT32 (mkfs.fat at an offset): slots written and
read back, the loader configs switched in the documented order, checked
with mtype/mdir/fsck.fat."""

import hashlib

import pytest

from diskimage.errors import InputError, TargetChangedError
from diskimage.service import bundle, envslots, fatfs
from tests.service.fatdisk import (TOOLS, fsck, make_bundle, make_disk,
                                   mdir_names, mtype)

pytestmark = pytest.mark.needs(*TOOLS, "mmove", "mdeltree")


@pytest.fixture
def setup(tmp_path):
    service = make_disk(str(tmp_path / "disk.img"))
    make_bundle(str(tmp_path / "b1"), version="1.0")
    make_bundle(str(tmp_path / "b2"), version="2.0")
    return service, bundle.load(str(tmp_path / "b1")), \
        bundle.load(str(tmp_path / "b2"))


def test_slot_switch_cleanup(setup, tmp_path):
    service, b1, b2 = setup
    with fatfs.open_fat(service) as fat:
        steps = []
        assert envslots.write_slot(fat, b1, steps.append) == "e1"
        assert steps == ["writing /bwpart/env/e1/vmlinuz",
                         "writing /bwpart/env/e1/initrd.img"]
        envslots.switch(fat, "e1", service, "shim")
        assert envslots.active(fat) == ("e1", b1.info)
        assert envslots.write_slot(fat, b2) == "e2"
        # Written, not switched: still e1, and e2 is kept only once named.
        assert envslots.active(fat)[0] == "e1"
        envslots.switch(fat, "e2", service, "shim")
        assert envslots.active(fat) == ("e2", b2.info)
        assert envslots.cleanup(fat) == ["e1"]
        assert envslots.slots(fat) == ["e2"]
    assert mdir_names(service, "/bwpart/env") == ["e2"]
    assert mdir_names(service, "/bwpart/env/e2") == [
        "bundle.json", "initrd.img", "vmlinuz"]
    with open(b2.initrd, "rb") as f:
        assert mtype(service, "/bwpart/env/e2/initrd.img") == f.read()
    line = (f"console=ttyS0,115200 panic=10 rd.bwpart={service.part_id} "
            f"rd.on_success=reboot rd.on_failure=reboot")
    cfg = mtype(service, "/syslinux/syslinux.cfg").decode()
    assert "DEFAULT service" in cfg and "PROMPT 0" in cfg and \
        "TIMEOUT 0" in cfg
    assert "LINUX /bwpart/env/e2/vmlinuz" in cfg
    assert "INITRD /bwpart/env/e2/initrd.img" in cfg
    assert f"APPEND {line}\n" in cfg
    assert mtype(service, "/syslinux.cfg").decode() == cfg
    grub = mtype(service, "/EFI/debian/grub.cfg").decode()
    assert f"linux /bwpart/env/e2/vmlinuz {line}\n" in grub
    assert "initrd /bwpart/env/e2/initrd.img" in grub
    assert mtype(service, "/EFI/rdeploy/grub.cfg").decode() == grub
    # No .new left, nothing in /EFI/BOOT.
    assert mdir_names(service, "/EFI") == ["debian", "rdeploy"]
    # (mmove writes a new 8.3 name upper case; FAT, syslinux and GRUB
    # compare names without case.)
    assert [n.lower() for n in mdir_names(service, "/syslinux")] == \
        ["syslinux.cfg"]
    assert fsck(service, str(tmp_path))[0] == 0


def test_active_reads_as_the_loaders(setup):
    """Every state a cut of switch() can leave still names a whole slot."""
    service, b1, b2 = setup
    with fatfs.open_fat(service) as fat:
        envslots.write_slot(fat, b1)
        envslots.switch(fat, "e1", service, "shim")
        envslots.write_slot(fat, b2)
        new = envslots.syslinux_cfg("e2", "x")
        # Steps 1-2 done for syslinux: primary old, fallback new -> old.
        fat.put(new, "/syslinux.cfg")
        assert envslots.active(fat)[0] == "e1"
        # Step 4 cut after the old entry went: primary absent -> fallback.
        fat.rm("/syslinux/syslinux.cfg")
        fat.put(new, "/syslinux/syslinux.cfg.new")
        assert envslots.active(fat)[0] == "e2"
        assert envslots.named_slots(fat) == {"e1", "e2"}
        assert envslots.cleanup(fat) == []


def test_switch_refuses_a_slot_not_whole(setup):
    service, b1, _ = setup
    with fatfs.open_fat(service) as fat:
        envslots.write_slot(fat, b1)
        fat.put(b"broken", "/bwpart/env/e1/initrd.img")
        with pytest.raises(InputError, match="not whole"):
            envslots.switch(fat, "e1", service, "shim")
        assert not fat.exists("/syslinux/syslinux.cfg")
        with pytest.raises(InputError, match="no loader config"):
            envslots.active(fat)


def test_read_back_checked(setup):
    service, b1, _ = setup
    with fatfs.open_fat(service) as fat:
        with pytest.raises(TargetChangedError, match="read back"):
            fat.put_checked(b"abc", "/x", hashlib.sha256(b"abd").hexdigest())
