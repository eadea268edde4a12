"""The disk the fault tests restore: 32 MiB GPT, ext4 with files in
partition 1 (made by mkfs.ext4 -d), random bytes in partition 2; another
disk to restore over; and the checks of a target after a fault: its table
as sfdisk and blkid see it, its ext4 by e2fsck, its files by digest."""

import hashlib
import random
import subprocess
from pathlib import Path

from tests.smalldisk import KiB, MiB, SECTOR, sfdisk

SIZE = 32 * MiB
P1_START, P1_SIZE = MiB, 16 * MiB
P2_START = P1_START + P1_SIZE
RANDOM_SIZE = 2 * MiB
FILES = {f"f{i}.bin": 384 * KiB for i in range(6)}


def build(path, files_dir, seed=16):
    """The disk at `path`; its files' contents are made in `files_dir`.
    Returns {file name: sha256}."""
    rng = random.Random(seed)
    files_dir = Path(files_dir)
    files_dir.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, size in FILES.items():
        data = rng.randbytes(size)
        (files_dir / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    with open(path, "wb") as f:
        f.truncate(SIZE)
    sfdisk(path, f"label: gpt\nstart={P1_START // SECTOR}, "
                 f"size={P1_SIZE // SECTOR}, name=sys\n"
                 f"start={P2_START // SECTOR}, size={12 * MiB // SECTOR}, "
                 f"name=data\n")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={P1_START}",
                    "-d", str(files_dir), str(path),
                    f"{P1_SIZE // KiB}k"], check=True, capture_output=True)
    with open(path, "r+b") as f:
        f.seek(P2_START)
        f.write(rng.randbytes(RANDOM_SIZE))
    return digests


def build_other(path):
    """Another 32 MiB disk: another GPT, bytes where the first disk has
    none, so a restore that leaves any of it shows."""
    with open(path, "wb") as f:
        f.truncate(SIZE)
    sfdisk(path, "label: gpt\nstart=4096, size=20000, name=one\n"
                 "start=30000, size=30000, name=two\n")
    with open(path, "r+b") as f:
        f.seek(600 * KiB)
        f.write(b"OTHER DISK " * 4000)
    return path


def table_seen(path):
    """What sfdisk and blkid -p make of the start of `path`: a list of
    what they found (empty: no valid partition table)."""
    seen = []
    out = subprocess.run(["sfdisk", "--json", str(path)],
                         capture_output=True, text=True)
    if out.returncode == 0 and '"partitions"' in out.stdout:
        seen.append("sfdisk: " + out.stdout.replace("\n", " "))
    out = subprocess.run(["blkid", "-p", "-o", "export", str(path)],
                         capture_output=True, text=True)
    if out.returncode == 0 and "PTTYPE" in out.stdout:
        seen.append("blkid: " + out.stdout.replace("\n", " "))
    return seen


def ext4_state(path, kernel):
    """(e2fsck -fn exit code and output, {file: sha256}) of partition 1 of
    `path`, through a read-only loop device of its bytes."""
    dev = kernel.loop(path, "-r", "-o", str(P1_START), "--sizelimit",
                      str(P1_SIZE))
    fsck = subprocess.run(["e2fsck", "-fn", dev], capture_output=True,
                          text=True)
    digests = {}
    for name in FILES:
        out = subprocess.run(["debugfs", "-R", f"cat /{name}", dev],
                             capture_output=True)
        digests[name] = hashlib.sha256(out.stdout).hexdigest()
    return (fsck.returncode, fsck.stdout + fsck.stderr), digests
