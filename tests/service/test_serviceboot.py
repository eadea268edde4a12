"""The service boot's decisions on real tails of sfdisk-made disk files,
each job run for real with sh; the FAT is not mounted (``mount=False``:
vfat does not mount on this host; the mount is exercised by part H's QEMU
boots), so the job has no BWPART_STORE.

Armed or not is judged by sfdisk --json (the MBR active flag) and by the
bytes of the table against the ones before boot-next."""

import os
import subprocess
import sys

import pytest

from diskimage.errors import InputError
from diskimage.service import bootnext, serviceboot, state

from tests.service import servicedisk

pytestmark = pytest.mark.needs("sfdisk", "sh")


def armed(disk):
    parts = servicedisk.parts(disk)
    assert bool(parts[1].get("bootable")) != bool(parts[2].get("bootable"))
    return bool(parts[2].get("bootable"))


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk.img"
    servicedisk.make(path, "dos")
    return path


def boot_next(tmp_path, disk, text, tries):
    script = tmp_path / "job.sh"
    script.write_text(text)
    return bootnext.boot_next(str(disk), str(script), tries=tries,
                              firmware="bios")


def service_boot(disk, summary, **kw):
    return serviceboot.run(summary["partition"], disk=str(disk),
                           mount=False, **kw)


def load(disk):
    return state.load(servicedisk.partition.find_service(str(disk)))


def test_a_job_failing_on_its_first_try_runs_again_and_then_succeeds(
        tmp_path, disk):
    before = servicedisk.table_bytes(disk)
    marker = tmp_path / "ran-once"
    summary = boot_next(tmp_path, disk, f"""
        if [ -f {marker} ]; then echo second; exit 0; fi
        touch {marker}; exit 3
    """, tries=3)
    assert armed(disk)
    steps = []
    assert service_boot(disk, summary, progress=steps.append) == 3
    st = load(disk)
    assert st["job"]["used"] == 1
    assert st["last"]["result"] == "failed" and st["last"]["exit"] == 3
    assert st["last"]["try"] == 1
    assert armed(disk)                   # the next boot runs it again
    assert "job job.sh: try 1 of 3" in steps
    assert service_boot(disk, summary) == 0
    st = load(disk)
    assert st["job"] is None and st["armed"] is None
    assert st["last"]["result"] == "done" and st["last"]["try"] == 2
    assert not armed(disk)
    assert servicedisk.table_bytes(disk) == before
    # the next boot finds nothing to do
    assert service_boot(disk, summary) == 0


def test_a_job_that_always_fails_stops_after_its_tries(tmp_path, disk):
    before = servicedisk.table_bytes(disk)
    summary = boot_next(tmp_path, disk, "exit 7\n", tries=2)
    assert service_boot(disk, summary) == 7
    assert armed(disk) and load(disk)["job"]["used"] == 1
    assert service_boot(disk, summary) == 7
    st = load(disk)
    assert st["job"] is None and st["armed"] is None
    assert st["last"] == {**st["last"], "result": "exhausted", "exit": 7,
                          "try": 2}
    assert not armed(disk)
    assert servicedisk.table_bytes(disk) == before


def test_the_job_runs_in_tmp_with_its_variables(tmp_path, disk):
    out = tmp_path / "env.txt"
    summary = boot_next(tmp_path, disk, f"""
        {{ pwd; echo "$BWPART_DISK"; echo "$BWPART_PARTITION"
          echo "$BWPART_ID"; echo "$BWPART_TRY/$BWPART_TRIES"
          echo "store=${{BWPART_STORE-unset}}"; }} > {out}
    """, tries=4)
    assert service_boot(disk, summary) == 0
    assert out.read_text().splitlines() == [
        "/tmp", str(disk), "2", summary["partition"], "1/4",
        "store=unset"]


def test_a_job_killed_by_a_signal_is_a_failure(tmp_path, disk):
    summary = boot_next(tmp_path, disk, "kill -TERM $$\n", tries=2)
    assert service_boot(disk, summary) == 128 + 15
    assert load(disk)["last"]["result"] == "failed"


def test_a_power_cut_during_the_job_counts_the_try_and_stays_armed(
        tmp_path, disk):
    """The whole service boot in a child process that the job kills with
    SIGKILL (as a power cut stops it: nothing after the job runs)."""
    before = servicedisk.table_bytes(disk)
    marker = tmp_path / "cut-once"
    summary = boot_next(tmp_path, disk, f"""
        if [ ! -f {marker} ]; then touch {marker}; kill -KILL $PPID; sleep 5; fi
        exit 0
    """, tries=2)
    code = (f"from diskimage.service import serviceboot\n"
            f"serviceboot.run({summary['partition']!r}, disk={str(disk)!r},"
            f" mount=False)\n")
    child = subprocess.run([sys.executable, "-c", code], cwd=os.getcwd(),
                           capture_output=True, text=True)
    assert child.returncode == -9, child.stderr
    st = load(disk)
    assert st["job"]["used"] == 1 and st["last"] is None
    assert armed(disk)                   # boots the service again
    steps = []
    assert service_boot(disk, summary, progress=steps.append) == 0
    assert "job job.sh: try 1 did not end (power cut?)" in steps
    assert load(disk)["last"]["result"] == "done"
    assert servicedisk.table_bytes(disk) == before


def test_a_cut_last_try_is_exhausted_at_the_next_boot(tmp_path, disk):
    before = servicedisk.table_bytes(disk)
    summary = boot_next(tmp_path, disk, "exit 0\n", tries=1)
    service = servicedisk.partition.find_service(str(disk))
    st = state.load(service)
    st["job"]["used"] = 1            # as the cut try left it
    state.save(service, st)
    assert service_boot(disk, summary) == 1
    st = load(disk)
    assert st["job"] is None and st["armed"] is None
    assert st["last"]["result"] == "exhausted"
    assert st["last"]["interrupted"] is True
    assert servicedisk.table_bytes(disk) == before


def test_armed_without_a_job_disarms(tmp_path, disk):
    before = servicedisk.table_bytes(disk)
    service = servicedisk.partition.find_service(str(disk))
    from diskimage.service import arming
    arming.arm(service, "bios")
    assert armed(disk)
    assert serviceboot.run(service.part_id, disk=str(disk),
                           mount=False) == 0
    assert not armed(disk)
    assert servicedisk.table_bytes(disk) == before


def test_another_partition_id_is_refused(disk):
    with pytest.raises(InputError, match="no service partition"):
        serviceboot.run("deadbeef-02", disk=str(disk), mount=False)


@pytest.mark.needs("mkfs.fat", "mcopy")
def test_uefi_bootnext_set_again_at_each_service_boot_then_put_back(
        tmp_path):
    """On a directory laid out as efivarfs: the firmware's use of BootNext
    is played by deleting it before each service boot."""
    import struct
    from diskimage.service import efiboot
    from diskimage.service.efivars import Efivars
    guid = efiboot.EFI_GLOBAL_VARIABLE
    disk = tmp_path / "disk.img"
    servicedisk.make(disk, "gpt", fat=True)
    root = tmp_path / "efivars"
    root.mkdir()
    vars = Efivars(str(root), firmware=str(tmp_path))
    vars.write("Boot0000", guid, b"the firmware's own entry")
    vars.write("BootOrder", guid, struct.pack("<H", 0))
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    marker = tmp_path / "ran-once"
    script = tmp_path / "job.sh"
    script.write_text(f"[ -f {marker} ] && exit 0; touch {marker}; exit 1\n")
    summary = bootnext.boot_next(str(disk), str(script), tries=2,
                                 firmware="uefi", vars=vars)
    entry = summary["armed"]["uefi"]["entry"]
    number = efiboot.entry_number(entry)
    assert efiboot.boot_order(vars) == [number, 0]
    vars.delete("BootNext", guid)
    assert service_boot(disk, summary, vars=vars) == 1
    assert efiboot.boot_next(vars) == number      # boots the service again
    assert efiboot.boot_order(vars) == [number, 0]
    vars.delete("BootNext", guid)
    assert service_boot(disk, summary, vars=vars) == 0
    after = {p.name: p.read_bytes() for p in root.iterdir()}
    # BootOrder back byte for byte; the entry stays for `bwpart remove`
    assert {k: v for k, v in after.items()
            if not k.startswith(entry)} == before
    assert load(disk)["armed"] is None


def test_a_job_found_unarmed_is_armed_before_it_runs(tmp_path, disk):
    """boot-next cut between saving the job and arming: a service boot
    (chosen by hand) arms it before the job, so a cut then boots here."""
    out = tmp_path / "armed-during-job"
    summary = boot_next(tmp_path, disk, f"sfdisk --json {disk} > {out}\n"
                        "exit 1\n", tries=2)
    service = servicedisk.partition.find_service(str(disk))
    from diskimage.service import arming
    arming.disarm(service)
    assert not armed(disk) and load(disk)["job"]
    assert service_boot(disk, summary) == 1      # this host boots by BIOS
    import json
    during = json.loads(out.read_text())["partitiontable"]["partitions"]
    assert [p["node"][-1] for p in during if p.get("bootable")] == ["2"]
    assert armed(disk)


def test_a_job_may_queue_the_next_job(tmp_path, disk):
    second = tmp_path / "second.sh"
    second.write_text("exit 0\n")
    summary = boot_next(tmp_path, disk, f"""
        cd {os.getcwd()} && exec {sys.executable} -c '
from diskimage.service import bootnext
bootnext.boot_next("{disk}", "{second}", tries=5, firmware="bios")'
    """, tries=2)
    assert service_boot(disk, summary) == 0
    st = load(disk)
    assert st["job"]["name"] == "second.sh" and st["job"]["tries"] == 5
    assert st["job"]["used"] == 0
    assert st["last"]["result"] == "done" and st["last"]["job"] == "job.sh"
    assert armed(disk)                   # the second job runs next
    assert service_boot(disk, summary) == 0
    assert not armed(disk) and load(disk)["job"] is None


def test_a_job_that_rewrote_the_table_gets_nothing_written(tmp_path, disk):
    """A re-image that lays down a table without the service partition:
    the old tail is not written to (it may be the new OS's data now)."""
    after_job = tmp_path / "after-job"
    summary = boot_next(tmp_path, disk, f"""
        printf 'label: dos\\nstart=1MiB, type=83, bootable\\n' |
            sfdisk -q {disk} && tail -c 2097152 {disk} | sha256sum > {after_job}
    """, tries=2)
    steps = []
    assert service_boot(disk, summary, progress=steps.append) == 0
    assert any("the service partition is gone" in s for s in steps)
    import hashlib
    with open(disk, "rb") as f:
        f.seek(-2 << 20, 2)
        now = hashlib.sha256(f.read()).hexdigest()
    assert after_job.read_text().split()[0] == now
    assert list(servicedisk.parts(disk)) == [1]


@pytest.mark.needs("mkfs.fat", "mcopy", "losetup", "mount", root=True)
def test_the_fat_mounted_for_the_job_or_the_try_failed(tmp_path):
    """mount=True: the FAT over a loop device (fatfs.mounted).  Where vfat
    mounts (the environment), the job sees the store; where it does not
    (this host's kernel), the try is a failure that names the mount, the
    job does not run and the machine stays armed."""
    disk = tmp_path / "disk.img"
    servicedisk.make(disk, "dos", fat=True)
    where = tmp_path / "mnt"
    seen = tmp_path / "seen"
    summary = boot_next(tmp_path, disk, f'echo "$BWPART_STORE" > {seen}\n',
                        tries=2)
    steps = []
    code = serviceboot.run(summary["partition"], disk=str(disk),
                           where=str(where), progress=steps.append)
    st = load(disk)
    assert all("\n" not in step for step in steps), steps
    if code == 0:
        assert seen.read_text() == f"{where}/store\n"
        assert st["last"]["result"] == "done" and not armed(disk)
    else:
        assert code == 1 and not seen.exists()
        assert st["last"]["result"] == "failed" and "mount" in \
            st["last"]["error"]
        # one line: the first of mount's (not its dmesg hint)
        assert "\n" not in st["last"]["error"]
        assert st["last"]["error"].startswith(
            f"{disk}: mounting the service FAT (/dev/loop")
        assert "dmesg" not in st["last"]["error"]
        assert f"job job.sh not run: {st['last']['error']}" \
            in steps
        assert st["job"]["used"] == 1 and armed(disk)
    assert not os.path.ismount(where)
    losetup = subprocess.run(["losetup", "-j", str(disk)],
                             capture_output=True, text=True)
    assert losetup.stdout == ""          # the loop device is detached
