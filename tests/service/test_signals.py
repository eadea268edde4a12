"""install, remove and store add killed by SIGTERM or SIGINT at several
moments, in a real child process that runs the library through the
commands' runner (cliutil.runner.run, as bwpart's main will): exit 143 or
130, and a disk the library reads as not installed, installed (whole), or
an interrupted install that remove undoes; never a service partition
that looks finished without its files.  The moment is picked by the
library's own step sequence (the child signals itself when its progress
callback is told that step), or by the parent once a file shows on the
FAT (mdir)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from diskimage.image.format import pack_file_header
from diskimage.service import (install, partition, plan, remove, status,
                               store)
from tests.service.installdisks import make_bundle, sha256
from tests.service.ondisk_helpers import MiB, production, read_at

pytestmark = pytest.mark.needs("sfdisk", "mkfs.fat", "mcopy", "mdir",
                               "mkfs.ext4", "losetup", root=True)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CHILD = r"""
import os, signal, sys
from cliutil import runner
from diskimage.service import partition, plan, install, remove, store
from diskimage.service import update
what, disk, at, sig, arg = sys.argv[1:6]

def progress(step):
    if at and step.startswith(at):
        os.kill(os.getpid(), getattr(signal, sig))

def main(argv):
    if what == "install":
        install.install(plan.plan_install(disk, arg, size=320 << 20,
                                          firmware="uefi"), progress)
    elif what == "remove":
        remove.remove(disk, progress=progress)
    elif what == "update":
        update.update(disk, arg, progress=progress)
    else:
        store.add(partition.find_service(disk), arg, progress=progress)
    return 0

sys.exit(runner.run("bwpart", main, []))
"""
EXIT = {"SIGTERM": 143, "SIGINT": 130}


def child(what, disk, at="", sig="SIGTERM", arg=""):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, what, str(disk), at, sig, str(arg)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def table(disk):
    return read_at(disk, 0, 34 * 512) + read_at(disk, 512 * MiB - 33 * 512,
                                                33 * 512)


def judged(disk, before):
    """"none", "whole" or "interrupted", checked against what each says."""
    view = status.status(disk)
    if not view["installed"]:
        assert table(disk) == before
        return "none"
    if view["interrupted"]:
        assert "interrupted install: bwpart remove undoes it" in view["notes"]
        return "interrupted"
    # looks finished: then everything is there
    assert view["env"]["slot"] and view["env"]["version"], view["notes"]
    return "whole"


@pytest.fixture
def disk(tmp_path):
    return production(tmp_path / "disk.img", "gpt")


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path / "bundle")


@pytest.mark.parametrize("at, sig, want", [
    ("writing the new table", "SIGTERM", "none"),
    ("writing the record", "SIGINT", "none"),
    ("formatting", "SIGTERM", "interrupted"),
    ("installing the UEFI loader", "SIGINT", "interrupted"),
    ("writing /bwpart/env/e1/initrd.img", "SIGTERM", "interrupted"),
    ("writing /bwpart/install.json", "SIGTERM", "interrupted"),
])
def test_install_interrupted(disk, bundle, at, sig, want):
    before = table(disk)
    proc = child("install", disk, at, sig, bundle)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT[sig], err
    assert judged(disk, before) == want
    if want == "interrupted":
        remove.remove(disk)
        assert table(disk) == before
        assert status.status(disk)["installed"] is False


def test_install_killed_while_copying(disk, bundle):
    """SIGTERM sent by the parent once the slot's kernel shows on the FAT
    (mdir): whatever moment that is, the disk reads as one of the three."""
    before = table(disk)
    proc = child("install", disk, arg=bundle)
    found = None
    while proc.poll() is None and found is None:
        service = partition.find_service(disk)
        if service is not None:
            seen = subprocess.run(
                ["mdir", "-b", "-i", f"{disk}@@{service.start}",
                 "::/bwpart/env/e1"], capture_output=True, text=True,
                env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
            if "vmlinuz" in seen.stdout.lower():
                found = proc.send_signal(signal.SIGTERM) or True
        time.sleep(0.05)
    proc.communicate(timeout=300)
    assert proc.returncode in (0, 143)
    state = judged(disk, before)
    assert state in ("interrupted", "whole")
    remove.remove(disk)
    assert table(disk) == before


@pytest.mark.parametrize("at, sig", [
    ("disarming", "SIGTERM"),
    ("putting the partition table back", "SIGINT"),
    ("zeroing", "SIGTERM"),
])
def test_remove_interrupted(disk, bundle, at, sig):
    before = table(disk)
    install.install(plan.plan_install(disk, bundle, size=320 * MiB,
                                      firmware="uefi"))
    proc = child("remove", disk, at, sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT[sig], err
    state = judged(disk, before)
    assert state in ("none", "whole")
    if state == "whole":
        remove.remove(disk)
    assert table(disk) == before


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_store_add_interrupted(tmp_path, disk, bundle, sig):
    install.install(plan.plan_install(disk, bundle, size=320 * MiB,
                                      firmware="uefi"))
    image = tmp_path / "p1.rdi"
    image.write_bytes(pack_file_header(MiB) + os.urandom(3 * MiB))
    proc = child("store", disk, "writing", sig, image)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT[sig], err
    service = partition.find_service(disk)
    assert store.ls(service) == []
    listing = subprocess.run(
        ["mdir", "-a", "-b", "-i", f"{disk}@@{service.start}", "::/store"],
        capture_output=True, text=True,
        env=dict(os.environ, MTOOLS_SKIP_CHECK="1")).stdout
    assert "partial" not in listing.lower(), listing
    assert judged(disk, b"") == "whole"
    assert sha256(image) and status.status(disk)["store"] == []


@pytest.mark.parametrize("at, sig, slot", [
    ("writing environment 2.0", "SIGTERM", "e1"),
    ("writing /bwpart/env/e2/initrd.img", "SIGINT", "e1"),
    ("switching the loaders", "SIGTERM", "e1"),
    ("", "SIGTERM", "e2"),
])
def test_update_interrupted(tmp_path, disk, bundle, at, sig, slot):
    """An update cut at each step: the old environment (or, once the
    switch is done, the new one) is the active one, whole; the store kept."""
    install.install(plan.plan_install(disk, bundle, size=320 * MiB,
                                      firmware="uefi"))
    image = tmp_path / "p1.rdi"
    image.write_bytes(pack_file_header(MiB) + os.urandom(MiB))
    store.add(partition.find_service(disk), str(image))
    new = make_bundle(tmp_path / "bundle2", version="2.0")
    proc = child("update", disk, at, sig, new)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == (EXIT[sig] if at else 0), err
    view = status.status(disk)
    assert view["installed"] and not view["interrupted"], view["notes"]
    version = "1.0" if slot == "e1" else "2.0"
    assert (view["env"]["slot"], view["env"]["version"]) == \
        (slot, version), view["notes"]
    assert [i["name"] for i in view["store"]] == ["p1"]
