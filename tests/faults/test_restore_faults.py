"""Faults under a restore, injected for real (tests/faultlayers.py): write
errors of the target, SIGKILL, a power cut (nbdkit's writeback cache
killed: unflushed writes dropped) during the restore and right after it.
After each: never a success, no valid partition table on the target (sfdisk
and blkid -p see none) and a restore marker that says incomplete; after a
success, a target that is complete on the medium itself."""

import os
import signal
import subprocess

import pytest

from diskimage import restoremark
from tests import faultlayers
from tests.faults import faultdisk
from tests.faults.conftest import nbd
from tests.rdeploy_helpers import ROOT, check, command, env, rdeploy
from tests.shared import copy
from tests.signals import wait_for
from tests.smalldisk import MiB, read_at, sha256

#: A checkpoint every MiB of written data (restoremark.checkpoint_bytes),
#: so a restore of the few-MiB image has some before it is cut.
CHECKPOINTS = {"RDEPLOY_CHECKPOINT_BYTES": str(MiB)}


def marker(path):
    """The restore marker at sector 0 of `path`, or None."""
    return restoremark.unpack(read_at(path, 0, restoremark.SIZE), 0)


class PipedRestore:
    """`rdeploy restore - TARGET --yes` fed by the test: feed() gives it
    the image up to a byte, so it can go no further than that until fed
    again (or the pipe is closed)."""

    def __init__(self, image, target, *options):
        self.data = open(image, "rb").read()
        self.sent = 0
        self.proc = subprocess.Popen(
            command("restore", "-", target, "--yes", *options),
            env=dict(env(), **CHECKPOINTS), cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)

    def feed(self, upto=None):
        upto = len(self.data) if upto is None else upto
        try:
            self.proc.stdin.write(self.data[self.sent:upto])
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.sent = upto

    def end(self, rest=True):
        """Feed the rest (or not), close the pipe; (exit code, stderr)."""
        if rest:
            self.feed()
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        err = self.proc.stderr.read()
        self.proc.wait(timeout=120)
        return self.proc.returncode, err.decode()

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=60)


def checkpointed(path):
    """True once `path` holds a marker past its first checkpoint.  (Read
    while the restore may be rewriting it: a torn read fails the marker's
    CRC, and is read again.)"""
    from diskimage.errors import IncompleteTargetError
    try:
        found = marker(path)
    except IncompleteTargetError:
        return False
    return found is not None and found.checkpoint > 0


def assert_incomplete(target, image):
    """No valid table, and a marker that verify-target reports (13)."""
    assert faultdisk.table_seen(target) == []
    result = rdeploy("verify-target", target)
    check(result, 13, "interrupted restore", "--resume")


@nbd
@pytest.mark.parametrize("errno_name, words", [
    ("EIO", "input/output error"), ("ENOSPC", "no space left")])
def test_restore_with_target_write_errors(fault_disk, tmp_path, errno_name,
                                          words):
    """The target's writes fail (EIO; ENOSPC: a device that fills up;
    nbdkit's error filter) once the restore has wiped the old table,
    written its marker and passed a checkpoint: exit 8, one line naming the
    error and saying the target was changed, no valid table, the marker
    says incomplete."""
    image = fault_disk["image"]
    backing = copy(fault_disk["other"], tmp_path / "target.img")
    layer, trigger = faultlayers.failing_writes(backing, tmp_path / "nbd",
                                                errno_name)
    with layer:
        restore = PipedRestore(image, layer.path)
        try:
            restore.feed(os.path.getsize(image) // 2)
            wait_for(lambda: checkpointed(backing), 60, "a checkpoint")
            trigger.on()
            code, err = restore.end()
        finally:
            restore.kill()
    assert code == 8, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "the target was changed" in lines[0] and \
        words in lines[0].lower(), err
    assert_incomplete(backing, image)


def assert_complete(target, fault_disk, clean_restore, kernel):
    """fsck clean, the files' digests those of the source, and the whole
    target equal to an uninterrupted restore's, byte for byte."""
    (code, out), digests = faultdisk.ext4_state(target, kernel)
    assert code == 0, out
    assert digests == fault_disk["digests"]
    assert marker(target) is None
    assert sha256(target) == clean_restore


@pytest.mark.needs("sfdisk", "mkfs.ext4", "e2fsck", "debugfs", "losetup",
                   root=True)
def test_sigkill_during_restore_then_verify_target_and_resume(
        fault_disk, clean_restore, kernel, tmp_path):
    """SIGKILL once the restore (fed half the image through a pipe) has
    passed a checkpoint: verify-target says incomplete (13), naming how far
    it got; restore --resume from the image file finishes it: fsck clean,
    files and every byte as an uninterrupted restore's."""
    image = fault_disk["image"]
    target = copy(fault_disk["other"], tmp_path / "target.img")
    restore = PipedRestore(image, target)
    try:
        restore.feed(os.path.getsize(image) // 2)
        wait_for(lambda: checkpointed(target), 60, "a checkpoint")
        restore.proc.send_signal(signal.SIGKILL)
        restore.proc.wait(timeout=60)
    finally:
        restore.kill()
    assert restore.proc.returncode == -signal.SIGKILL
    done = marker(target)
    assert_incomplete(target, image)
    line = rdeploy("verify-target", target).stderr.decode()
    assert f"{done.checkpoint}" in line, line
    resumed = subprocess.run(
        command("restore", image, target, "--resume", "--yes"),
        env=env(), cwd=ROOT, capture_output=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert_complete(target, fault_disk, clean_restore, kernel)
    ok = rdeploy("verify-target", target, image)
    assert ok.returncode == 0, ok.stderr.decode()


@nbd
@pytest.mark.needs("e2fsck", "debugfs", "losetup")
def test_power_loss_right_after_a_restore(fault_disk, clean_restore, kernel,
                                          tmp_path):
    """The target sits behind a writeback cache (nbdkit's cache filter);
    the restore reports success, and at once the power goes (SIGKILL of
    nbdkit: whatever was not flushed is lost).  The medium itself must hold
    the whole restore: the syncs were real."""
    backing = copy(fault_disk["other"], tmp_path / "target.img")
    layer = faultlayers.volatile(backing, tmp_path / "nbd")
    with layer:
        result = rdeploy("restore", fault_disk["image"], layer.path, "--yes")
        layer.power_loss()
    assert result.returncode == 0, result.stderr.decode()
    assert_complete(backing, fault_disk, clean_restore, kernel)


@nbd
@pytest.mark.needs("e2fsck", "debugfs", "losetup")
def test_power_loss_during_a_restore(fault_disk, clean_restore, kernel,
                                     tmp_path):
    """The power goes (nbdkit's writeback cache killed) once the restore
    has passed a checkpoint: the restore fails (exit 8), the medium has no
    valid table and a marker that says incomplete; --resume onto the
    medium finishes it, complete."""
    image = fault_disk["image"]
    backing = copy(fault_disk["other"], tmp_path / "target.img")
    layer = faultlayers.volatile(backing, tmp_path / "nbd")
    with layer:
        restore = PipedRestore(image, layer.path)
        try:
            restore.feed(os.path.getsize(image) // 2)
            wait_for(lambda: checkpointed(backing), 60, "a checkpoint")
            layer.power_loss()
            code, err = restore.end()
        finally:
            restore.kill()
    assert code == 8, err
    assert len(err.strip().splitlines()) == 1, err
    assert_incomplete(backing, image)
    resumed = rdeploy("restore", image, backing, "--resume", "--yes")
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert_complete(backing, fault_disk, clean_restore, kernel)


#: The seed of the stream cuts (random.Random(CUT_SEED)).
CUT_SEED = 16


def restore_cut(stream_file, target):
    """Restore `stream_file` (an image stream cut short) onto `target`
    in-process, read as `rdeploy restore - TARGET` reads its stdin (a
    subprocess each would make 20 cuts take a minute): the DiskImageError
    it raises, or None if it succeeded."""
    from diskimage.errors import DiskImageError
    from diskimage.image.reader import RecordStream
    from diskimage.image.volumes import PipeInput
    from diskimage.restore import plan_restore, run_restore
    with open(stream_file, "rb", buffering=0) as raw:
        try:
            stream = RecordStream(PipeInput(raw))
            plan = plan_restore(stream, str(target))
            run_restore(plan, threads=2, image_name="-")
        except DiskImageError as exc:
            return exc
    return None


def test_stream_cut_at_random_points(fault_disk, tmp_path):
    """The image as a stream cut at 20 seeded random points (one in its
    first 4 KiB: header and metadata): never a success; a target the
    restore had begun writing has no valid table and a restore marker that
    says incomplete; one it had not is unchanged.  Three of the cuts go
    through `rdeploy restore -` from a pipe as well, for the exit code, the
    one line and verify-target's exit 13."""
    import random
    image = fault_disk["image"]
    data = open(image, "rb").read()
    rng = random.Random(CUT_SEED)
    cuts = sorted([rng.randrange(1, 4096)] +
                  [rng.randrange(4096, len(data)) for _ in range(19)])
    before = sha256(fault_disk["other"])
    outcomes = []
    for cut in cuts:
        target = copy(fault_disk["other"], tmp_path / "target.img")
        (tmp_path / "cut.rdi").write_bytes(data[:cut])
        error = restore_cut(tmp_path / "cut.rdi", target)
        assert error is not None, f"cut at {cut}: restored"
        if sha256(target) == before:
            outcomes.append((cut, error.exit_code, "unchanged"))
        else:
            assert faultdisk.table_seen(target) == [], f"cut at {cut}"
            assert marker(target) is not None, f"cut at {cut}: {error}"
            outcomes.append((cut, error.exit_code, "marked"))
        target.unlink()
    assert [o[2] for o in outcomes[1:]] == ["marked"] * 19, outcomes
    for cut, code, outcome in (outcomes[0], outcomes[9], outcomes[-1]):
        target = copy(fault_disk["other"], tmp_path / "target.img")
        result = subprocess.run(command("restore", "-", target, "--yes"),
                                input=data[:cut], env=env(), cwd=ROOT,
                                capture_output=True, timeout=60)
        check(result, code)
        if outcome == "marked":
            check(rdeploy("verify-target", target), 13,
                  "interrupted restore")
        else:
            assert sha256(target) == before
        target.unlink()


@nbd
def test_restore_from_an_image_with_bad_sectors(fault_disk, tmp_path):
    """Sectors in the middle of the image file fail to read (nbdkit's
    ddrescue filter): verify says so, naming the file and the offset (exit
    1); a restore from it fails (exit 8) with the same words, and leaves no
    valid table and a marker that says incomplete; read from stdin, the
    error says how far the stream got, and the new target file is gone.
    (Found here: a bare "Input/output error" without file or offset, from
    image/volumes.py.)"""
    image = fault_disk["image"]
    bad = (os.path.getsize(image) // 2) & ~4095
    target = copy(fault_disk["other"], tmp_path / "target.img")
    with faultlayers.bad_sectors(image, tmp_path / "nbd",
                                 [(bad, 4096)]) as source:
        verified = rdeploy("verify", source.path)
        restored = rdeploy("restore", source.path, target, "--yes")
        with open(source.path, "rb") as stdin:
            streamed = rdeploy("restore", "-", tmp_path / "new.img",
                               "--yes", stdin=stdin)
    for result, code in ((verified, 1), (restored, 8)):
        line = check(result, code, f"{source.path}: read failed at offset "
                     f"{bad}: input/output error")
    assert "the target was changed" in line
    assert_incomplete(target, image)
    # Read as a stream (stdin): the bytes read before the error are named.
    check(streamed, 1, "<stdin>: read failed after", "input/output error")
    assert not (tmp_path / "new.img").exists()


@nbd
def test_imgx_reads_an_image_with_bad_sectors(fault_disk, tmp_path):
    """A bad sector near the end of the chunk that holds the files' data:
    each imgx ls or cat that reaches it (a chunk is read whole) fails with
    the read error and its offset (exit 4 or 1), never "image ends early"
    (found here: pread returns the bytes before a bad sector, and
    image/volumes.read_at took that for the end of the file)."""
    from diskimage.image.reader import ImageReader
    from tests.imgx_helpers import imgx
    image = fault_disk["image"]
    with ImageReader(str(image)) as reader:
        biggest = max(reader.entries, key=lambda e: e.stored_size)
        end = biggest.record_offset + reader.layout.record.size + \
            biggest.stored_size
    bad = (end - 8192) & ~4095
    with faultlayers.bad_sectors(image, tmp_path / "nbd",
                                 [(bad, 4096)]) as source:
        listed = imgx("ls", f"{source.path}:1/")
        results = [imgx("cat", f"{source.path}:1/{name}")
                   for name in faultdisk.FILES]
    failed = [r for r in [listed, *results] if r.returncode != 0]
    assert failed, "no imgx cat reached the bad sector"
    for result in failed:
        err = result.stderr.decode()
        assert result.returncode in (1, 4), err
        assert len(err.strip().splitlines()) == 1, err
        assert f"read failed at offset {bad}: input/output error" in \
            err.lower(), err
