"""What every test directory shares: the `needs` marker and the disks that
many test files use, built once per session.

`@pytest.mark.needs("sfdisk", "mkfs.ext4", root=True, fuse=True)` skips a
test (or a module, as `pytestmark`) whose tools are missing, naming them and
their Debian packages (tests/needs.py); it is checked before any fixture of
the test is built.

A session disk is built once into a directory of its own, made read-only
(chmod a-w) and checked unchanged at the end of the session; a test that
writes gets its own copy (`cp --reflink=auto --sparse=always`) in its
tmp_path.  Root ignores the mode bits, so the end-of-session check is what
catches a test that wrote into a shared disk.
"""

import os
import random
import stat

import pytest

from tests import needs
from tests.shared import Shared, copy
from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import DISK_SIZE, MiB, build_disk


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs"):
        reason = needs.missing(*mark.args, **mark.kwargs)
        if reason:
            pytest.skip(reason)


@pytest.fixture(autouse=True)
def _dev_null_stays():
    """Fails, by name, a test after which the host's /dev/null is no longer
    the null device (once a test run left it a symlink, and every later
    shell redirection wrote a file in /dev); the device is made again so
    the rest of the run is not poisoned."""
    yield
    st = os.lstat("/dev/null")
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3):
        return
    fresh = "/dev/.null-remade"
    os.mknod(fresh, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(fresh, 0o666)
    os.replace(fresh, "/dev/null")
    pytest.fail(f"/dev/null was replaced during this test "
                f"(mode {stat.filemode(st.st_mode)}); it is made again")


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory):
    """Where the session's shared disks live; fails the session's end if a
    test wrote into one of them."""
    shared = Shared(tmp_path_factory.mktemp("shared"))
    yield shared
    changed = shared.changed()
    assert not changed, f"a test wrote into a shared session file: {changed}"


@pytest.fixture(scope="session")
def small_disk_ro(shared_dir):
    """The small GPT disk of tests/smalldisk.py (ext4 and random bytes),
    read-only: for tests that only read it."""
    needs.require("sfdisk", "mkfs.ext4")
    path = build_disk(shared_dir.directory / "disk.img")
    return shared_dir.seal(path)


@pytest.fixture
def small_disk(small_disk_ro, tmp_path):
    """A writable copy of the small disk, tmp_path/disk.img."""
    return copy(small_disk_ro, tmp_path / "disk.img")


@pytest.fixture(scope="session")
def small_images_ro(small_disk_ro, shared_dir):
    """The small disk captured by `rdeploy capture -q` (lz4), whole and
    split in 1 MiB volumes, read-only: {"image": .rdi, "split": [volumes,
    the .rdi last]}."""
    d = shared_dir.directory
    image = d / "disk.rdi"
    result = rdeploy("capture", small_disk_ro, image, "-q")
    assert result.returncode == 0, result.stderr.decode()
    split = d / "split.rdi"
    result = rdeploy("capture", small_disk_ro, split, "--split=1M", "-q")
    assert result.returncode == 0, result.stderr.decode()
    volumes = sorted(d.glob("split.r[0-9]*")) + [split]
    shared_dir.seal(image, *volumes)
    return {"image": image, "split": volumes}


@pytest.fixture(scope="session")
def gpt_demo_ro(shared_dir):
    """demodisk's 256 MiB GPT demo (ext4, FAT32, NTFS with 300 files):
    (path, manifest), read-only."""
    needs.require("sfdisk", "mkfs.ext4", "mkfs.fat", "mcopy", "mkntfs",
                  "ntfs-3g", root=True, fuse=True)
    import demodisk
    path = shared_dir.directory / "gpt-demo.img"
    manifest = demodisk.make_gpt_demo(path)
    return shared_dir.seal(path), manifest


@pytest.fixture(scope="session")
def slow_source(shared_dir):
    """64 MiB with 32 MiB of text-like bytes: lz4 level 12 on one thread
    takes a few seconds over it (rdeploy_helpers.slow_capture), so a second
    process can start in the middle.  Read-only."""
    source = shared_dir.directory / "big.img"
    letters = bytes(b"abcdefghijklmnop"[i % 16] for i in range(256))
    with open(source, "wb") as f:
        f.truncate(DISK_SIZE)
        f.seek(MiB)
        f.write(random.Random(3).randbytes(32 * MiB).translate(letters))
    return shared_dir.seal(source)


@pytest.fixture(scope="session")
def edit_golden_ro(tmp_path_factory, shared_dir):
    """The ext4 with links to host files of tests/imgx_helpers.edit_disk,
    captured: (image, host directory), read-only."""
    needs.require("sfdisk", "mkfs.ext4")
    from tests.imgx_helpers import edit_disk
    image, host = edit_disk(tmp_path_factory.mktemp("edit"))
    shared_dir.seal(image)
    return image, host
