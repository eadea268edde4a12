"""Secure Boot, booted: OVMF's Secure Boot firmware with Microsoft's keys
enrolled (OVMF_CODE_4M.secboot.fd + OVMF_VARS_4M.ms.fd, q35 with SMM), a
production disk of `bootdisk usb --secure-boot` (GPT).  boot-next (run on
the machine: NVRAM) reaches the job through shim -> Debian's signed GRUB ->
Debian's signed kernel; the same with `--efi-loader=grub` (a standalone,
unsigned GRUB) is refused by the firmware, which goes on to the next boot
option: production boots and the job never runs.  2 boots each.
"""

import os

import pytest

from tests.bwpart.production import (JOB_MARK, OVMF_MS_VARS,
                                     OVMF_SECBOOT_CODE, PRODUCTION_MARK,
                                     RUN_DONE, SERVICE_SIZE, Bases, Machine,
                                     bwpart, is_production, service_ran)
from tests.bootdisk_helpers import need_qemu, toolkit

pytestmark = [pytest.mark.boot,
              pytest.mark.needs("qemu-system-x86_64", "sfdisk", "sgdisk",
                                "mkfs.fat", "mcopy", "syslinux")]

JOB = f"""\
echo "{JOB_MARK} under Secure Boot"
"""
#: what Debian's kernel says when the firmware booted it with Secure Boot on
SB_ON = "secureboot: Secure boot enabled"
ARM = {"run.sh": "bwpart boot-next /dev/vda --job=job.sh\n", "job.sh": JOB}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    need_qemu()
    toolkit()
    for path in (OVMF_SECBOOT_CODE, OVMF_MS_VARS):
        assert os.path.exists(path), f"{path} is missing (make deps: ovmf)"
    return Bases(tmp_path_factory)


def armed_machine(bases, tmp_path, efi_loader):
    disk = bases.disk("gpt-secure", tmp_path / "disk.img")
    bundle = bases.bundle("ENV-SB", secure_boot=True)
    bwpart("install", disk, f"--env={bundle}", f"--size={SERVICE_SIZE}",
           "--firmware=uefi", f"--efi-loader={efi_loader}", "--yes")
    machine = Machine(tmp_path, disk, "secboot")
    out = machine.boot(ARM)
    assert is_production(out) and f"{RUN_DONE} 0" in out, machine.log()
    assert SB_ON in out, machine.log()
    return machine


def test_secure_boot_signed_chain_reaches_the_job(bases, tmp_path):
    machine = armed_machine(bases, tmp_path, "shim")
    out = machine.boot()
    assert service_ran(out) and f"{JOB_MARK} under Secure Boot" in out, \
        machine.log()
    assert SB_ON in out, machine.log()


def test_secure_boot_refuses_the_unsigned_loader(bases, tmp_path):
    machine = armed_machine(bases, tmp_path, "grub")
    out = machine.boot()
    assert PRODUCTION_MARK in out and JOB_MARK not in out, machine.log()
    # OVMF's own line: the entry bwpart made, its loader, the refusal.
    assert any('failed to load' in line and '"rdeploy service"' in line and
               "grubx64.efi: Access Denied" in line
               for line in out.splitlines()), out[:4000]
