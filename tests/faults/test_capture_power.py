"""A power cut under a capture's output filesystem (tests/faultlayers.
VolatileExt4: ext4 on a loop device over nbdkit's writeback cache, whose
unflushed writes SIGKILL drops): right after the capture reports success
the image must be on the medium, whole, under its name; a cut in the
middle must leave nothing under the name."""

import signal
import subprocess

import pytest

from tests import faultlayers
from tests.faults.conftest import nbd
from tests.faults.test_capture_faults import HELD
from tests.rdeploy_helpers import ROOT, command, env, leftovers, rdeploy
from tests.signals import wait_for

needs_loop = pytest.mark.needs("losetup", "mkfs.ext4", root=True)


@nbd
@needs_loop
def test_power_loss_right_after_a_capture(small_disk_ro, tmp_path):
    """Exit 0, then the power goes at once: after the journal's replay the
    image is there under its name (the file and its directory were
    fsynced), verifies, and no partial is left."""
    out = faultlayers.VolatileExt4(tmp_path / "out.ext4", tmp_path)
    with out:
        result = rdeploy("capture", small_disk_ro, out.where / "disk.rdi")
        out.power_loss()
    assert result.returncode == 0, result.stderr.decode()
    with out.mount() as where:
        image = where / "disk.rdi"
        assert leftovers(image) == ["disk.rdi"]
        verified = rdeploy("verify", image)
        assert verified.returncode == 0, verified.stderr.decode()


@nbd
@needs_loop
def test_power_loss_during_a_capture(small_disk_ro, tmp_path):
    """The source's reads held in the middle (tests/faultlayers.Held), the
    output's power cut, then the source released: the capture fails (one
    line, never exit 0), and the medium holds no NAME, at most a
    NAME.partial (which the next capture replaces)."""
    out = faultlayers.VolatileExt4(tmp_path / "out.ext4", tmp_path)
    with out, faultlayers.Held(small_disk_ro, tmp_path / "src",
                               hold=HELD) as source:
        image = out.where / "disk.rdi"
        proc = subprocess.Popen(command("capture", source.path, image),
                                env=env(), cwd=ROOT,
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            wait_for(source.reached.exists, 60, "the held read")
            out.power_loss()
            source.release()
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode not in (0, -signal.SIGKILL), err.decode()
    assert len(err.decode().strip().splitlines()) == 1, err.decode()
    with out.mount() as where:
        assert leftovers(where / "disk.rdi") in ([], ["disk.rdi.partial"])
    print(err.decode())
