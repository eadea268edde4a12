"""update on a real FAT32 at an offset, set up as an install leaves it
(loaders, slot e1, configs, an image in the store): a whole update, and
one SIGKILLed while its new slot is half written, which leaves the
configs on the old slot, whole, and the store kept."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from diskimage.errors import NoSpaceError
from diskimage.service import bundle, envslots, fatfs, loaders, store, update
from tests.smalldisk import sha256
from tests.service.fatdisk import (TOOLS, fsck, make_bundle, make_disk,
                                   mdir_names, mtype)

pytestmark = pytest.mark.needs(*TOOLS, "mmove", "mdeltree")


def installed(tmp_path):
    """A FAT as install leaves it, with a store image: the Service."""
    service = make_disk(str(tmp_path / "disk.img"))
    make_bundle(str(tmp_path / "b1"), version="1.0", size=300000)
    b1 = bundle.load(str(tmp_path / "b1"))
    with fatfs.open_fat(service) as fat:
        loaders.install_efi(fat, b1, "shim")
        envslots.write_slot(fat, b1)
        envslots.switch(fat, "e1", service, "shim")
        fat.makedirs("/store")
        fat.put(b"an image", "/store/prod.rdi")
    return service


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_update(tmp_path):
    service = installed(tmp_path)
    make_bundle(str(tmp_path / "b2"), version="2.0")
    steps = []
    got = update.update(service.disk, str(tmp_path / "b2"),
                        progress=steps.append, service=service)
    assert got["old_slot"] == "e1" and got["new_slot"] == "e2"
    assert got["version"] == "2.0" and got["old_version"] == "1.0"
    assert got["removed"] == ["e1"] and got["store"] == ["prod"]
    assert got["efi_loader"] == "shim"
    assert "switching the loaders to e2" in steps
    assert mdir_names(service, "/bwpart/env") == ["e2"]
    for cfg in envslots.CONFIGS:
        assert b"/bwpart/env/e2/vmlinuz" in mtype(service, cfg)
    b2 = json.loads((tmp_path / "b2" / "bundle.json").read_text())
    assert sha(mtype(service, "/bwpart/env/e2/initrd.img")) == \
        b2["files"]["initrd.img"]
    assert mtype(service, "/store/prod.rdi") == b"an image"
    assert fsck(service, str(tmp_path))[0] == 0


def test_update_refused_without_room(tmp_path):
    """A store that leaves no room for a second environment: refused
    before any write (NoSpaceError), the old slot still active."""
    service = installed(tmp_path)
    make_bundle(str(tmp_path / "b2"), version="2.0", size=300000)
    with fatfs.open_fat(service) as fat:
        filler = tmp_path / "filler"
        filler.write_bytes(b"\0" * (fat.free() - 600000))
        fat.put(str(filler), "/store/filler.rdi")
    before = sha256(service.disk)
    with pytest.raises(NoSpaceError, match="environment needs 2 MiB"):
        update.update(service.disk, str(tmp_path / "b2"), service=service)
    assert sha256(service.disk) == before     # nothing written
    with fatfs.open_fat(service) as fat:
        assert envslots.active(fat)[0] == "e1"


CHILD = textwrap.dedent("""
    import os, sys, time
    from diskimage.service import update
    from tests.service.fatdisk import Service
    service = Service(*eval(sys.argv[1]))
    def progress(text):
        # The kernel of the new slot is written and read back; the
        # initramfs is next: tell the parent, which kills us here.
        if text.endswith("/e2/initrd.img"):
            os.write(1, b"half\\n")
            time.sleep(600)
    update.update(service.disk, sys.argv[2], progress=progress,
                  service=service)
    os.write(1, b"finished\\n")
""")


def test_update_killed_half_way_keeps_the_old(tmp_path):
    service = installed(tmp_path)
    make_bundle(str(tmp_path / "b2"), version="2.0")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, repr(tuple(service)),
         str(tmp_path / "b2")], stdout=subprocess.PIPE,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))))
    try:
        assert child.stdout.readline() == b"half\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    # The new slot is there, half: a kernel, no initramfs, no bundle.json.
    assert mdir_names(service, "/bwpart/env") == ["e1", "e2"]
    assert mdir_names(service, "/bwpart/env/e2") == ["vmlinuz"]
    # Every config still boots e1, whose files are whole.
    for cfg in envslots.CONFIGS:
        assert b"/bwpart/env/e1/vmlinuz" in mtype(service, cfg)
        assert not fatfs.open_fat(service).exists(cfg + ".new")
    b1 = json.loads((tmp_path / "b1" / "bundle.json").read_text())
    for name in ("vmlinuz", "initrd.img"):
        assert sha(mtype(service, f"/bwpart/env/e1/{name}")) == \
            b1["files"][name]
    with fatfs.open_fat(service) as fat:
        assert envslots.active(fat)[0] == "e1"
    assert store.ls(service)[0]["name"] == "prod"
    assert fsck(service, str(tmp_path))[0] == 0
    # The next update removes the half slot and switches to a new one.
    got = update.update(service.disk, str(tmp_path / "b2"), service=service)
    assert got["old_slot"] == "e1" and got["new_slot"] == "e2"
    assert got["removed"] == ["e1", "e2"]   # the half e2, then the old e1
    assert mdir_names(service, "/bwpart/env") == ["e2"]
    assert mtype(service, "/store/prod.rdi") == b"an image"
    assert fsck(service, str(tmp_path))[0] == 0


@pytest.mark.needs("sfdisk", "blkid", "losetup", root=True)
def test_update_with_size_grows_first(tmp_path):
    """On part A's install: update --size grows the partition (tail moved,
    FAT grown) before the new slot is written; the store is kept."""
    from diskimage.service import install, layout, partition, plan, tail
    MiB = 1 << 20
    disk = str(tmp_path / "d.img")
    with open(disk, "wb") as f:
        f.truncate(1500 * MiB)
    subprocess.run(["sfdisk", "-q", disk], check=True, text=True,
                   input="label: gpt\nstart=2048, size=300MiB\n")
    make_bundle(str(tmp_path / "b1"), version="1.0")
    make_bundle(str(tmp_path / "b2"), version="2.0")
    install.install(plan.plan_install(disk, str(tmp_path / "b1"),
                                      size=512 * MiB, firmware="uefi",
                                      efi_loader="shim"))
    service = partition.find_service(disk)
    record = tail.read_record(service)
    with fatfs.open_fat(service) as fat:
        fat.makedirs("/store")
        fat.put(b"an image", "/store/prod.rdi")
        free_before = fat.free()
    got = update.update(disk, str(tmp_path / "b2"), size=768 * MiB)
    assert got["grown"] == {"old_size": 512 * MiB, "new_size": 768 * MiB}
    assert (got["old_slot"], got["new_slot"]) == ("e1", "e2")
    service = partition.find_service(disk)
    assert service.size == 768 * MiB
    after = tail.read_record(service)
    assert after["partition"]["part_id"] == record["partition"]["part_id"]
    assert after["partition"]["size"] == 768 * MiB      # resealed
    with fatfs.open_fat(service) as fat:
        assert fat.free() > free_before + 200 * MiB
        assert fat.get("/store/prod.rdi") == b"an image"
        assert envslots.active(fat)[1]["version"] == "2.0"
        assert fat.exists(layout.RECORD_PATH)
    assert fsck(service, str(tmp_path))[0] == 0


# -- the signed chain replaced (loaders.stage_efi, commit_efi) ---------------

SIGNED = ("shimx64.efi", "grubx64.efi", "mmx64.efi")
EFI = "/EFI/rdeploy"


def chain(tag):
    """Stand-ins for shim, GRUB and MokManager of one bundle."""
    return {n: f"{tag} {n}\n".encode() * 5000 for n in SIGNED}


def installed_signed(tmp_path):
    """As installed(), the bundle carrying its own signed chain ("old")."""
    service = make_disk(str(tmp_path / "disk.img"))
    make_bundle(str(tmp_path / "b1"), version="1.0", size=300000,
                extra=chain("old"))
    b1 = bundle.load(str(tmp_path / "b1"))
    with fatfs.open_fat(service) as fat:
        loaders.install_efi(fat, b1, "shim")
        envslots.write_slot(fat, b1)
        envslots.switch(fat, "e1", service, "shim")
        fat.makedirs("/store")
        fat.put(b"an image", "/store/prod.rdi")
    make_bundle(str(tmp_path / "b2"), version="2.0", extra=chain("new"))
    return service


def loader_tags(service):
    """{name: "old" | "new" | None (absent)} of the files on the FAT."""
    names = mdir_names(service, EFI)
    return {n: mtype(service, f"{EFI}/{n}").split(b" ")[0].decode()
            if n in names else None for n in SIGNED}


def test_update_replaces_the_signed_chain(tmp_path):
    service = installed_signed(tmp_path)
    assert loader_tags(service) == dict.fromkeys(SIGNED, "old")
    steps = []
    got = update.update(service.disk, str(tmp_path / "b2"),
                        progress=steps.append, service=service)
    assert got["loaders"] == [f"{EFI}/grubx64.efi", f"{EFI}/mmx64.efi",
                              f"{EFI}/shimx64.efi"]
    for name, data in chain("new").items():
        assert mtype(service, f"{EFI}/{name}") == data
    assert mdir_names(service, EFI) == sorted(SIGNED + ("grub.cfg",))
    # GRUB before the configs switch, shim after them
    order = [s for s in steps if s.startswith(("replacing", "switching"))]
    assert order == [f"replacing {EFI}/grubx64.efi",
                     f"replacing {EFI}/mmx64.efi", "switching the loaders "
                     "to e2", f"replacing {EFI}/shimx64.efi"]
    assert fsck(service, str(tmp_path))[0] == 0
    # the same chain again: nothing to replace
    make_bundle(str(tmp_path / "b3"), version="3.0", extra=chain("new"))
    assert update.update(service.disk, str(tmp_path / "b3"),
                         service=service)["loaders"] == []


def test_update_without_a_chain_keeps_the_loaders(tmp_path):
    service = installed_signed(tmp_path)
    make_bundle(str(tmp_path / "plain"), version="2.0")
    got = update.update(service.disk, str(tmp_path / "plain"),
                        service=service)
    assert got["loaders"] == [] and got["new_slot"] == "e2"
    assert loader_tags(service) == dict.fromkeys(SIGNED, "old")


class Cut(KeyboardInterrupt):
    pass


@pytest.mark.parametrize("at", [
    f"writing {EFI}/grubx64.efi.new", f"writing {EFI}/shimx64.efi.new",
    f"replacing {EFI}/grubx64.efi", f"replacing {EFI}/mmx64.efi",
    "switching the loaders to e2", f"replacing {EFI}/shimx64.efi"])
def test_an_update_cut_at_any_step_leaves_a_working_pair(tmp_path, at):
    """Cut (an interrupt at that step, before it is done): never a new
    shim in front of an old GRUB; the configs name a whole slot; the next
    update finishes the job."""
    service = installed_signed(tmp_path)

    def progress(step):
        if step == at:
            raise Cut(step)
    with pytest.raises(Cut):
        update.update(service.disk, str(tmp_path / "b2"), progress=progress,
                      service=service)
    tags = loader_tags(service)
    assert (tags["shimx64.efi"], tags["grubx64.efi"]) in \
        {("old", "old"), ("old", "new"), ("new", "new")}
    if at == f"replacing {EFI}/shimx64.efi":
        assert tags == {"shimx64.efi": "old", "grubx64.efi": "new",
                        "mmx64.efi": "new"}
    with fatfs.open_fat(service) as fat:
        slot, _ = envslots.active(fat)
        assert fat.exists(f"/bwpart/env/{slot}/vmlinuz")
        assert fat.exists(f"/bwpart/env/{slot}/initrd.img")
    update.update(service.disk, str(tmp_path / "b2"), service=service)
    assert loader_tags(service) == dict.fromkeys(SIGNED, "new")
    assert not any(n.endswith(".new") for n in mdir_names(service, EFI))


def test_an_interrupted_update_says_what_it_left(tmp_path):
    """The interrupt carries (exc.done, the command's message) where each
    loader stands and what is left over (trial 15 finding 6: it said
    'nothing was left that looks complete' with BIOS on the new slot)."""
    service = installed(tmp_path)
    make_bundle(str(tmp_path / "b2"), version="2.0")

    def progress(step):
        if step == "writing /bwpart/env/e2/initrd.img":
            raise Cut(step)
    with pytest.raises(Cut) as cut:
        update.update(service.disk, str(tmp_path / "b2"), progress=progress,
                      service=service)
    assert cut.value.done == (
        f"{service.disk}: update cut short: the loaders boot slot e1; left "
        f"over: slot e2 (no config names it); the next bwpart update "
        f"cleans them up")
    with fatfs.open_fat(service) as fat:      # as a cut between the pairs
        envslots.write_slot(fat, bundle.load(str(tmp_path / "b2")))
        line = envslots.cmdline("console=ttyS0", service)
        for path in envslots.PAIRS["bios"]:
            fat.put(envslots.syslinux_cfg("e3", line), path)
        assert update.cut_short(service.disk, fat) == (
            f"{service.disk}: update cut short: BIOS boots slot e3, UEFI "
            f"slot e1 (an update was cut between the loaders); left over: "
            f"slot e2 (no config names it); the next bwpart update cleans "
            f"them up")
    update.update(service.disk, str(tmp_path / "b2"), service=service)
    with fatfs.open_fat(service) as fat:
        assert envslots.left_text(fat) is None
