"""The loopback swarm lab of tests/swarm/test_receive*.py: a 64 MiB GPT
disk (ext4 and FAT16 with files) made by the field's tools, and the
helpers that start `rdeploy swarm` processes and judge their targets."""

import hashlib
import socket
import os
import subprocess

import demodisk
from diskimage.fs.fat.mtools import MTOOLS_ENV
from tests.fleet.room import Run
from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import sfdisk


MiB = 1 << 20
DISK = 64 * MiB
EXT = (MiB, 28 * MiB)                   # partition 1: ext4
FAT = (30 * MiB, 24 * MiB)              # partition 2: FAT16
SEED = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Local:
    """tests/fleet/room.py's Run on this host (no namespace)."""

    @staticmethod
    def start(ns, cmd, **kw):
        return subprocess.Popen(cmd, **kw)


def start(*args):
    return Run(Local, None, [str(a) for a in args])


def sha256_head(path, size):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left:
            block = f.read(min(left, 4 * MiB))
            assert block, f"{path} ends before {size} bytes"
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def build_golden(d):
    """A 64 MiB GPT disk: ext4 and FAT16 with files (6 MiB of random bytes
    each), made by mkfs.ext4 -d, mkfs.fat and mcopy."""
    disk = d / "golden.img"
    with open(disk, "wb") as f:
        f.truncate(DISK)
    sfdisk(disk, f"label: gpt\nstart={EXT[0] // 512}, size={EXT[1] // 512}, "
                 f"name=sys\nstart={FAT[0] // 512}, size={FAT[1] // 512}, "
                 f"type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=data\n")
    trees = {}
    for name in ("ext", "fat"):
        trees[name] = demodisk.make_tree(d / name, 40, seed=len(name),
                                         names=False)
        with open(d / name / "blob.bin", "wb") as f:
            f.write(os.urandom(6 * MiB))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", d / "ext", "-E",
                    f"offset={EXT[0]}", disk, f"{EXT[1] // 1024}k"],
                   check=True, capture_output=True)
    subprocess.run(["mkfs.fat", "-F", "16", "--offset", str(FAT[0] // 512),
                    disk, str(FAT[1] // 1024)], check=True,
                   capture_output=True)
    entries = sorted(str(p) for p in (d / "fat").iterdir())
    subprocess.run(["mcopy", "-s", "-Q", "-i", f"{disk}@@{FAT[0]}",
                    *entries, "::/"], check=True, capture_output=True,
                   env=dict(os.environ, **MTOOLS_ENV))
    return disk


def restored(target, lab):
    """verify-target's exit, both fsck clean, the host restore's bytes."""
    result = rdeploy("verify-target", target, lab["image"])
    assert result.returncode == 0, result.stderr.decode()
    for (start, size), fs in ((EXT, "ext4"), (FAT, "fat16")):
        clean, output = demodisk.fsck(target, start, size, fs)
        assert clean, output
    assert sha256_head(target, DISK) == lab["digest"]


def receive(n, source, target, *options):
    return start("swarm", "receive", source, target, "--yes",
                 f"--listen=127.0.0.{10 + n}:{free_port()}",
                 "--progress=json", *options)
