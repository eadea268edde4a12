"""A job's tries, booted (SeaBIOS, MBR; boot-next from the host with
--firmware=bios): a job failing on its first try runs again at the next
boot and then succeeds; a job that always fails stops after --tries and
the machine boots production.  5 boots."""

import json

import pytest

from tests.bwpart.production import (JOB_MARK, SERVICE_SIZE, Bases, Machine,
                                     bwpart, is_production, service_ran)
from tests.bootdisk_helpers import need_qemu, toolkit

pytestmark = [pytest.mark.boot,
              pytest.mark.needs("qemu-system-x86_64", "sfdisk", "mkfs.fat",
                                "mcopy", "syslinux")]

SECOND_TRY = f"""\
echo "{JOB_MARK} try $BWPART_TRY of $BWPART_TRIES"
[ "$BWPART_TRY" -ge 2 ]
"""
ALWAYS_FAILS = f"""\
echo "{JOB_MARK} try $BWPART_TRY of $BWPART_TRIES, failing"
exit 7
"""


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    need_qemu()
    toolkit()
    return Bases(tmp_path_factory)


def status(disk):
    return json.loads(bwpart("status", disk, "--json").stdout)


def test_a_failed_try_runs_again_and_used_up_tries_boot_production(
        bases, tmp_path):
    disk = bases.disk("mbr", tmp_path / "disk.img")
    bwpart("install", disk, f"--env={bases.bundle('ENV-ONE')}",
           f"--size={SERVICE_SIZE}", "--firmware=bios", "--yes")
    machine = Machine(tmp_path, disk, "bios")

    job = tmp_path / "second-try.sh"
    job.write_text(SECOND_TRY)
    bwpart("boot-next", disk, f"--job={job}", "--tries=3", "--firmware=bios")
    first = machine.boot()
    assert service_ran(first) and f"{JOB_MARK} try 1 of 3" in first, \
        machine.log()
    second = machine.boot()
    assert service_ran(second) and f"{JOB_MARK} try 2 of 3" in second, \
        machine.log()
    st = status(disk)
    assert st["last"]["result"] == "done" and st["last"]["try"] == 2, st
    assert st["job"] is None and st["armed"] is None, st

    job = tmp_path / "always-fails.sh"
    job.write_text(ALWAYS_FAILS)
    bwpart("boot-next", disk, f"--job={job}", "--tries=2", "--firmware=bios")
    for n in (1, 2):
        out = machine.boot()
        assert service_ran(out) and f"try {n} of 2, failing" in out, \
            machine.log()
    st = status(disk)
    assert st["last"]["result"] == "exhausted" and st["last"]["try"] == 2, st
    assert st["job"] is None and st["armed"] is None, st
    assert is_production(machine.boot()), machine.log()
