"""Fixtures of the rdeploy tests: the small disk with its images and another
disk to restore over, and loop devices, mounts and a tmpfs that are undone
after each test."""

import os
import subprocess
from pathlib import Path

import pytest

import demodisk

from tests.rdeploy_helpers import build_other_disk, run


@pytest.fixture(scope="session")
def disk(tmp_path_factory, small_disk_ro, small_images_ro, shared_dir):
    """The source disk, its image, and the same image split in volumes, in
    a directory of their own (links to the read-only session files), with
    another disk to copy and restore over: read-only, copy before writing."""
    d = tmp_path_factory.mktemp("disk")
    for path in [small_disk_ro, small_images_ro["image"],
                 *small_images_ro["split"]]:
        os.link(path, d / path.name)
    assert (d / "split.r01").exists()
    other = shared_dir.seal(build_other_disk(d / "other.img"))
    return {"dir": d, "source": d / "disk.img", "image": d / "disk.rdi",
            "split": d / "split.rdi", "other": other}


@pytest.fixture(scope="session")
def demo(tmp_path_factory, shared_dir):
    """The 256 MiB GPT demo (ext4, FAT32, NTFS; 200 files) and its image,
    for the restores that plan a layout: (disk, image, manifest),
    read-only."""
    from tests.layout_helpers import rdeploy as rdeploy_ok
    tmp = tmp_path_factory.mktemp("layout")
    disk, image = tmp / "demo.img", tmp / "demo.rdi"
    manifest = demodisk.make_gpt_demo(disk, files=200)
    rdeploy_ok("capture", disk, image, "-q")
    shared_dir.seal(disk, image)
    return disk, image, manifest


@pytest.fixture
def kernel():
    """Make loop devices and mounts; every one is undone afterwards."""
    made = []

    class Kernel:
        def loop(self, backing, *options):
            dev = run("losetup", "--find", "--show", *options, backing)
            made.append(("losetup", "-d", dev))
            return dev

        def mount(self, source, where, *options):
            os.makedirs(where, exist_ok=True)
            run("mount", *options, source, where)
            made.append(("umount", str(where)))
            return Path(where)

        def freeze(self, where):
            """No more writes of the kernel's own (journal commits, the
            superblock after mount): the device's bytes change only if
            something else writes them."""
            run("fsfreeze", "-f", where)
            made.append(("fsfreeze", "-u", str(where)))

    try:
        yield Kernel()
    finally:
        for undo in reversed(made):
            subprocess.run(undo, capture_output=True)


@pytest.fixture
def tmpfs(tmp_path, kernel):
    """A 2 MiB tmpfs, unmounted afterwards."""
    return kernel.mount("tmpfs", tmp_path / "small-fs", "-t", "tmpfs",
                        "-o", "size=2M")
