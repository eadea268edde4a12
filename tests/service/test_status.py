"""bwpart status's dict on real disk files: not installed; installed with
an environment slot, a pending job, armed for BIOS; what remove would
restore, and a table changed since."""

import hashlib
import json

import pytest

from diskimage.service import arming, bundle, envslots, fatfs, state, status
from tests.service.ondisk_helpers import install_by_hand, production, sh

pytestmark = pytest.mark.needs("sfdisk", "sgdisk", "mkfs.fat", "mcopy",
                               root=True)


def make_bundle(directory, version):
    directory.mkdir()
    files = {}
    kernel = bytearray(4096)                # enough of a bzImage header
    kernel[0x202:0x206] = b"HdrS"
    for name, data in (("vmlinuz", bytes(kernel)),
                       ("initrd.img", b"initrd")):
        (directory / name).write_bytes(data)
        files[name] = hashlib.sha256(data).hexdigest()
    info = {"format": 1, "version": version, "id": f"test-{version}",
            "built": "2026-12-01T00:00:00+00:00", "kernel_release": "6.1",
            "cmdline": "console=ttyS0", "files": files,
            "secure_boot": False}
    (directory / "bundle.json").write_text(json.dumps(info))
    return bundle.load(str(directory))


def test_not_installed(tmp_path):
    disk = production(tmp_path / "disk.img", "gpt", ext4=False)
    got = status.status(disk)
    assert got["installed"] is False and got["partition"] is None
    assert got["remove"] is None


def test_installed(tmp_path):
    disk = production(tmp_path / "disk.img", "gpt", ext4=False,
                      boot_code=True)
    service = install_by_hand(disk)
    with fatfs.open_fat(service) as fat:
        slot = envslots.write_slot(fat, make_bundle(tmp_path / "b", "7.1"))
        envslots.switch(fat, slot, service, "grub")
    st = state.load(service)
    state.set_job(st, state.new_job("capture.sh", "true\n", tries=3),
                  service)
    state.count_try(st, service)
    arming.arm(service, "bios")
    got = status.status(disk)
    assert got["installed"] is True, got["notes"]
    assert got["partition"]["number"] == service.number
    assert got["partition"]["part_id"] == service.part_id
    assert got["size"] == service.size
    assert got["env"] == {"slot": slot, "version": "7.1", "id": "test-7.1",
                          "built": "2026-12-01T00:00:00+00:00",
                          "loaders": {"bios": slot, "uefi": slot},
                          "leftovers": {"slots": [], "new": []}}
    assert 0 < got["free"] < service.size
    assert got["store"] == []
    assert got["job"]["name"] == "capture.sh"
    assert (got["job"]["tries"], got["job"]["used"], got["job"]["left"]) \
        == (3, 1, 2)
    assert got["armed"]["firmware"] == "bios"
    assert got["last"] is None
    view = got["remove"]
    assert [a["what"] for a in view["areas"]] == \
        ["lba0", "gpt-primary", "gpt-backup"]
    assert {a["state"] for a in view["areas"]} == {"installed"}
    assert view["can_remove"] is True
    assert got["notes"] == []
    assert got["restore"][1] == \
        "gpt-primary (bytes 512 to 17408): put back as before install"
    # a change of someone else's: remove would refuse
    sh("sgdisk", "-c", "1:renamed", disk)
    view = status.status(disk)["remove"]
    assert view["can_remove"] is False
    assert [a["state"] for a in view["areas"]] == \
        ["installed", "changed", "changed"]


def test_an_update_cut_short_is_shown(tmp_path):
    """What an interrupted update leaves (trial 15 finding 6): the loaders
    on different slots, a slot no config names, a config's .new; each in
    env and in one note, which says the next update cleans them up."""
    disk = production(tmp_path / "disk.img", "gpt", ext4=False,
                      boot_code=True)
    service = install_by_hand(disk)
    with fatfs.open_fat(service) as fat:
        one = envslots.write_slot(fat, make_bundle(tmp_path / "b1", "1.0"))
        envslots.switch(fat, one, service, "grub")
        two = envslots.write_slot(fat, make_bundle(tmp_path / "b2", "2.0"))
    got = status.status(disk)
    assert got["env"]["leftovers"] == {"slots": [two], "new": []}
    assert got["notes"] == [f"left over: slot {two} (no config names it); "
                            f"the next bwpart update cleans them up"]
    with fatfs.open_fat(service) as fat:    # cut between the loader pairs
        line = envslots.cmdline("console=ttyS0", service)
        for path in envslots.PAIRS["bios"]:
            fat.put(envslots.syslinux_cfg(two, line), path)
        fat.put(b"half", envslots.SYSLINUX_FALLBACK + ".new")
    got = status.status(disk)
    assert got["env"]["loaders"] == {"bios": two, "uefi": one}
    assert got["env"]["leftovers"] == \
        {"slots": [], "new": ["/syslinux.cfg.new"]}
    assert got["notes"] == [
        f"BIOS boots slot {two}, UEFI slot {one} (an update was cut between "
        f"the loaders); left over: /syslinux.cfg.new; the next bwpart "
        f"update cleans them up"]


def test_tail_magic_gone_repaired_from_the_fat_and_said(tmp_path):
    disk = production(tmp_path / "disk.img", "gpt", ext4=False)
    service = install_by_hand(disk)
    with open(disk, "r+b") as f:
        f.seek(service.tail_offset)
        f.write(b"X")
    got = status.status(disk)
    assert got["installed"] is True
    assert got["notes"][0] == (
        f"partition {service.number}: no service record (tail copy) at "
        f"byte {service.tail_offset}: written back from "
        f"/bwpart/install.json (whole)")
    with open(disk, "rb") as f:
        f.seek(service.tail_offset)
        assert f.read(8) == b"RDSVCREC"


def _armed_then_both_slots_damaged(disk):
    service = install_by_hand(disk)
    st = state.load(service)
    state.set_job(st, state.new_job("capture.sh", "true\n", tries=3),
                  service)
    arming.arm(service, "bios")
    with open(disk, "r+b") as f:
        for slot in (512 << 10, 768 << 10):
            f.seek(service.tail_offset + slot + 40)
            f.write(b"XXXX")
    return service


@pytest.mark.parametrize("kind", ["mbr", "gpt"])
def test_both_state_slots_damaged_said_with_the_record_s_arming(tmp_path,
                                                                kind):
    disk = production(tmp_path / "disk.img", kind, ext4=False,
                      boot_code=True)
    service = _armed_then_both_slots_damaged(disk)
    got = status.status(disk)
    assert "slot A" in got["state_damaged"] and \
        "slot B" in got["state_damaged"]
    assert got["armed"]["firmware"] == "bios" and \
        got["armed"]["from_record"] is True
    assert any(n.startswith("state damaged: ") and
               "the install record says armed: bios: " in n and
               f"is on partition {service.number}" in n
               for n in got["notes"])
    # the flag arming set is our own change, not a foreign one
    assert got["remove"]["can_remove"] is True
