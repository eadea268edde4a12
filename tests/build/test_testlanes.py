"""build/testlanes.py runs each lane in a mount namespace of its own: a
filesystem one lane mounts is not copied into the namespaces the other
lane's `ip netns exec` makes (which kept a test's ext4 mounted after its
umount: "not cleanly unmounted" when captured)."""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "build"))
import testlanes  # noqa: E402


@pytest.mark.needs("unshare", "mount", root=True)
def test_a_lane_mount_stays_in_its_lane(tmp_path):
    prefix = testlanes._own_mounts()
    assert prefix[:2] == ["unshare", "--mount"]
    where = tmp_path / "mnt"
    where.mkdir()
    # mounted inside the prefix, and still mounted there while we look
    child = subprocess.Popen(prefix + [
        "sh", "-c", f"mount -t tmpfs lane-probe {where} && echo up && "
        "read line"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"up\n"
        with open("/proc/self/mountinfo") as f:
            assert str(where) not in f.read()
    finally:
        child.communicate(b"\n", timeout=10)
    assert child.returncode == 0
