"""The small GPT disk and the byte helpers that tests/rdeploy/test_bad_input.py and
tests/image/test_corruption.py share."""

import hashlib
import random
import subprocess

KiB, MiB = 1 << 10, 1 << 20
SECTOR = 512
DISK_SIZE = 64 * MiB
GPT_BACKUP = 33 * SECTOR      # 128 entries of 128 bytes plus the header


def sfdisk(path, script):
    subprocess.run(["sfdisk", "-q", str(path)], input=script.encode(),
                   check=True, capture_output=True)


def has_partitions(path):
    """Whether sfdisk finds a partition table with partitions on `path`."""
    out = subprocess.run(["sfdisk", "--json", str(path)],
                         capture_output=True, text=True)
    return out.returncode == 0 and '"partitions"' in out.stdout and \
        '"start"' in out.stdout


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


def read_at(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def build_disk(path, seed=1):
    """64 MiB GPT disk: ext4 in partition 1 (1 MiB to 33 MiB), 3 MiB of
    random bytes at the start of partition 2."""
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)
    sfdisk(path, "label: gpt\nstart=2048, size=65536, name=sys\n"
                 "start=67584, size=59392, name=data\n")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={MiB}",
                    str(path), "32M"], check=True, capture_output=True)
    with open(path, "r+b") as f:
        f.seek(67584 * SECTOR)
        f.write(random.Random(seed).randbytes(3 * MiB))
    return path


#: The first bytes of a restore marker (diskimage.restoremark).
RESTORE_MARKER = b"RDI-RESTORING\n"


def marked(path, offset=0):
    """Whether the MiB at *offset* of *path* is what a restore leaves in a
    guard zone while it runs or after it failed: its 512-byte restore
    marker, then zeros."""
    head = read_at(path, offset, MiB)
    return head.startswith(RESTORE_MARKER) and head[512:] == bytes(MiB - 512)
