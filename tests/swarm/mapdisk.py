"""What the swarm mapping tests share: real disks (sfdisk, mkfs), their
images captured by the real `rdeploy capture`, prepared torrents, and a
receive done by hand, piece by piece from NAME.raw in the mapping's order
(what the libtorrent receiver does, without the network)."""

import subprocess

from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import MiB, build_disk, sfdisk

DISK_SIZE = 64 * MiB


def captured(disk, image, *options):
    result = rdeploy("capture", disk, image, "-q", *options)
    assert result.returncode == 0, result.stderr.decode()
    return image


def gpt_image(directory):
    """(disk, image): tests.smalldisk's GPT disk (ext4 in partition 1,
    random bytes in partition 2) and its image."""
    disk = build_disk(directory / "gpt.img")
    return disk, captured(disk, directory / "gpt.rdi")


def mbr_image(directory):
    """(disk, image): an MBR disk, an extended partition with two logical
    ones (FAT and ext4) and a primary ext4 with files; and its image."""
    disk = directory / "mbr.img"
    with open(disk, "wb") as f:
        f.truncate(DISK_SIZE)
    sfdisk(disk, "label: dos\nstart=2048, size=20480, type=83\n"
                 "start=24576, size=100000, type=5\n"
                 "start=26624, size=30000, type=c\n"
                 "start=59392, size=40000, type=83\n")
    for start, size, tool in ((2048, 20480, ["mkfs.ext4", "-q", "-F"]),
                              (26624, 30000, ["mkfs.vfat"]),
                              (59392, 40000, ["mkfs.ext4", "-q", "-F"])):
        with loop(disk, start * 512, size * 512) as dev:
            subprocess.run(tool + [dev], check=True, capture_output=True)
            if tool[0] == "mkfs.ext4":
                populate(dev, start)
    return disk, captured(disk, directory / "mbr.rdi")


def odd_image(directory):
    """(disk, image): a disk with no partition table, 20 MiB and three
    sectors long (the torrent's last piece is short), FAT on all of it
    with files copied in by mtools."""
    import random
    disk = directory / "odd.img"
    with open(disk, "wb") as f:
        f.truncate(20 * MiB + 3 * 512)
    subprocess.run(["mkfs.vfat", str(disk)], check=True, capture_output=True)
    payload = directory / "payload.bin"
    payload.write_bytes(random.Random(7).randbytes(3 * MiB + 777))
    subprocess.run(["mcopy", "-i", str(disk), str(payload), "::/p.bin"],
                   check=True, capture_output=True)
    return disk, captured(disk, directory / "odd.rdi")


def populate(dev, seed):
    """A few files written through the kernel's ext4 driver."""
    import random
    import tempfile
    with tempfile.TemporaryDirectory() as mnt:
        subprocess.run(["mount", dev, mnt], check=True, capture_output=True)
        try:
            rng = random.Random(seed)
            for i in range(5):
                with open(f"{mnt}/file{i}", "wb") as f:
                    f.write(rng.randbytes(rng.randrange(1, 300_000)))
        finally:
            subprocess.run(["umount", mnt], check=True, capture_output=True)


class loop:
    """A loop device over bytes [offset, offset+size) of `path`, detached
    on exit (only the one this test attached)."""

    def __init__(self, path, offset, size, read_only=False):
        self.args = ["losetup", "--find", "--show", "-o", str(offset),
                     "--sizelimit", str(size), str(path)]
        if read_only:
            self.args.insert(1, "-r")

    def __enter__(self):
        self.dev = subprocess.run(self.args, check=True, capture_output=True,
                                  text=True).stdout.strip()
        return self.dev

    def __exit__(self, *exc):
        subprocess.run(["losetup", "-d", self.dev], check=True)


def write_pieces(desc, raw_path, target, pieces):
    """Pieces of NAME.raw copied onto `target` at their own offsets."""
    with open(raw_path, "rb") as src, open(target, "r+b") as dst:
        for index in pieces:
            start = index * desc.piece_size
            src.seek(start)
            dst.seek(start)
            dst.write(src.read(min(desc.piece_size, desc.length - start)))


def receive_by_hand(desc, raw_path, target, *, stop_before_held=False):
    """The mapping's write order: every wanted piece that is not held,
    then the held ones in their order (byte 0's last)."""
    held = desc.held_pieces()
    first = [i for i in desc.wanted_pieces() if i not in set(held)]
    write_pieces(desc, raw_path, target, first)
    if not stop_before_held:
        write_pieces(desc, raw_path, target, held)
