"""Fixtures of the imgx tests: images built once per session, read-only
(tests/shared.py); copy one (tests.shared.copy) before writing to it."""

import os

import pytest

from tests import needs
from tests.fsmaps import partitioned_disk, run
from tests.imgx_helpers import capture_disk

MiB = 1 << 20


@pytest.fixture(scope="session")
def ntfs_golden(tmp_path_factory, shared_dir):
    """A GPT disk with one NTFS whose t2/link and t2/dirlink (made through
    ntfs-3g) point at absolute paths of host files made for it:
    (image, host directory), read-only."""
    needs.require("mkntfs", "ntfs-3g", "sfdisk")
    from tests.fsbuild import ntfs_mounted
    tmp = tmp_path_factory.mktemp("edit-safety-ntfs")
    host = tmp / "host"
    (host / "dir").mkdir(parents=True)
    (host / "file").write_text("host file\n")
    fs = tmp / "fs.img"
    with open(fs, "wb") as f:
        f.truncate(16 * MiB)
    run("mkntfs", "-q", "-F", "-Q", fs)
    with ntfs_mounted(fs, tmp / "mnt") as mnt:
        os.mkdir(os.path.join(mnt, "t2"))
        os.symlink(host / "file", os.path.join(mnt, "t2", "link"))
        os.symlink(host / "dir", os.path.join(mnt, "t2", "dirlink"))
    disk = tmp / "disk.img"
    partitioned_disk(disk, [(fs, "ntfs")])
    image = tmp / "golden.rdi"
    capture_disk(disk, image)
    return shared_dir.seal(image), host
