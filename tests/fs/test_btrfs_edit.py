"""imgx put/rm/mkdir on btrfs through the kernel's driver (edit="mount",
diskimage/edit/editfs.py): the volume's default subvolume is "home"
(`btrfs subvolume set-default`), so a plain mount would edit home's tree;
imgx mounts with subvolid=5, the top-level subvolume it also shows.  The
edited image is restored with `rdeploy restore`: `btrfs check --readonly`
is clean and every file's sha256 (read through subvolid=5) is what the
edits leave; imgx cat reads the new files back."""

import hashlib
import os

import pytest

from tests.fs.btrfs_tools import check, digests, make_btrfs, mounted
from tests.fsmaps import partitioned_disk, rdeploy, run
from tests.imgx_helpers import ok

pytestmark = pytest.mark.needs("mkfs.btrfs", "btrfs", "sfdisk", "blkid",
                               "losetup", root=True)


def test_edits_land_in_the_top_level_subvolume(tmp_path):
    fs_image, files = make_btrfs(tmp_path)
    with mounted(fs_image, tmp_path / "m", options="rw") as mnt:
        listed = run("btrfs", "subvolume", "list", mnt).stdout
        home = [line.split()[1] for line in listed.splitlines()
                if line.split()[-1] == "home"][0]
        run("btrfs", "subvolume", "set-default", home, mnt)
    disk = tmp_path / "disk.img"
    (start, size), = partitioned_disk(disk, [(fs_image, "btrfs")], "gpt")
    fs_image.unlink()
    image = tmp_path / "disk.rdi"
    rdeploy("capture", disk, image, "--progress=none", "-q")

    note = tmp_path / "note.txt"
    note.write_bytes(b"put into the top level\n" * 300)
    ok("mkdir", f"{image}:1/added")
    ok("put", note, f"{image}:1/added/note.txt")
    ok("put", note, f"{image}:1/home/note.txt")
    ok("rm", f"{image}:1/plain/f00.bin")
    ok("rm", f"{image}:1/snap/log.txt")
    digest = hashlib.sha256(note.read_bytes()).hexdigest()
    files.update({"added/note.txt": digest, "home/note.txt": digest})
    del files["plain/f00.bin"], files["snap/log.txt"]
    assert ok("cat", f"{image}:1/added/note.txt") == note.read_bytes()

    target = tmp_path / "target.img"
    with open(target, "wb") as f:
        f.truncate(os.path.getsize(disk))
    rdeploy("restore", image, target, "--yes", "-q")
    clean, output = check(target, start, size)
    assert clean, output
    with mounted(target, tmp_path / "top", start, size,
                 options="ro,subvolid=5") as mnt:
        assert digests(mnt) == files
    with mounted(target, tmp_path / "default", start, size) as mnt:
        assert sorted(os.listdir(mnt)) == sorted(
            ["log.txt", "after.bin", "again.bin", "latest", "note.txt"])
