"""What the tests of images over HTTP share (tests/remote): a GPT disk
built with sfdisk and mkfs.ext4 -d: three ext4 partitions, the second
holding /etc/hostname, the third 48 MiB of random files (so reading one
small file is a small fraction of the image), its image whole and split
in 16 MiB volumes (read-only, once
a session), and the checks of a restored disk with the field's tools:
e2fsck -fn of each partition, sha256 of every file through debugfs."""

import hashlib
import os
import random
import subprocess

import pytest

from tests import needs
from tests.rdeploy_helpers import rdeploy

MiB = 1 << 20
SECTOR = 512
#: (number, start sector, sectors) of the disk's ext4 partitions
PARTITIONS = ((1, 2048, 8 * 2048), (2, 9 * 2048, 16 * 2048),
              (3, 25 * 2048, 64 * 2048))
DISK_SIZE = 90 * MiB
HOSTNAME = b"lab-pc-17\n"
TOOLS = ("sfdisk", "mkfs.ext4", "e2fsck", "debugfs")


def _tree(root, seed):
    """{partition: {path: bytes}} of the files each filesystem gets."""
    rng = random.Random(seed)
    files = {1: {"boot/config.txt": b"console=ttyS0\n" * 50,
                 "boot/notes.txt": rng.randbytes(3000)},
             2: {"etc/hostname": HOSTNAME,
                 "etc/motd": b"Welcome to the lab.\n",
                 "home/alice/todo.txt": b"water the plants\n" * 20},
             3: {f"data/blob{n}.bin": rng.randbytes(24 * MiB)
                 for n in range(2)}}
    for number, tree in files.items():
        for rel, data in tree.items():
            path = os.path.join(root, str(number), rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
    return files


def build_disk(path, work, seed=17):
    """The GPT disk of the module docstring at `path`; returns {partition:
    {path: sha256}}."""
    files = _tree(work, seed)
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)
    script = "label: gpt\n" + "".join(
        f"start={start}, size={size}, name=p{n}\n"
        for n, start, size in PARTITIONS)
    subprocess.run(["sfdisk", "-q", str(path)], input=script.encode(),
                   check=True, capture_output=True)
    for n, start, size in PARTITIONS:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d",
                        os.path.join(work, str(n)), "-E",
                        f"offset={start * SECTOR}", str(path),
                        f"{size * SECTOR // 1024}k"],
                       check=True, capture_output=True)
    return {n: {rel: hashlib.sha256(data).hexdigest()
                for rel, data in tree.items()} for n, tree in files.items()}


def check_disk(disk, manifest, work):
    """e2fsck -fn clean on each partition of the restored `disk`, and every
    file of `manifest` with its sha256 (read out by debugfs)."""
    for n, start, size in PARTITIONS:
        part = os.path.join(work, f"part{n}.img")
        with open(disk, "rb") as src, open(part, "wb") as out:
            src.seek(start * SECTOR)
            left = size * SECTOR
            while left:
                block = src.read(min(left, 8 * MiB))
                assert block, "restored disk is short"
                out.write(block)
                left -= len(block)
        fsck = subprocess.run(["e2fsck", "-fn", part], capture_output=True,
                              text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        for rel, digest in manifest[n].items():
            dumped = os.path.join(work, "dumped")
            subprocess.run(["debugfs", "-R", f"dump -p /{rel} {dumped}",
                            part], check=True, capture_output=True)
            with open(dumped, "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == digest, rel
            os.unlink(dumped)
        os.unlink(part)


@pytest.fixture(scope="session")
def remote_ro(shared_dir, tmp_path_factory):
    """{"disk", "manifest", "image", "split": first volume, "volumes"}:
    the disk and its images, read-only, in a directory of their own (the
    one the test servers serve)."""
    needs.require(*TOOLS)
    top = shared_dir.directory / "remote"
    top.mkdir()
    work = tmp_path_factory.mktemp("remote-tree")
    disk = top / "disk.img"
    manifest = build_disk(disk, work)
    image = top / "lab.rdi"
    result = rdeploy("capture", disk, image, "-q")
    assert result.returncode == 0, result.stderr.decode()
    split = top / "split.rdi"
    result = rdeploy("capture", disk, split, "--split=16M", "-q")
    assert result.returncode == 0, result.stderr.decode()
    volumes = [split] + sorted(top.glob("split.r[0-9]*"))
    assert len(volumes) > 2
    shared_dir.seal(disk, image, *volumes)
    return {"dir": top, "disk": disk, "manifest": manifest, "image": image,
            "split": split, "volumes": volumes}
