"""bwpart on real disk files (sfdisk, mkfs.ext4, syslinux's boot code):
install's plan and --dry-run, the confirmation, install then status,
the store, boot-next on BIOS, remove putting the table areas back byte
for byte, and the refusals' exit codes.  Checked with sfdisk --json and
mtools, never with the code under test."""

import json
import os
import subprocess

import pytest

from tests.bwpart.cli_helpers import GPTMBR_BIN, MBR_BIN, MiB, SECTOR, \
    SERVICE, build, bundle, bwpart, check, sfdisk, sfdisk_json, table_areas
from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import build_disk, sha256

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4", "mkfs.fat", "mcopy",
                               "syslinux")

GPT_TYPE = "B10262F8-AB25-4A01-BE00-A2803022D1BF"
BOOT_CODE = {"dos": MBR_BIN, "gpt": GPTMBR_BIN}


@pytest.fixture
def env(tmp_path):
    return bundle(tmp_path / "env")


def disk_file(tmp_path, table, boot_code=True):
    return build(tmp_path / f"{table}.img", table,
                 BOOT_CODE[table] if boot_code else None)


def install(disk, env, firmware="bios"):
    result = bwpart("install", disk, f"--env={env}", f"--size={SERVICE}",
                    f"--firmware={firmware}", "--yes")
    assert result.returncode == 0, result.stderr
    return result


def service_entry(disk):
    parts = sfdisk_json(disk)["partitions"]
    assert len(parts) == 2, parts
    return parts[1]


def mdir(disk, entry, path):
    """mtools' listing of `path` on the service FAT (at the entry's
    start), as lower-case names (mdir shows 8.3 names in upper case)."""
    out = subprocess.run(
        ["mdir", "-b", "-i", f"{disk}@@{entry['start'] * SECTOR}",
         f"::{path}"], capture_output=True, text=True,
        env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    assert out.returncode == 0, out.stderr
    return [line.rstrip("/").rsplit("/", 1)[-1].lower()
            for line in out.stdout.split()]


@pytest.mark.parametrize("table", ["dos", "gpt"])
def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, env, table):
    disk = disk_file(tmp_path, table)
    before = sha256(disk)
    result = bwpart("install", disk, f"--env={env}", f"--size={SERVICE}",
                    "--firmware=bios", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) >= 3, result.stdout
    assert "256" in result.stdout          # the size, in some unit
    result = bwpart("install", disk, f"--env={env}", f"--size={SERVICE}",
                    "--firmware=bios", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)
    assert sha256(disk) == before


def test_install_without_a_terminal_needs_yes(tmp_path, env):
    disk = disk_file(tmp_path, "gpt")
    before = sha256(disk)
    result = bwpart("install", disk, f"--env={env}", f"--size={SERVICE}")
    check(result, 5, "--yes", "nothing written")
    assert result.stdout.strip()            # the plan was shown first
    assert sha256(disk) == before


def test_install_asks_on_a_terminal_and_no_writes_nothing(tmp_path, env):
    disk = disk_file(tmp_path, "dos")
    before = sha256(disk)
    master, slave = os.openpty()
    try:
        os.write(master, b"no\n")
        result = bwpart("install", disk, f"--env={env}",
                        f"--size={SERVICE}", "--firmware=bios", stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    # the answer's newline was echoed by the terminal, not on stderr
    prompt, _, error = result.stderr.partition("Type 'yes' to go on: ")
    assert "about to add a service partition" in prompt
    assert result.returncode == 5
    assert error.startswith("bwpart: error: ") and "not confirmed" in error
    assert sha256(disk) == before


@pytest.mark.parametrize("table", ["dos", "gpt"])
def test_install_status_remove_puts_the_table_back(tmp_path, env, table):
    disk = disk_file(tmp_path, table)
    areas = table_areas(disk)
    install(disk, env)
    entry = service_entry(disk)
    if table == "gpt":
        assert entry["type"] == GPT_TYPE
        assert entry["name"] == "rdeploy service"
    else:
        assert entry["type"] == "1c"
        assert not entry.get("bootable")
    assert entry["size"] * SECTOR == 256 * MiB
    assert entry["start"] * SECTOR % MiB == 0
    names = mdir(disk, entry, "/bwpart")
    assert "install.json" in names and "env" in names
    status = json.loads(bwpart("status", disk, "--json").stdout)
    assert status["installed"] is True
    human = bwpart("status", disk)
    assert human.returncode == 0 and "installed" in human.stdout
    # a second install is refused: use update
    check(bwpart("install", disk, f"--env={env}", f"--size={SERVICE}",
                 "--firmware=bios", "--yes"), 5, "update")
    assert table_areas(disk) != areas
    result = bwpart("remove", disk, "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()            # what it put back, shown first
    assert table_areas(disk) == areas
    assert len(sfdisk_json(disk)["partitions"]) == 1
    status = json.loads(bwpart("status", disk, "--json").stdout)
    assert not status["installed"]
    check(bwpart("store", "ls", disk), 5, "no service partition")
    check(bwpart("remove", disk, "--yes"), 5, "no service partition")


def test_remove_without_a_terminal_needs_yes(tmp_path, env):
    disk = disk_file(tmp_path, "gpt")
    result = bwpart("install", disk, f"--env={env}", f"--size={SERVICE}",
                    "--firmware=bios", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert done["plan"]["table"] == "gpt"
    assert done["installed"]["partition"]["number"] == 2
    before = sha256(disk)
    check(bwpart("remove", disk), 5, "--yes")
    assert sha256(disk) == before
    # a --grow that cannot be done is refused before the plan is shown
    grow = bwpart("remove", disk, "--grow=5", "--yes")
    assert grow.returncode == 3 and "partition 5" in grow.stderr, grow.stderr
    assert grow.stdout == ""
    assert sha256(disk) == before


def test_store_add_ls_rm(tmp_path, env):
    disk = disk_file(tmp_path, "gpt")
    install(disk, env)
    source = build_disk(tmp_path / "source.img")
    image = tmp_path / "lab.rdi"
    captured = rdeploy("capture", source, image)
    assert captured.returncode == 0, captured.stderr
    result = bwpart("store", "add", disk, image, "--name=lab")
    assert result.returncode == 0, result.stderr
    listed = json.loads(bwpart("store", "ls", disk, "--json").stdout)
    assert [i["name"] if isinstance(i, dict) else i for i in listed] == \
        ["lab"]
    assert "lab.rdi" in mdir(disk, service_entry(disk), "/store")
    table = bwpart("store", "ls", disk)
    assert table.returncode == 0 and "lab" in table.stdout
    assert bwpart("store", "rm", disk, "lab").returncode == 0
    assert json.loads(bwpart("store", "ls", disk, "--json").stdout) == []
    assert "lab.rdi" not in mdir(disk, service_entry(disk), "/store")
    check(bwpart("store", "rm", disk, "lab"), 3, "lab")


def test_boot_next_bios_on_mbr_moves_the_active_flag(tmp_path, env):
    disk = disk_file(tmp_path, "dos")
    areas = table_areas(disk)
    install(disk, env)
    job = tmp_path / "job.sh"
    job.write_text("echo job ran\n")
    result = bwpart("boot-next", disk, f"--job={job}", "--tries=2",
                    "--firmware=bios")
    assert result.returncode == 0, result.stderr
    parts = sfdisk_json(disk)["partitions"]
    assert [bool(p.get("bootable")) for p in parts] == [False, True]
    status = json.loads(bwpart("status", disk, "--json").stdout)
    assert "job.sh" in json.dumps(status)
    assert bwpart("remove", disk, "--yes").returncode == 0
    assert table_areas(disk) == areas
    assert sfdisk_json(disk)["partitions"][0]["bootable"]


def test_boot_next_bios_on_gpt_moves_the_legacy_attribute(tmp_path, env):
    disk = disk_file(tmp_path, "gpt")
    sfdisk_attrs(disk, 1, "LegacyBIOSBootable")
    areas = table_areas(disk)
    install(disk, env)
    job = tmp_path / "job.sh"
    job.write_text("echo job ran\n")
    result = bwpart("boot-next", disk, f"--job={job}", "--firmware=bios")
    assert result.returncode == 0, result.stderr
    parts = sfdisk_json(disk)["partitions"]
    assert "LegacyBIOSBootable" not in parts[0].get("attrs", "")
    assert "LegacyBIOSBootable" in parts[1].get("attrs", "")
    assert bwpart("remove", disk, "--yes").returncode == 0
    assert table_areas(disk) == areas


def sfdisk_attrs(disk, number, attrs):
    subprocess.run(["sfdisk", "-q", "--part-attrs", str(disk), str(number),
                    attrs], check=True, capture_output=True)


def test_bios_refuses_a_boot_code_it_cannot_use(tmp_path, env):
    disk = disk_file(tmp_path, "dos", boot_code=False)     # zeros
    before = sha256(disk)
    check(bwpart("install", disk, f"--env={env}", f"--size={SERVICE}",
                 "--firmware=bios", "--yes"), 5, "boot code")
    assert sha256(disk) == before
    # for UEFI the boot code does not matter; boot-next for BIOS refuses
    install(disk, env, firmware="uefi")
    job = tmp_path / "job.sh"
    job.write_text("true\n")
    before = sha256(disk)
    check(bwpart("boot-next", disk, f"--job={job}", "--firmware=bios"), 5,
          "boot code")
    assert sha256(disk) == before


def test_refusals_exit_codes(tmp_path, env):
    full = tmp_path / "full.img"
    with open(full, "wb") as f:
        f.truncate(328 * MiB)
    sfdisk(full, "label: gpt\nstart=2048\n")
    before = sha256(full)
    check(bwpart("install", full, f"--env={env}", "--firmware=bios",
                 "--yes"), 5)
    check(bwpart("install", full, f"--env={tmp_path}", "--firmware=bios",
                 "--yes"), 3, "bundle.json")
    (env / "vmlinuz").write_bytes(b"not the kernel bundle.json names")
    disk = disk_file(tmp_path, "gpt")
    check(bwpart("install", disk, f"--env={env}", "--firmware=bios",
                 f"--size={SERVICE}", "--yes"), 3, "vmlinuz")
    check(bwpart("status", tmp_path / "nothing.img"), 3)
    check(bwpart("store", "ls", full), 5, "no service partition")
    job = tmp_path / "job.sh"
    job.write_text("true\n")
    check(bwpart("boot-next", full, f"--job={job}", "--firmware=bios"), 5,
          "no service partition")
    check(bwpart("boot-next", full, "--firmware=bios"), 2, "--job")
    assert sha256(full) == before


def test_update_switches_the_environment_and_keeps_the_store(tmp_path, env):
    disk = disk_file(tmp_path, "gpt")
    install(disk, env)
    source = build_disk(tmp_path / "source.img")
    image = tmp_path / "lab.rdi"
    assert rdeploy("capture", source, image).returncode == 0
    assert bwpart("store", "add", disk, image).returncode == 0
    new = bundle(tmp_path / "env2", version="2.0")
    result = bwpart("update", disk, f"--env={new}")
    assert result.returncode == 0, result.stderr
    status = json.loads(bwpart("status", disk, "--json").stdout)
    assert status["env"]["version"] == "2.0"
    assert [i["name"] for i in status["store"]] == ["lab"]
    names = mdir(disk, service_entry(disk), "/bwpart/env")
    assert names == [status["env"]["slot"]]     # the old slot is gone
    check(bwpart("update", disk, f"--env={tmp_path}"), 3, "bundle.json")


@pytest.mark.needs("losetup", root=True)
def test_service_boot_counts_the_try_and_gives_up_after_the_last(tmp_path,
                                                                  env):
    """The environment's command on a loop device of the disk file: its
    steps are "bwpart: ..." lines on stderr (not a terminal here), and its
    exit status is the job's.  This host does not mount vfat, so the job
    cannot run and the try fails; with --tries=1 that was the last: the
    result is "exhausted" and the active flag is back on partition 1."""
    disk = disk_file(tmp_path, "dos")
    install(disk, env)
    job = tmp_path / "job.sh"
    job.write_text("exit 0\n")
    assert bwpart("boot-next", disk, f"--job={job}", "--tries=1",
                  "--firmware=bios").returncode == 0
    part_id = json.loads(bwpart("status", disk, "--json").stdout)[
        "partition"]["part_id"]
    loop = subprocess.run(["losetup", "-f", "--show", str(disk)],
                          check=True, capture_output=True,
                          text=True).stdout.strip()
    try:
        result = bwpart("service-boot", part_id)
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("bwpart: ") for line in lines)
    assert any("try 1 of 1" in line for line in lines), lines
    status = json.loads(bwpart("status", disk, "--json").stdout)
    assert status["last"]["result"] == "exhausted"
    assert status["job"] is None and status["armed"] is None
    assert [bool(p.get("bootable")) for p in
            sfdisk_json(disk)["partitions"]] == [True, False]
    check(bwpart("service-boot", "00000000-09"), 3, "no service partition")


def ext4_blocks(disk, start):
    """dumpe2fs's block count of the ext4 at byte `start` of `disk`."""
    out = subprocess.run(["dumpe2fs", "-h", f"{disk}?offset={start}"],
                         capture_output=True, text=True)
    if out.returncode:      # older e2fsprogs: no ?offset=, use a loop
        raise AssertionError(out.stderr)
    line = next(x for x in out.stdout.splitlines()
                if x.startswith("Block count:"))
    return int(line.split(":")[1])


def e2fsck(disk, start, size):
    loop = subprocess.run(["losetup", "-f", "--show", "-o", str(start),
                           "--sizelimit", str(size), str(disk)], check=True,
                          capture_output=True, text=True).stdout.strip()
    try:
        return subprocess.run(["e2fsck", "-fn", loop], capture_output=True,
                              text=True).returncode
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)


@pytest.mark.needs("losetup", "e2fsck", "dumpe2fs", root=True)
def test_install_shrink_then_remove_grows_it_back(tmp_path, env):
    disk = tmp_path / "full.img"
    with open(disk, "wb") as f:
        f.truncate(328 * MiB)
    sfdisk(disk, "label: gpt\nstart=2048, name=sys\n")
    whole = sfdisk_json(disk)["partitions"][0]["size"] * SECTOR
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={MiB}",
                    str(disk), f"{whole // 1024}K"], check=True,
                   capture_output=True)
    blocks = ext4_blocks(disk, MiB)
    areas = table_areas(disk)
    check(bwpart("install", disk, f"--env={env}", f"--size={SERVICE}",
                 "--firmware=bios", "--yes"), 5, "--shrink=1")
    plan = bwpart("install", disk, f"--env={env}", f"--size={SERVICE}",
                  "--shrink=1", "--firmware=uefi", "--dry-run")
    assert plan.returncode == 0 and "shrink" in plan.stdout, plan.stderr
    result = bwpart("install", disk, f"--env={env}", f"--size={SERVICE}",
                    "--shrink=1", "--firmware=uefi", "--yes")
    assert result.returncode == 0, result.stderr
    first = sfdisk_json(disk)["partitions"][0]["size"] * SECTOR
    assert first < whole and ext4_blocks(disk, MiB) < blocks
    assert e2fsck(disk, MiB, first) == 0
    status = bwpart("status", disk)
    assert "grows back" in status.stdout, status.stdout
    result = bwpart("remove", disk, "--yes")
    assert result.returncode == 0, result.stderr
    assert table_areas(disk) == areas
    assert ext4_blocks(disk, MiB) == blocks
    assert e2fsck(disk, MiB, whole) == 0
