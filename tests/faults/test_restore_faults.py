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
    """True once `path` holds a marker past its first checkpoint."""
    found = marker(path)
    return found is not None and found.checkpoint > 0


def assert_incomplete(target, image):
    """No valid table, and a marker that verify-target reports (13)."""
    assert faultdisk.table_seen(target) == []
    result = rdeploy("verify-target", target)
    check(result, 13, "interrupted restore", "--resume")


@nbd
def test_restore_with_target_write_errors(fault_disk, tmp_path):
    """The target's writes fail (EIO, nbdkit's error filter) once the
    restore has wiped the old table, written its marker and passed a
    checkpoint: exit 8, one line saying the target was changed, no valid
    table, the marker says incomplete."""
    image = fault_disk["image"]
    backing = copy(fault_disk["other"], tmp_path / "target.img")
    layer, trigger = faultlayers.failing_writes(backing, tmp_path / "nbd")
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
        "input/output error" in lines[0].lower(), err
    assert_incomplete(backing, image)
