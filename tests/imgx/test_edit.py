"""imgx put/rm/mkdir/mv on ext4, FAT32, NTFS and exFAT, then `rdeploy
restore` of the edited image onto a disk file: every filesystem checks
clean with its own fsck and holds exactly the expected files.  A failed
edit leaves the image byte for byte as it was."""

import copy
import os
import shutil
import subprocess
import sys

import pytest

import demodisk
from diskimage.image.reader import ImageReader

from tests.signals import INTERRUPTIBLE, wait_for
from tests.imgx_helpers import (ROOT, capture_disk, demo_image, imgx, ok,
                                one_line_error)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    _, image, manifest, _ = demo_image(tmp_path_factory, "imgx-edit", 60,
                                       codec="zstd", description="golden",
                                       split=2 << 20)
    return image, manifest


def _restore(image, target):
    result = subprocess.run([sys.executable, "-m", "rdeploy", "restore",
                             image, target, "--yes", "--quiet"], cwd=ROOT,
                            capture_output=True)
    assert result.returncode == 0, result.stderr.decode()


def _copy_image(image, dest):
    with ImageReader(str(image)) as reader:
        paths = reader.source.paths
    for path in paths:
        shutil.copy(path, dest / os.path.basename(path))
    return dest / os.path.basename(str(image))


@pytest.mark.parametrize("number", [1, 2, 3])
def test_edits_restore_to_a_clean_disk_with_the_expected_tree(
        demo, tmp_path, number):
    golden, manifest = demo
    image = _copy_image(golden, tmp_path)
    expected = copy.deepcopy(manifest)
    files = expected["partitions"][number]["files"]
    src = tmp_path / "src"
    added = demodisk.make_tree(src, 12, seed=99)
    single = tmp_path / "naïve note.txt"
    single.write_bytes(b"put me in\n" * 100)
    victim = sorted(files)[3]
    top_dirs = sorted({r.split("/")[0] for r in files if "/" in r})
    gone_dir = top_dirs[0]

    ok("put", src, f"{image}:{number}/")
    files.update({f"src/{rel}": d for rel, d in added.items()})
    ok("put", single, f"{image}:{number}/src/renamed.txt")
    files["src/renamed.txt"] = demodisk.sha256_file(single)
    ok("mkdir", f"{image}:{number}/Neue Größe")
    ok("mv", f"{image}:{number}/{victim}", "/Neue Größe/moved.bin")
    files["Neue Größe/moved.bin"] = files.pop(victim)
    ok("rm", "-r", f"{image}:{number}/{gone_dir}")
    for rel in [r for r in files if r.startswith(gone_dir + "/")]:
        del files[rel]
    one = sorted(r for r in files if r.startswith("src/"))[0]
    ok("rm", f"{image}:{number}/{one}")
    del files[one]

    with ImageReader(str(image)) as reader:
        meta = reader.metadata
        assert len(reader.source.paths) > 1          # still split
    assert meta["description"] == "golden"
    assert meta["compression"]["codec"] == "zstd"
    assert len(meta["history"]) == 6
    assert ok("info", image).decode().count("\nedited: ") == 6
    assert not [p for p in os.listdir(tmp_path) if "partial" in p
                or p.startswith(".imgx")]
    result = imgx("diff", golden, image, str(number))
    assert result.returncode == 1, result.stderr     # different, as diff(1)
    changes = result.stdout.decode().splitlines()
    before = manifest["partitions"][number]["files"]
    assert {f"- {number}/{r}" for r in before if r not in files} | \
        {f"+ {number}/{r}" for r in files if r not in before} <= set(changes)
    assert not [c for c in changes if c.startswith("M ")]
    disk = tmp_path / "restored.img"
    _restore(image, disk)
    assert demodisk.check_disk(disk, expected) == []


def test_failed_edit_leaves_the_image_intact(demo, tmp_path):
    golden, manifest = demo
    image = _copy_image(golden, tmp_path)
    before = {p: demodisk.sha256_file(tmp_path / p) for p in os.listdir(tmp_path)}
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:                   # larger than partition 2
        f.truncate(80 << 20)
    result = imgx("put", big, f"{image}:2/")
    err = one_line_error(result, 6)              # no space, as documented
    assert "no space left in partition 2" in err and "80.0 MiB" in err
    os.unlink(big)
    after = {p: demodisk.sha256_file(tmp_path / p) for p in os.listdir(tmp_path)}
    assert after == before


def test_edit_refusals(demo, tmp_path):
    golden, _ = demo
    image = _copy_image(golden, tmp_path)
    os.chmod(image, 0o444)
    err = one_line_error(imgx("mkdir", f"{image}:1/x"), 5)
    assert "read-only" in err
    os.chmod(image, 0o644)
    one_line_error(imgx("rm", f"{image}:1/lost+found"), 3)   # needs -r
    one_line_error(imgx("mkdir", f"{image}:1/lost+found"), 3)
    one_line_error(imgx("mkdir", f"{image}:1/no/such/parent"), 3)
    one_line_error(imgx("put", tmp_path / "missing", f"{image}:1/"), 3)
    one_line_error(imgx("rm", f"{image}:1/not-there"), 3)
    (tmp_path / "other.rdi").write_bytes(b"")
    one_line_error(imgx("mv", f"{image}:1/lost+found",
                        f"{tmp_path / 'other.rdi'}:1/x"), 2)


@pytest.mark.needs("mkfs.exfat", "mount.exfat-fuse")
def test_exfat_read_and_edit(tmp_path):
    tree = tmp_path / "tree"
    digests = demodisk.make_tree(tree, 40, seed=3)
    disk = tmp_path / "exfat.img"
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.exfat", "-L", "EXF", disk], check=True,
                   capture_output=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with demodisk.loop_device(disk, 0, 64 << 20, read_only=False) as dev:
        subprocess.run(["mount.exfat-fuse", dev, mnt], check=True)
        try:
            shutil.copytree(tree, mnt, dirs_exist_ok=True,
                            copy_function=shutil.copyfile)
        finally:
            subprocess.run(["umount", mnt], check=True)
    image = tmp_path / "exfat.rdi"
    capture_disk(disk, image)
    ok("get", "-R", f"{image}:/", tmp_path / "out")
    assert demodisk.digest_tree(tmp_path / "out") == digests
    first = sorted(digests)[0]
    assert ok("cat", f"{image}:/{first}") == (tree / first).read_bytes()
    note = tmp_path / "note.txt"
    note.write_text("exfat edit\n")
    ok("put", note, f"{image}:/")
    ok("rm", f"{image}:/{first}")
    ok("get", "-R", f"{image}:/", tmp_path / "out2")
    expected = dict(digests, **{"note.txt": demodisk.sha256_file(note)})
    del expected[first]
    assert demodisk.digest_tree(tmp_path / "out2") == expected


@pytest.mark.needs("mkfs.exfat", "mount.exfat-fuse")
def test_exfat_fragmented_file_follows_its_fat_chain(tmp_path):
    """A file written into the holes of a nearly full volume has a FAT
    chain (NoFatChain clear); it reads back whole."""
    disk = tmp_path / "frag.img"
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.exfat", disk], check=True, capture_output=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    big = os.urandom(5 << 20)
    with demodisk.loop_device(disk, 0, 16 << 20, read_only=False) as dev:
        subprocess.run(["mount.exfat-fuse", dev, mnt], check=True)
        try:
            for i in range(6):
                (mnt / f"f{i}").write_bytes(os.urandom(2 << 20))
            os.unlink(mnt / "f1")
            os.unlink(mnt / "f3")
            (mnt / "big").write_bytes(big)
        finally:
            subprocess.run(["umount", mnt], check=True)
    image = tmp_path / "frag.rdi"
    capture_disk(disk, image)
    from diskimage.image.browse import Image
    with Image(str(image)) as opened:
        fs = opened.filesystem(None)
        node = fs.lookup("big")
        assert not node.handle[0].stream.flags.not_fragmented
    assert ok("cat", f"{image}:/big") == big


def _stuck(proc):
    """What a process that did not exit is doing: its Python stacks (py-spy,
    when installed) and its children."""
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(
        sys.executable), "py-spy")
    out = []
    if os.path.exists(spy):
        out.append(subprocess.run([spy, "dump", "--pid", str(proc.pid)],
                                  capture_output=True, text=True).stdout)
    out.append(subprocess.run(["ps", "-o", "pid,ppid,stat,wchan:20,args",
                               "--ppid", str(proc.pid)], capture_output=True,
                              text=True).stdout)
    proc.kill()
    proc.communicate()
    return "\n".join(out)


def _signal_at(proc, moment, tmp_path, image, sig):
    """Send `sig` to the put at `moment`: "start" (at once, perhaps before
    Python has its handler), "scratch" (its scratch directory exists: the
    image is being restored into the scratch disk), "mounted" (the scratch
    filesystem is mounted) or "partial" (the new image is being written)."""
    def there():
        if moment == "scratch":
            return any(p.startswith(".imgx-edit-")
                       for p in os.listdir(tmp_path))
        if moment == "mounted":
            return str(tmp_path) in open("/proc/mounts").read()
        return os.path.exists(f"{image}.partial")

    if moment != "start":
        wait_for(lambda: there() or proc.poll() is not None, what=moment)
        assert proc.poll() is None, \
            f"the put ended before {moment}: {proc.stderr.read().decode()}"
    proc.send_signal(sig)


@pytest.mark.parametrize("moment", ["start", "scratch", "mounted",
                                    "partial"])
def test_interrupted_edit_leaves_the_image_intact(demo, tmp_path, moment):
    """Ctrl-C at a known moment of a put: before the new image is being
    written, the old image stays byte for byte as it was and the exit is
    130 (or the signal's own death at "start", before Python installs its
    handler); while it is written ("partial"), either that, or the edit
    finished and the image is a whole new one that holds the file (a
    Ctrl-C in the last milliseconds, while Python shuts down, can do that
    and still end the process by SIGINT).  Never a partial file, a scratch
    directory, a loop device or a mount."""
    import signal
    golden, manifest = demo
    image = _copy_image(golden, tmp_path)
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "big.bin").write_bytes(os.urandom(60 << 20))
    before = {p: demodisk.sha256_file(tmp_path / p)
              for p in os.listdir(tmp_path) if p.endswith(".rdi")
              or ".r0" in p}
    proc = subprocess.Popen([sys.executable, "-m", "imgx", "put",
                             payload / "big.bin", f"{image}:1/"],
                            cwd=ROOT, stderr=subprocess.PIPE, **INTERRUPTIBLE)
    try:
        _signal_at(proc, moment, tmp_path, image, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"imgx put still running 120 s after Ctrl-C at "
                    f"{moment}:\n{_stuck(proc)}")
    finally:
        proc.kill()
    left = [p for p in os.listdir(tmp_path)
            if "partial" in p or p.startswith(".imgx")]
    assert left == [], (moment, proc.returncode, err.decode())
    loops = subprocess.run(["losetup", "-a"], capture_output=True,
                           text=True).stdout
    assert str(tmp_path) not in loops
    assert str(tmp_path) not in open("/proc/mounts").read()
    after = {p: demodisk.sha256_file(tmp_path / p) for p in before
             if os.path.exists(tmp_path / p)}
    if moment == "start":
        # 130: the runner's KeyboardInterrupt; -SIGINT: the signal came
        # before Python set up its handler; 1: Python's own "fatal error"
        # when the signal lands while it imports its site module.
        assert proc.returncode in (130, -signal.SIGINT) or \
            b"Fatal Python error" in err, (proc.returncode, err.decode())
    elif moment != "partial" or after == before:
        assert proc.returncode == 130, err.decode()
        assert err.decode().strip().splitlines() == [
            "imgx: interrupted; nothing was left that looks complete"]
    if after != before:
        assert moment == "partial", "an interrupted put changed the image"
        ok("verify", image)             # whole, checksums and all
        ok("ls", f"{image}:1/big.bin")
    assert after == before or proc.returncode in (0, 130, -signal.SIGINT)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_terminated_edit_leaves_the_image_intact(demo, tmp_path, sig):
    """SIGTERM or SIGHUP in the middle of a put (once its scratch disk is
    being worked on) cleans up as Ctrl-C does (issue 11 item 13): exit
    128 + the signal, the image byte for byte as it was, no partial file,
    scratch directory, loop device or mount."""
    import signal
    golden, _ = demo
    image = _copy_image(golden, tmp_path)
    payload = tmp_path / "big.bin"
    payload.write_bytes(os.urandom(40 << 20))
    before = {p: demodisk.sha256_file(tmp_path / p)
              for p in os.listdir(tmp_path) if p != "big.bin"}
    proc = subprocess.Popen([sys.executable, "-m", "imgx", "put", payload,
                             f"{image}:1/"], cwd=ROOT, stderr=subprocess.PIPE,
                            **INTERRUPTIBLE)
    _signal_at(proc, "mounted", tmp_path, image, getattr(signal, sig))
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"imgx put still running 120 s after {sig}:\n"
                    f"{_stuck(proc)}")
    assert proc.returncode == 128 + getattr(signal, sig), err.decode()
    assert f"interrupted by {sig}" in err.decode()
    after = {p: demodisk.sha256_file(tmp_path / p)
             for p in os.listdir(tmp_path) if p != "big.bin"}
    assert after == before
    assert str(tmp_path) not in subprocess.run(
        ["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in open("/proc/mounts").read()
