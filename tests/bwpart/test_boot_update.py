"""bwpart update, booted (SeaBIOS, MBR; boot-next from the host): with an
image in the local store, an update to a new bundle keeps the store and the
new environment boots (its marker file, /etc/bwpart-test, and its version
show on the console); an update killed half way (after the new slot is on
the FAT, before the switch) leaves the old environment booting.  2 boots.

The kill: the library's update runs in a child process whose progress
callback looks at the FAT (mdir) at each step and SIGKILLs its own process
at the first step after which a new environment slot holds a file (its
kernel written, its initramfs not yet); the
test then checks that the kill did come between slot and switch (the
process died, the new slot is there, the status still names the old
environment), so a too-early or too-late kill fails instead of passing.
"""

import json
import subprocess
import sys

import pytest

from tests.bwpart.production import (JOB_MARK, ROOT, SERVICE_SIZE, Bases,
                                     Machine, bwpart, fat_names, rdeploy,
                                     service_ran)
from tests.bootdisk_helpers import need_qemu, toolkit

pytestmark = [pytest.mark.boot,
              pytest.mark.needs("qemu-system-x86_64", "sfdisk", "mkfs.fat",
                                "mcopy", "syslinux")]

SHOW_ENV = f"""\
echo "{JOB_MARK} env=$(cat /etc/bwpart-test) store:"
ls "$BWPART_STORE"
"""

KILLED_UPDATE = r"""
import os, signal, sys
sys.path.insert(0, os.getcwd())
from diskimage.service import update
from tests.bwpart.production import fat_names
disk, bundle, before = sys.argv[1], sys.argv[2], set(sys.argv[3:])

def progress(text):
    print("step:", text, flush=True)
    for slot in set(fat_names(disk, "/bwpart/env")) - before:
        if fat_names(disk, f"/bwpart/env/{slot}"):
            print("killed after:", text, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

update.update(disk, bundle, progress=progress)
print("update finished without being killed", flush=True)
"""


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    need_qemu()
    toolkit()
    return Bases(tmp_path_factory)


def active_env(disk):
    """What `bwpart status --json` says of the active environment (not
    what an interrupted update left beside it)."""
    env = json.loads(bwpart("status", disk, "--json").stdout)["env"]
    env.pop("leftovers", None)
    return env


def bundle_info(bundle):
    return json.loads((bundle / "bundle.json").read_text())


def environment_line(out):
    lines = [line for line in out.splitlines()
             if line.startswith("bootdisk: environment ")]
    assert lines, out
    return lines[0]


def test_update_keeps_the_store_and_a_killed_update_boots_the_old_env(
        bases, tmp_path):
    disk = bases.disk("mbr", tmp_path / "disk.img")
    one, two, three = (bases.bundle(m) for m in
                       ("ENV-ONE", "ENV-TWO", "ENV-THREE"))
    bwpart("install", disk, f"--env={one}", f"--size={SERVICE_SIZE}",
           "--firmware=bios", "--yes")
    image = tmp_path / "prod.rdi"
    rdeploy("capture", bases.disk("mbr", tmp_path / "source.img"), image,
            "--partitions=1", "--quiet")
    bwpart("store", "add", disk, image, "--name=prod")
    assert "prod" in bwpart("store", "ls", disk).stdout

    bwpart("update", disk, f"--env={two}")
    assert "prod" in bwpart("store", "ls", disk).stdout
    job = tmp_path / "show-env.sh"
    job.write_text(SHOW_ENV)
    machine = Machine(tmp_path, disk, "bios")
    bwpart("boot-next", disk, f"--job={job}", "--firmware=bios")
    out = machine.boot()
    assert service_ran(out) and "env=ENV-TWO store:" in out, machine.log()
    assert "prod.rdi" in out.split("env=ENV-TWO store:", 1)[1], machine.log()
    assert bundle_info(two)["version"] in environment_line(out)
    after_two = active_env(disk)
    assert after_two

    slots = fat_names(disk, "/bwpart/env")
    killed = subprocess.run([sys.executable, "-c", KILLED_UPDATE, str(disk),
                             str(three), *slots], cwd=ROOT, text=True,
                            capture_output=True)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    new = set(fat_names(disk, "/bwpart/env")) - set(slots)
    assert new and fat_names(disk, f"/bwpart/env/{min(new)}"), \
        "the kill came before the new slot was written"
    assert active_env(disk) == after_two, "the kill came after the switch"
    left = json.loads(bwpart("status", disk, "--json").stdout)["env"]
    assert left["leftovers"]["slots"] == sorted(new), left

    bwpart("boot-next", disk, f"--job={job}", "--firmware=bios")
    out = machine.boot()
    assert service_ran(out) and "env=ENV-TWO store:" in out, machine.log()
    assert "ENV-THREE" not in out
    assert "prod.rdi" in out.split("env=ENV-TWO store:", 1)[1], machine.log()
