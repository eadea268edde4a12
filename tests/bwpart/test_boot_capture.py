"""bwpart on a machine that boots by itself (a "production" disk, see
tests/bwpart/production.py), booted in QEMU (TCG): install from the host,
boot-next with a job that captures the production partition into the local
store; the first boot runs the job in the service environment, the second
is production again; the store holds the image (`bwpart store ls`, and
`rdeploy verify` of the file copied out by mcopy); then remove puts the
table, the boot code and the NVRAM entries back as they were before the
install, compared byte for byte.

BIOS (MBR: the active flag; GPT: gptmbr.bin and the legacy BIOS bootable
attribute): boot-next and remove run on the host (--firmware=bios), 2
boots each.  UEFI (GPT and MBR): boot-next and remove must run on the
machine (its NVRAM): the control disk's run.sh does it, 4 boots each (one
before the install, so that OVMF has made its own boot options).
"""

import pytest

from tests.bwpart import production as prod
from tests.bwpart.production import (CAPTURE_JOB, JOB_DONE, RUN_DONE,
                                     SERVICE_SIZE, Bases, Machine, bwpart,
                                     cmp_outside, copy_out_of_store,
                                     is_production, rdeploy, service_area,
                                     service_ran)
from tests.bootdisk_helpers import need_qemu, toolkit
from tests.shared import copy

MiB = 1 << 20
pytestmark = [pytest.mark.boot,
              pytest.mark.needs("qemu-system-x86_64", "sfdisk", "sgdisk",
                                "mkfs.fat", "mcopy", "syslinux", "cmp")]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    need_qemu()
    toolkit()
    return Bases(tmp_path_factory)


def store_holds_prod(disk, tmp_path):
    """`bwpart store ls` names prod; the image copied out verifies."""
    listing = bwpart("store", "ls", disk).stdout
    assert "prod" in listing, listing
    first = copy_out_of_store(disk, "prod.rdi", tmp_path / "out")
    rdeploy("verify", first, "--quiet")


@pytest.mark.parametrize("table", ["mbr", "gpt"])
def test_bios_job_captures_into_the_store_then_production_and_remove(
        bases, tmp_path, table):
    disk = bases.disk(table, tmp_path / "disk.img")
    before = copy(disk, tmp_path / "before.img")
    bundle = bases.bundle("ENV-ONE")
    bwpart("install", disk, f"--env={bundle}", f"--size={SERVICE_SIZE}",
           "--firmware=bios", "--yes")
    job = tmp_path / "capture.sh"
    job.write_text(CAPTURE_JOB)
    bwpart("boot-next", disk, f"--job={job}", "--firmware=bios")
    machine = Machine(tmp_path, disk, "bios")

    first = machine.boot()
    assert service_ran(first) and JOB_DONE in first, machine.log()
    second = machine.boot()
    assert is_production(second), machine.log()

    store_holds_prod(disk, tmp_path)
    start, size = service_area(disk)
    bwpart("remove", disk, "--yes")
    # Everything but the service partition's middle (its first and last MiB
    # are zeroed by remove) is as before the install: table, boot code,
    # the production partition.
    assert cmp_outside(before, disk, (start + MiB, start + size - MiB)) == []
    assert _same_table(before, disk)


def _same_table(before, after):
    a, b = prod.partitions(before), prod.partitions(after)
    for table in (a, b):
        table.pop("device")
        for part in table["partitions"]:
            part.pop("node")
    return a == b


@pytest.mark.parametrize("table", ["gpt", "mbr"])
def test_uefi_job_captures_into_the_store_then_production_and_remove(
        bases, tmp_path, table):
    from tests import ovmfvars
    disk = bases.disk(table, tmp_path / "disk.img")
    machine = Machine(tmp_path, disk, "uefi")
    # Boot 0: production alone; OVMF makes its boot options in the store.
    assert is_production(machine.boot()), machine.log()
    nvram_before = ovmfvars.boot_entries(machine.vars)
    before = copy(disk, tmp_path / "before.img")

    bundle = bases.bundle("ENV-ONE")
    bwpart("install", disk, f"--env={bundle}", f"--size={SERVICE_SIZE}",
           "--firmware=uefi", "--yes")
    arm = machine.boot({
        "run.sh": "bwpart boot-next /dev/vda --job=capture.sh\n",
        "capture.sh": CAPTURE_JOB})
    assert is_production(arm) and f"{RUN_DONE} 0" in arm, machine.log()
    service = machine.boot()
    assert service_ran(service) and JOB_DONE in service, machine.log()
    store_holds_prod(disk, tmp_path)
    start, size = service_area(disk)

    # Production again, and remove there (the NVRAM is the machine's).
    last = machine.boot({"run.sh": "bwpart remove /dev/vda --yes\n"})
    assert is_production(last) and f"{RUN_DONE} 0" in last, machine.log()
    assert ovmfvars.boot_entries(machine.vars) == nvram_before
    assert cmp_outside(before, disk, (start + MiB, start + size - MiB)) == []
    assert _same_table(before, disk)
