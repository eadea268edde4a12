"""What the fault tests share: the small disk (tests/conftest.py) and its
image, and the marks of the NBD layers."""

import pytest

from tests.needs import NBD_TOOLS

#: A test over an nbdkit + nbdfuse layer (tests/faultlayers.py).
nbd = pytest.mark.needs(*NBD_TOOLS, "sfdisk", "mkfs.ext4", root=True,
                        fuse=True)


@pytest.fixture(scope="session")
def fault_disk(tmp_path_factory, shared_dir):
    """tests/faults/faultdisk.py's disk, its image (rdeploy capture) and
    its files' digests, and the other disk to restore over: read-only."""
    from tests import needs
    from tests.faults import faultdisk
    from tests.rdeploy_helpers import rdeploy
    needs.require("sfdisk", "mkfs.ext4")
    d = shared_dir.directory
    disk, image = d / "fault-disk.img", d / "fault-disk.rdi"
    digests = faultdisk.build(disk, tmp_path_factory.mktemp("fault-files"))
    result = rdeploy("capture", disk, image, "-q")
    assert result.returncode == 0, result.stderr.decode()
    other = faultdisk.build_other(d / "fault-other.img")
    shared_dir.seal(disk, image, other)
    return {"disk": disk, "image": image, "digests": digests,
            "other": other}


@pytest.fixture
def kernel():
    """Loop devices, each detached after the test."""
    import subprocess
    from tests.rdeploy_helpers import run
    made = []

    class Kernel:
        def loop(self, backing, *options):
            dev = run("losetup", "--find", "--show", *options, backing)
            made.append(dev)
            return dev

    yield Kernel()
    for dev in reversed(made):
        subprocess.run(["losetup", "-d", dev], capture_output=True)


@pytest.fixture(scope="session")
def clean_restore(fault_disk, tmp_path_factory):
    """The sha256 of the other disk after an uninterrupted `rdeploy
    restore` of the image over it: what a resumed or power-cut restore
    must end up as, byte for byte."""
    from tests.rdeploy_helpers import rdeploy
    from tests.shared import copy
    from tests.smalldisk import sha256
    target = copy(fault_disk["other"],
                  tmp_path_factory.mktemp("clean") / "target.img")
    result = rdeploy("restore", fault_disk["image"], target, "--yes")
    assert result.returncode == 0, result.stderr.decode()
    digest = sha256(target)
    target.unlink()
    return digest
