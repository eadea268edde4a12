"""boot-next on sfdisk-made disk files: every refusal before any write
(the disk's bytes unchanged), then the job saved in the state and the
machine armed (sfdisk --json: the service partition active)."""

import hashlib
import os

import pytest

from diskimage.errors import InputError, TargetError
from diskimage.service import bootnext, state

from tests.service import servicedisk

pytestmark = pytest.mark.needs("sfdisk")


digest = servicedisk.fingerprint


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk.img"
    servicedisk.make(path, "dos")
    return path


def job(tmp_path, data, name="job.sh"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_the_job_is_saved_then_the_next_boot_armed(tmp_path, disk):
    script = job(tmp_path, b"#!/bin/sh\necho capture\n")
    summary = bootnext.boot_next(str(disk), str(script), tries=2,
                                 firmware="bios")
    service = servicedisk.partition.find_service(str(disk))
    st = state.load(service)
    assert st["job"]["name"] == "job.sh"
    assert st["job"]["text"] == "#!/bin/sh\necho capture\n"
    assert st["job"]["tries"] == 2 and st["job"]["used"] == 0
    assert st["job"]["sha256"] == hashlib.sha256(
        script.read_bytes()).hexdigest() == summary["sha256"]
    assert st["armed"]["firmware"] == "bios"
    assert summary["warnings"] == []
    assert summary["partition"] == service.part_id
    parts = servicedisk.parts(disk)
    assert parts[2].get("bootable") and not parts[1].get("bootable")
    # a second boot-next replaces the pending job, and says so
    other = job(tmp_path, b"echo restore\n", "other.sh")
    summary = bootnext.boot_next(str(disk), str(other), firmware="bios")
    assert summary["warnings"] == [
        "the pending job 'job.sh' (0 of 2 tries used) is replaced"]
    st2 = state.load(service)
    assert st2["job"]["name"] == "other.sh" and st2["job"]["tries"] == 3
    assert st2["armed"] == st["armed"]      # the first "before" kept


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"  \n\n", "empty"),
    (b"echo a\0b\n", "binary"),
    (b"echo \xff\n", "not UTF-8"),
    (b"#" * (128 * 1024 + 1), "128 KiB"),
])
def test_a_job_that_is_no_script_is_refused(tmp_path, disk, data, words):
    was = digest(disk)
    with pytest.raises(InputError, match=words):
        bootnext.boot_next(str(disk), str(job(tmp_path, data)),
                           firmware="bios")
    assert digest(disk) == was


def test_a_job_of_128_kib_is_taken(tmp_path, disk):
    data = b"#" * (128 * 1024 - 1) + b"\n"
    bootnext.boot_next(str(disk), str(job(tmp_path, data)), firmware="bios")


def test_no_job_a_directory_or_a_missing_file_is_refused(tmp_path, disk):
    was = digest(disk)
    with pytest.raises(InputError, match="needs a job"):
        bootnext.boot_next(str(disk), None, firmware="bios")
    with pytest.raises(InputError, match="not a regular file"):
        bootnext.boot_next(str(disk), str(tmp_path), firmware="bios")
    with pytest.raises(InputError, match="cannot read"):
        bootnext.boot_next(str(disk), str(tmp_path / "absent"),
                           firmware="bios")
    assert digest(disk) == was


@pytest.mark.parametrize("tries", [0, -1, 101, "3", True])
def test_tries_out_of_range_are_refused(tmp_path, disk, tries):
    was = digest(disk)
    with pytest.raises(InputError, match="--tries"):
        bootnext.boot_next(str(disk), str(job(tmp_path, b"true\n")),
                           tries=tries, firmware="bios")
    assert digest(disk) == was


def test_an_unknown_boot_code_is_refused_before_the_job_is_saved(tmp_path):
    path = tmp_path / "disk.img"
    servicedisk.make(path, "gpt", code=None)
    was = digest(path)
    with pytest.raises(TargetError, match="boot code"):
        bootnext.boot_next(str(path), str(job(tmp_path, b"true\n")),
                           firmware="bios")
    assert digest(path) == was


def test_a_disk_without_a_service_partition_is_refused(tmp_path):
    path = tmp_path / "plain.img"
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    import subprocess
    subprocess.run(["sfdisk", "-q", str(path)], check=True, text=True,
                   input="label: dos\nstart=1MiB, type=1c\n",
                   capture_output=True)
    was = digest(path)
    with pytest.raises(TargetError, match="no service partition"):
        bootnext.boot_next(str(path), str(job(tmp_path, b"true\n")),
                           firmware="bios")
    assert digest(path) == was
    assert os.path.getsize(path) == 64 << 20



@pytest.mark.needs("mkfs.fat", "mcopy", "sgdisk", root=True)
def test_both_state_slots_damaged_disarmed_from_the_record_then_armed(
        tmp_path):
    from tests.service.ondisk_helpers import install_by_hand, production
    disk = production(tmp_path / "disk.img", "mbr", ext4=False,
                      boot_code=True)
    service = install_by_hand(disk)
    script = job(tmp_path, b"echo capture\n")
    bootnext.boot_next(str(disk), str(script), firmware="bios")
    with open(disk, "r+b") as f:
        for slot in (512 << 10, 768 << 10):
            f.seek(service.tail_offset + slot + 40)
            f.write(b"XXXX")
    summary = bootnext.boot_next(str(disk), str(script), firmware="bios")
    assert summary["warnings"][0].startswith("state damaged: ")
    assert "disarmed from the install record (BIOS flags" in \
        summary["warnings"][0]
    st = state.load(service)
    assert st["job"]["name"] == "job.sh" and st["job"]["used"] == 0
    # what arm saved is the production flag, not our own arming
    saved = {int(k): v for k, v in st["armed"]["bios"]["flags_before"].items()}
    assert saved[1] == 0x80 and saved[2] == 0
    parts = servicedisk.parts(disk)
    assert parts[2].get("bootable") and not parts[1].get("bootable")
