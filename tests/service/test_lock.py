"""One bwpart changing a disk at a time (diskimage/service/lock.py), with
two real processes: a child that holds the lock of a disk (file or loop
device) while the test's process, and a second child through the
commands' runner (exit 9), try every writing operation on it.  Each is
refused at once, BusyError naming the disk and the holder's pid, and the
disk's bytes are the same after (servicedisk.fingerprint); reads work."""

import subprocess
import sys
import textwrap
import types

import pytest

from diskimage.errors import BusyError
from diskimage.service import (arming, bootnext, install, lock, partition,
                               remove, serviceboot, state, status, store,
                               update)
from tests.service import servicedisk

pytestmark = pytest.mark.needs("sfdisk", "mkfs.fat", "mcopy", "mmove")

HOLDER = textwrap.dedent("""
    import sys
    from diskimage.service import lock
    with lock.held(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.read()
""")

BUSY = "another bwpart is changing it"


class Holder:
    """A child process holding the lock on `disk` until stop()."""

    def __init__(self, disk):
        self.child = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(disk)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        assert self.child.stdout.readline() == "held\n"
        self.pid = self.child.pid

    def stop(self):
        self.child.stdin.close()
        assert self.child.wait(timeout=60) == 0


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk.img"
    servicedisk.make(path, "dos", fat=True)
    return str(path)


def job(tmp_path):
    path = tmp_path / "job.sh"
    path.write_text("exit 0\n")
    return str(path)


def refused(call, disk, pid):
    with pytest.raises(BusyError) as got:
        call()
    assert str(got.value).startswith(f"{disk}: {BUSY} (pid {pid})")
    assert got.value.exit_code == 9


def test_every_writing_operation_is_refused_while_another_holds_it(
        tmp_path, disk):
    image = tmp_path / "prod.rdi"
    image.write_bytes(b"an image")
    service = partition.find_service(disk)
    before = servicedisk.fingerprint(disk)
    holder = Holder(disk)
    try:
        for call in (
                lambda: bootnext.boot_next(disk, job(tmp_path), tries=2,
                                           firmware="bios"),
                lambda: store.add(service, str(image)),
                lambda: store.rm(service, "prod"),
                lambda: remove.remove(disk),
                lambda: install.install(types.SimpleNamespace(disk=disk)),
                lambda: partition.grow(service, service.size + (1 << 20)),
                lambda: arming.arm(service, "bios"),
                lambda: arming.disarm(service),
                lambda: serviceboot.run(service.part_id, disk=disk,
                                        mount=False)):
            refused(call, disk, holder.pid)
        # reads do not lock
        assert status.status(disk)["installed"] is True
        assert store.ls(service) == []
        assert servicedisk.fingerprint(disk) == before
    finally:
        holder.stop()
    # the lock goes with its holder: the same calls work now
    bootnext.boot_next(disk, job(tmp_path), tries=2, firmware="bios")
    assert state.load(service)["job"]["tries"] == 2


def test_update_is_refused_while_another_holds_it(tmp_path, disk):
    from tests.service.fatdisk import make_bundle
    make_bundle(str(tmp_path / "b2"), version="2.0")
    service = partition.find_service(disk)
    before = servicedisk.fingerprint(disk)
    holder = Holder(disk)
    try:
        refused(lambda: update.update(disk, str(tmp_path / "b2"),
                                      service=service), disk, holder.pid)
    finally:
        holder.stop()
    assert servicedisk.fingerprint(disk) == before


def test_the_second_command_exits_9(tmp_path, disk):
    """Two children: the holder, and boot-next through the commands'
    runner (cliutil.runner.run), which says one line and exits 9."""
    script = textwrap.dedent("""
        import sys
        from cliutil import runner
        from diskimage.service import bootnext
        def main(argv):
            bootnext.boot_next(argv[0], argv[1], tries=2, firmware="bios")
        sys.exit(runner.run("bwpart", main, sys.argv[1:]))
    """)
    before = servicedisk.fingerprint(disk)
    holder = Holder(disk)
    try:
        second = subprocess.run([sys.executable, "-c", script, disk,
                                 job(tmp_path)], capture_output=True,
                                text=True, timeout=120)
    finally:
        holder.stop()
    assert second.returncode == 9
    assert second.stderr == (f"bwpart: error: {disk}: {BUSY} (pid "
                             f"{holder.pid}); nothing changed (try again "
                             f"when it is done)\n")
    assert servicedisk.fingerprint(disk) == before


def test_the_lock_is_reentrant_in_one_process(disk):
    service = partition.find_service(disk)
    with lock.held(disk):
        with lock.held(disk):
            arming.arm(service, "bios")     # takes it a third time
        arming.disarm(service)
    # all let go: another process gets it
    Holder(disk).stop()


@pytest.mark.needs("losetup", root=True)
def test_a_block_device_is_locked_alike(tmp_path, disk):
    dev = subprocess.run(["losetup", "--find", "--show", disk], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        holder = Holder(dev)
        try:
            refused(lambda: bootnext.boot_next(dev, job(tmp_path), tries=1,
                                               firmware="bios"),
                    dev, holder.pid)
        finally:
            holder.stop()
        summary = bootnext.boot_next(dev, job(tmp_path), tries=1,
                                     firmware="bios")
        assert summary["tries"] == 1
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
