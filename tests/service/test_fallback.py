"""Both state slots damaged while armed: the service boot throws the switch
back from the install record (fallback.py), writes a fresh state saying
"state damaged" and returns non-zero, so the machine boots production.

BIOS on disks made by sfdisk with syslinux's boot code and a record made
as install makes it (ondisk_helpers.install_by_hand: snapshot before the
partition is added, sealed after); the table compared byte for byte with
the one the install left, and read with sfdisk --json.  UEFI on a
directory laid out as efivarfs."""

import struct

import pytest

from diskimage.service import bootnext, efiboot, serviceboot, state, tail
from diskimage.service.efivars import Efivars
from tests.service import ondisk_helpers, servicedisk

pytestmark = pytest.mark.needs("sfdisk", "mkfs.fat", "mcopy", "mmove", "sh")

MiB = 1 << 20
GUID = efiboot.EFI_GLOBAL_VARIABLE


def no_uefi(tmp_path):
    (tmp_path / "novars").mkdir()
    return Efivars(str(tmp_path / "novars"), firmware=str(tmp_path / "no"))


def damage_both_slots(service):
    with open(service.disk, "r+b") as f:
        for _, at in tail.SLOTS:
            f.seek(service.tail_offset + at)
            f.write(b"\xa5" * 64)


def job(tmp_path, text="exit 0\n"):
    path = tmp_path / "job.sh"
    path.write_text(text)
    return str(path)


def bootable(path):
    """{number: (MBR bootable flag, or GPT attrs string)} by sfdisk."""
    return {n: p.get("bootable", p.get("attrs"))
            for n, p in servicedisk.parts(path).items()}


def installed(tmp_path, kind):
    path = ondisk_helpers.production(tmp_path / "disk.img", kind,
                                     size=400 * MiB, p1=64 * MiB,
                                     ext4=False, boot_code=True)
    if kind == "gpt":
        ondisk_helpers.sh("sfdisk", "--part-attrs", path, "1",
                          "LegacyBIOSBootable")
    return path, ondisk_helpers.install_by_hand(path, size=256 * MiB)


@pytest.mark.parametrize("kind", ["mbr", "gpt"])
def test_bios_damaged_state_disarms_from_the_record(tmp_path, kind):
    path, service = installed(tmp_path, kind)
    as_installed = servicedisk.table_bytes(path)
    flags_installed = bootable(path)
    bootnext.boot_next(path, job(tmp_path), tries=3, firmware="bios")
    assert bootable(path) != flags_installed          # armed
    damage_both_slots(service)
    vars = no_uefi(tmp_path)
    steps = []
    code = serviceboot.run(service.part_id, disk=path, mount=False,
                           vars=vars, progress=steps.append)
    assert code != 0
    assert servicedisk.table_bytes(path) == as_installed
    assert bootable(path) == flags_installed
    st = state.load(service)
    assert st["job"] is None and st["armed"] is None
    assert st["last"]["result"] == "state damaged"
    assert "service state slot A" in st["last"]["error"]
    assert any("disarming from the install record" in s for s in steps)
    # the next boot (production's, but chosen by hand) has nothing to do
    assert serviceboot.run(service.part_id, disk=path, mount=False,
                           vars=vars) == 0
    assert servicedisk.table_bytes(path) == as_installed


def test_bios_damaged_state_when_not_armed_writes_no_flag(tmp_path):
    path, service = installed(tmp_path, "mbr")
    as_installed = servicedisk.table_bytes(path)
    damage_both_slots(service)
    assert serviceboot.run(service.part_id, disk=path, mount=False,
                           vars=no_uefi(tmp_path)) == 1
    assert servicedisk.table_bytes(path) == as_installed
    assert state.load(service)["last"]["result"] == "state damaged"


def test_uefi_damaged_state_takes_our_entry_out_of_bootorder(tmp_path):
    disk = tmp_path / "disk.img"
    service = servicedisk.make(disk, "gpt", fat=True)
    root = tmp_path / "efivars"
    root.mkdir()
    vars = Efivars(str(root), firmware=str(tmp_path))
    vars.write("Boot0000", GUID, b"the firmware's own entry")
    vars.write("BootOrder", GUID, struct.pack("<2H", 0, 5))
    order_before = vars.read("BootOrder", GUID)
    summary = bootnext.boot_next(str(disk), job(tmp_path), tries=2,
                                 firmware="uefi", vars=vars)
    entry = summary["armed"]["uefi"]["entry"]
    assert efiboot.boot_next(vars) == efiboot.entry_number(entry)
    table = servicedisk.table_bytes(disk)
    damage_both_slots(service)
    assert serviceboot.run(service.part_id, disk=str(disk), mount=False,
                           vars=vars) == 1
    assert vars.read("BootOrder", GUID) == order_before
    assert vars.read("BootNext", GUID) is None
    assert vars.read(entry, GUID) is not None     # for `bwpart remove`
    assert servicedisk.table_bytes(disk) == table
    st = state.load(service)
    assert st["last"]["result"] == "state damaged" and st["armed"] is None


def test_damaged_after_the_job_disarms_too(tmp_path):
    """A job that leaves both slots damaged (it wrote over the tail):
    the result cannot be kept, the switch is thrown back all the same."""
    path, service = installed(tmp_path, "mbr")
    as_installed = servicedisk.table_bytes(path)
    slots = " ".join(str((service.tail_offset + at) // 512)
                     for _, at in tail.SLOTS)
    text = (f"for s in {slots}; do printf 'XXXXXXXXXXXXXXXX' | dd "
            f"of={path} bs=512 seek=$s conv=notrunc 2>/dev/null; done\n"
            f"exit 0\n")
    bootnext.boot_next(path, job(tmp_path, text), tries=3, firmware="bios")
    assert serviceboot.run(service.part_id, disk=path, mount=False,
                           vars=no_uefi(tmp_path)) == 1
    assert servicedisk.table_bytes(path) == as_installed
    assert state.load(service)["last"]["result"] == "state damaged"


def test_bios_forged_state_with_a_valid_crc_disarms_from_the_record(
        tmp_path):
    """A state slot whose crc is right but whose fields are not (a sector
    number past the table in flags_before) is damage like a torn one: the
    record's switch is thrown back, never the forged one."""
    path, service = installed(tmp_path, "mbr")
    as_installed = servicedisk.table_bytes(path)
    bootnext.boot_next(path, job(tmp_path), tries=3, firmware="bios")
    st = state.load(service)
    st["armed"]["bios"]["flags_before"] = {"100": 0}
    tail.write_state(service, st)
    code = serviceboot.run(service.part_id, disk=path, mount=False,
                           vars=no_uefi(tmp_path))
    assert code != 0
    assert servicedisk.table_bytes(path) == as_installed
    assert state.load(service)["last"]["result"] == "state damaged"
